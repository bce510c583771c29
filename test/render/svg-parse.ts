/** A small reader of the figure's SVG as vega writes it: panels, their texts, bars and markers. */

export interface Bar {
  expert: number;
  label: string;
  fill: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Panel {
  x: number; // translate of the panel group
  y: number;
  title: string;
  xTitle: string | null;
  yTitle: string | null;
  xLabels: { text: string; x: number }[]; // left to right
  yLabels: string[]; // bottom to top
  bars: Bar[];
  emptyMarks: { text: string; x: number }[];
  dashed: number; // paths with a dash pattern
}

interface Node {
  tag: 'text' | 'path';
  attrs: string;
  text: string;
  ancestors: string[]; // opening tags of the enclosing <g>, outermost first
}

/** Texts and paths with the <g> tags around them (vega's SVG is regular enough for a tag walk). */
function walk(svg: string): Node[] {
  const out: Node[] = [];
  const stack: string[] = [];
  // a <text> as vega writes it, or as plot writes it (its glyphs as a path, the words in aria-label)
  const re = /<g\b[^>]*\/>|<g\b([^>]*)>|<\/g>|<text\b([^>]*)>([^<]*)<\/text>|<path class="glyphs"([^>]*)>(?:<title>[^<]*<\/title>)?<\/path>|<path\b([^>]*?)\/?>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(svg))) {
    if (m[0].startsWith('<g') && m[0].endsWith('/>')) continue; // empty group
    if (m[0].startsWith('</g')) stack.pop();
    else if (m[0].startsWith('<g')) stack.push(m[1]);
    else if (m[0].startsWith('<text')) out.push({ tag: 'text', attrs: m[2], text: m[3], ancestors: [...stack] });
    else if (m[4] !== undefined) out.push({ tag: 'text', attrs: m[4], text: unescape(/aria-label="([^"]*)"/.exec(m[4])?.[1] ?? ''), ancestors: [...stack] });
    else out.push({ tag: 'path', attrs: m[5], text: '', ancestors: [...stack] });
  }
  return out;
}

const unescape = (s: string) => s.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&amp;/g, '&');

const has = (n: Node, s: string) => n.ancestors.some((a) => a.includes(s));
const translate = (attrs: string) => {
  const m = /translate\(([-\d.e]+),([-\d.e]+)\)/.exec(attrs);
  return { x: Number(m?.[1] ?? 0), y: Number(m?.[2] ?? 0) };
};

export function parsePanels(svg: string): Panel[] {
  const nodes = walk(svg);
  const panelOf = (n: Node) => n.ancestors.map((a) => /concat_(\d+)_group/.exec(a)?.[1]).find((x) => x !== undefined);
  const ids = [...new Set(nodes.map(panelOf).filter((x): x is string => x !== undefined))].sort((a, b) => Number(a) - Number(b));
  const origin = new Map<string, { x: number; y: number }>();
  {
    // the panel's translate is on the first <g transform> inside its group
    const re = /<g class="mark-group role-scope concat_(\d+)_group"[^>]*>\s*<g transform="translate\(([-\d.]+),([-\d.]+)\)"/g;
    for (const m of svg.matchAll(re)) origin.set(m[1], { x: Number(m[2]), y: Number(m[3]) });
  }
  return ids.map((id) => {
    const mine = nodes.filter((n) => panelOf(n) === id);
    const texts = (pred: (n: Node) => boolean) => mine.filter((n) => n.tag === 'text' && pred(n));
    const axis = (xy: 'X' | 'Y') => (n: Node) => has(n, `aria-label="${xy}-axis`);
    const xLabels = texts((n) => axis('X')(n) && has(n, 'role-axis-label')).map((n) => ({ text: n.text, x: translate(n.attrs).x })).sort((a, b) => a.x - b.x);
    const yLabels = texts((n) => axis('Y')(n) && has(n, 'role-axis-label')).map((n) => ({ text: n.text, y: translate(n.attrs).y })).sort((a, b) => b.y - a.y).map((l) => l.text);
    const bars: Bar[] = [];
    for (const n of mine) {
      if (n.tag !== 'path' || !has(n, 'role-mark')) continue;
      const d = /d="M([-\d.e]+),([-\d.e]+)h([-\d.e]+)v([-\d.e]+)h/.exec(n.attrs);
      const fill = /fill="(#[0-9A-Fa-f]{6})"/.exec(n.attrs);
      const aria = /aria-label="([^"]*)"/.exec(n.attrs)?.[1] ?? '';
      const expert = /expert: (\d+)/.exec(aria), label = /label: (\w+)/.exec(aria);
      if (!d || !fill || !expert || !label) continue;
      bars.push({ expert: Number(expert[1]), label: label[1], x: Number(d[1]), y: Number(d[2]), w: Number(d[3]), h: Number(d[4]), fill: fill[1].toUpperCase() });
    }
    return {
      ...(origin.get(id) ?? { x: NaN, y: NaN }),
      title: texts((n) => has(n, 'role-title-text'))[0]?.text ?? '',
      xTitle: texts((n) => axis('X')(n) && has(n, 'role-axis-title'))[0]?.text ?? null,
      yTitle: texts((n) => axis('Y')(n) && has(n, 'role-axis-title'))[0]?.text ?? null,
      xLabels,
      yLabels,
      bars,
      emptyMarks: texts((n) => has(n, 'role-mark')).map((n) => ({ text: n.text, x: translate(n.attrs).x })),
      dashed: mine.filter((n) => n.tag === 'path' && /stroke-dasharray/.test(n.attrs)).length,
    };
  });
}

/** Legend entries (label text) in order. */
export function legendLabels(svg: string): string[] {
  return walk(svg).filter((n) => n.tag === 'text' && has(n, 'role-legend-label')).map((n) => n.text);
}

/** Hue in degrees of a #RRGGBB colour. */
export function hue(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
  if (d === 0) return 0;
  let h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  h *= 60;
  return h < 0 ? h + 360 : h;
}
