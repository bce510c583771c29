import { createRequire } from 'node:module';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { figureFormat, type FigureFormat } from './figure-format.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { Vl } from './spec.js';

export { figureFormat, type FigureFormat };

const require = createRequire(import.meta.url);

/** The bundled TTFs (dejavu-fonts-ttf): the PNG uses these and no system font, so it reads the same anywhere. */
export function fontFiles(): string[] {
  const dir = require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf').replace(/DejaVuSans\.ttf$/, '');
  return [dir + 'DejaVuSans.ttf', dir + 'DejaVuSans-Bold.ttf'];
}

/** Vega-Lite -> Vega -> SVG, headless. */
export async function specToSvg(spec: Vl): Promise<string> {
  const compiled = compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG -> PNG with resvg at `scale` (2 = crisp on screens and in papers). */
export function svgToPng(svg: string, scale = 2): Uint8Array {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: false, fontFiles: fontFiles(), defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}


/** The bytes of a figure in a format. */
export async function renderFigure(spec: Vl, format: FigureFormat): Promise<string | Uint8Array> {
  if (format === 'vl.json') return JSON.stringify(spec, null, 2) + '\n';
  const svg = await specToSvg(spec);
  return format === 'svg' ? svg : svgToPng(svg);
}

/** Render then write atomically (nothing is written if rendering fails). */
export async function writeFigure(path: string, spec: Vl): Promise<void> {
  const bytes = await renderFigure(spec, figureFormat(path));
  writeFileAtomic(path, bytes);
}
