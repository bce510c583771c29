import { isBold, textPath } from './figure-font.js';

/** XML entities vega writes in text content and attributes. */
function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos|#(\d+)|#x([0-9a-fA-F]+));/g, (_m, name: string, dec?: string, hex?: string) => {
    if (dec) return String.fromCodePoint(Number(dec));
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    return ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" } as Record<string, string>)[name];
  });
}

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

function attr(attrs: string, name: string): string | undefined {
  const m = new RegExp(`(?:^|\\s)${name}="([^"]*)"`).exec(attrs);
  return m ? unescapeXml(m[1]) : undefined;
}

/** Paint attributes that carry over from a <text> to the path that replaces it. */
const KEEP = ['transform', 'fill', 'fill-opacity', 'opacity', 'stroke', 'stroke-width', 'stroke-opacity', 'clip-path', 'role', 'aria-hidden'];

/**
 * Every <text> of a vega SVG replaced by a <path> of its glyphs in the bundled DejaVu Sans, so
 * the SVG shows the same on a machine without DejaVu (browsers, Inkscape, LaTeX via svg). The
 * words stay readable to screen readers and search: each path carries them in `aria-label`.
 * Handles what vega writes: one line per <text> (or <tspan x="0" dy> lines), text-anchor,
 * transform, font-size, font-weight, x/y/dx/dy.
 */
export function svgTextToPaths(svg: string): string {
  return svg.replace(/<text\b([^>]*)>([\s\S]*?)<\/text>/g, (_m, attrs: string, inner: string) => {
    const size = parseFloat(attr(attrs, 'font-size') ?? '11');
    const bold = isBold(attr(attrs, 'font-weight'));
    const anchor = (attr(attrs, 'text-anchor') ?? 'start') as 'start' | 'middle' | 'end';
    const x = parseFloat(attr(attrs, 'x') ?? '0') + parseFloat(attr(attrs, 'dx') ?? '0');
    let y = parseFloat(attr(attrs, 'y') ?? '0') + parseFloat(attr(attrs, 'dy') ?? '0');
    // lines: tspans (multi-line text) or the plain content
    const lines: { text: string; dy: number }[] = [];
    if (/<tspan\b/.test(inner)) {
      for (const t of inner.matchAll(/<tspan\b([^>]*)>([^<]*)<\/tspan>/g)) lines.push({ text: unescapeXml(t[2]), dy: parseFloat(attr(t[1], 'dy') ?? '0') });
    } else lines.push({ text: unescapeXml(inner), dy: 0 });
    const ds: string[] = [];
    for (const line of lines) {
      y += line.dy;
      const d = textPath(line.text, size, bold, anchor);
      if (d) ds.push(x || y ? translatePath(d, x, y) : d);
    }
    const label = lines.map((l) => l.text).join(' ');
    const keep = KEEP.map((k) => [k, attr(attrs, k)] as const).filter(([, v]) => v !== undefined);
    const paint = keep.map(([k, v]) => ` ${k}="${escapeAttr(v!)}"`).join('');
    // the words drawn are what a reader (and a search) needs; vega's description of the datum goes in a <title>
    const described = attr(attrs, 'aria-label');
    const title = described && described !== label ? `<title>${escapeAttr(described)}</title>` : '';
    return `<path class="glyphs"${paint} aria-label="${escapeAttr(label)}" d="${ds.join('')}">${title}</path>`;
  });
}

/** Shift absolute path data (as textPath writes it: M L Q C Z with absolute pairs). */
function translatePath(d: string, dx: number, dy: number): string {
  return d.replace(/([MLQCZ])([^MLQCZ]*)/g, (_m, cmd: string, args: string) => {
    const nums = args.trim().split(/[\s,]+/).filter(Boolean).map(Number);
    const moved = nums.map((v, i) => Math.round((v + (i % 2 === 0 ? dx : dy)) * 100) / 100);
    return cmd + moved.join(' ');
  });
}
