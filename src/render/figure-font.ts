import { createRequire } from 'node:module';
import * as fontkit from 'fontkit';

const require = createRequire(import.meta.url);

/** The bundled TTFs (dejavu-fonts-ttf): PNG, PDF and the SVG's text paths use these and no system font. */
export function fontFiles(): { regular: string; bold: string } {
  const regular = require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf');
  return { regular, bold: regular.replace(/DejaVuSans\.ttf$/, 'DejaVuSans-Bold.ttf') };
}

let fonts: { regular: fontkit.Font; bold: fontkit.Font } | undefined;

function font(bold: boolean): fontkit.Font {
  if (!fonts) {
    const f = fontFiles();
    fonts = { regular: fontkit.openSync(f.regular) as fontkit.Font, bold: fontkit.openSync(f.bold) as fontkit.Font };
  }
  return bold ? fonts.bold : fonts.regular;
}

export const isBold = (weight: unknown): boolean => weight === 'bold' || weight === 'bolder' || (Number(weight) >= 600);

/** Advance width in px of a line of text in DejaVu Sans (kerning applied). */
export function textWidth(text: string, size: number, bold = false): number {
  const f = font(bold);
  return (f.layout(text).advanceWidth * size) / f.unitsPerEm;
}

const round = (v: number) => Math.round(v * 100) / 100;

/**
 * The outline of a line of text as SVG path data, in px, its baseline at y = 0 and its anchor
 * (start, middle, end) at x = 0: what the text looks like in DejaVu Sans, with no font needed to show it.
 */
export function textPath(text: string, size: number, bold = false, anchor: 'start' | 'middle' | 'end' = 'start'): string {
  const f = font(bold);
  const run = f.layout(text);
  const s = size / f.unitsPerEm;
  const width = run.advanceWidth * s;
  let pen = anchor === 'middle' ? -width / 2 : anchor === 'end' ? -width : 0;
  const parts: string[] = [];
  run.glyphs.forEach((g, i) => {
    const p = run.positions[i];
    const ox = pen + p.xOffset * s, oy = -p.yOffset * s;
    const d = g.path.transform(s, 0, 0, -s, ox, oy).toSVG().replace(/-?\d*\.\d+(?:e-?\d+)?/g, (v) => String(round(Number(v))));
    if (d) parts.push(d);
    pen += p.xAdvance * s;
  });
  return parts.join('');
}
