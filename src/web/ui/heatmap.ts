import { h } from './dom.js';

/**
 * A matrix drawn to one <canvas> (a 256 x 256 matrix is one bitmap, not 65,536 DOM nodes), with
 * thinned axis labels, a colour bar, a tooltip under the pointer, and keyboard focus: Tab onto the
 * map, arrow keys move a cell cursor (PageUp/PageDown by ten, Home/End to the row's ends), Enter
 * opens the cell; the focused cell is read out through a live region.
 */
export interface HeatmapOptions {
  id: string;
  title: string;
  rows: number;
  cols: number;
  /** Cell value, or null for "no data" (drawn hatched grey). */
  value: (r: number, c: number) => number | null;
  /** Colour of a value. */
  color: (v: number) => string;
  rowLabel?: (r: number) => string;
  colLabel?: (c: number) => string;
  xTitle: string;
  yTitle: string;
  /** Text of a cell for the tooltip and the screen reader. */
  describe: (r: number, c: number) => string;
  onActivate?: (r: number, c: number) => void;
  /** Largest drawing size in px (the map shrinks cells to fit; at least 2 px per cell). */
  maxWidth?: number;
  maxHeight?: number;
  /** The colour bar: from min to max of the values given to `color`, or of `t` given to `legend.color` when that is set. */
  legend: { min: number; max: number; label: string; format?: (v: number) => string; mid?: number; color?: (t: number) => string };
}

const MARGIN = { left: 44, top: 6, right: 8, bottom: 40 };

export interface Heatmap {
  el: HTMLElement;
  canvas: HTMLCanvasElement;
  /** Move the keyboard cursor (and redraw). */
  focusCell(r: number, c: number): void;
}

export function heatmap(o: HeatmapOptions): Heatmap {
  const maxW = o.maxWidth ?? 720, maxH = o.maxHeight ?? 560;
  const cell = Math.max(2, Math.min(26, Math.floor(Math.min((maxW - MARGIN.left - MARGIN.right) / o.cols, (maxH - MARGIN.top - MARGIN.bottom) / o.rows))));
  const W = MARGIN.left + o.cols * cell + MARGIN.right, H = MARGIN.top + o.rows * cell + MARGIN.bottom;
  const dpr = Math.min(2, window.devicePixelRatio || 1);
  const canvas = h('canvas', {
    class: 'heatmap', tabindex: '0', role: 'img', id: `${o.id}-canvas`,
    'aria-label': `${o.title}: ${o.rows} ${o.yTitle} by ${o.cols} ${o.xTitle}. Arrow keys move between cells${o.onActivate ? ', Enter opens one' : ''}.`,
  });
  canvas.width = W * dpr;
  canvas.height = H * dpr;
  canvas.style.width = `${W}px`;
  canvas.style.height = `${H}px`;
  const live = h('div', { class: 'heatmap-cell', 'aria-live': 'polite', id: `${o.id}-cell` });
  const tip = h('div', { class: 'heatmap-tip', hidden: true });
  let cursor: [number, number] | null = null;
  const g = canvas.getContext('2d')!;

  // The cells once into an offscreen bitmap (1 px per cell), scaled up without smoothing: cheap at 256 x 256.
  const bitmap = document.createElement('canvas');
  bitmap.width = o.cols;
  bitmap.height = o.rows;
  const bg = bitmap.getContext('2d')!;
  const img = bg.createImageData(o.cols, o.rows);
  const parse = colorParser();
  for (let r = 0; r < o.rows; r++) for (let c = 0; c < o.cols; c++) {
    const v = o.value(r, c);
    const [R, G, B] = v === null || !isFinite(v) ? [225, 225, 225] : parse(o.color(v));
    const i = (r * o.cols + c) * 4;
    img.data[i] = R; img.data[i + 1] = G; img.data[i + 2] = B; img.data[i + 3] = 255;
  }
  bg.putImageData(img, 0, 0);

  /** Every how many cells a label fits (`px`: the room one label needs). */
  const labelEvery = (n: number, px = 13) => {
    const step = Math.max(1, Math.ceil(px / cell));
    // round steps (1, 2, 4, 5, 8, 10, 16, ...) read better
    return [1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100].find((s) => s >= step) ?? Math.ceil(n / 10);
  };

  const draw = () => {
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.imageSmoothingEnabled = false;
    g.drawImage(bitmap, MARGIN.left, MARGIN.top, o.cols * cell, o.rows * cell);
    g.strokeStyle = '#999';
    g.lineWidth = 1;
    g.strokeRect(MARGIN.left - 0.5, MARGIN.top - 0.5, o.cols * cell + 1, o.rows * cell + 1);
    g.fillStyle = '#333';
    g.font = '10px "DejaVu Sans", sans-serif';
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    const widest = Math.max(...[0, o.cols - 1, Math.floor(o.cols / 2)].map((c) => g.measureText(o.colLabel?.(c) ?? String(c)).width));
    const re = labelEvery(o.rows), ce = labelEvery(o.cols, widest + 5);
    for (let r = 0; r < o.rows; r += re) g.fillText(o.rowLabel?.(r) ?? String(r), MARGIN.left - 4, MARGIN.top + (r + 0.5) * cell);
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let c = 0; c < o.cols; c += ce) g.fillText(o.colLabel?.(c) ?? String(c), MARGIN.left + (c + 0.5) * cell, MARGIN.top + o.rows * cell + 3);
    g.font = '12px "DejaVu Sans", sans-serif';
    g.fillText(o.xTitle, MARGIN.left + (o.cols * cell) / 2, MARGIN.top + o.rows * cell + 20);
    g.save();
    g.translate(11, MARGIN.top + (o.rows * cell) / 2);
    g.rotate(-Math.PI / 2);
    g.textBaseline = 'middle';
    g.fillText(o.yTitle, 0, 0);
    g.restore();
    if (cursor) {
      const [r, c] = cursor;
      const x = MARGIN.left + c * cell, y = MARGIN.top + r * cell, s = Math.max(cell, 6);
      const off = (s - cell) / 2;
      g.lineWidth = 2;
      g.strokeStyle = '#000';
      g.strokeRect(x - off - 1, y - off - 1, s + 2, s + 2);
      g.strokeStyle = '#fff';
      g.lineWidth = 1;
      g.strokeRect(x - off + 1, y - off + 1, s - 2, s - 2);
    }
  };

  const setCursor = (r: number, c: number, announce: boolean) => {
    cursor = [Math.min(o.rows - 1, Math.max(0, r)), Math.min(o.cols - 1, Math.max(0, c))];
    canvas.dataset.cursor = cursor.join(',');
    if (announce) live.textContent = o.describe(cursor[0], cursor[1]);
    draw();
  };

  const at = (ev: MouseEvent): [number, number] | null => {
    const b = canvas.getBoundingClientRect();
    const x = ev.clientX - b.left - MARGIN.left, y = ev.clientY - b.top - MARGIN.top;
    const c = Math.floor(x / cell), r = Math.floor(y / cell);
    return r >= 0 && r < o.rows && c >= 0 && c < o.cols ? [r, c] : null;
  };
  canvas.addEventListener('mousemove', (ev) => {
    const p = at(ev);
    if (!p) {
      tip.hidden = true;
      return;
    }
    tip.textContent = o.describe(p[0], p[1]);
    tip.hidden = false;
    const b = canvas.getBoundingClientRect();
    tip.style.left = `${ev.clientX - b.left + 14}px`;
    tip.style.top = `${ev.clientY - b.top + 14}px`;
  });
  canvas.addEventListener('mouseleave', () => (tip.hidden = true));
  canvas.addEventListener('click', (ev) => {
    const p = at(ev);
    if (!p) return;
    setCursor(p[0], p[1], true);
    o.onActivate?.(p[0], p[1]);
  });
  canvas.addEventListener('focus', () => {
    if (!cursor) setCursor(0, 0, true);
    else live.textContent = o.describe(cursor[0], cursor[1]);
  });
  canvas.addEventListener('keydown', (ev) => {
    if (!cursor) cursor = [0, 0];
    const [r, c] = cursor;
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [r, c - 1], ArrowRight: [r, c + 1], ArrowUp: [r - 1, c], ArrowDown: [r + 1, c],
      PageUp: [r - 10, c], PageDown: [r + 10, c], Home: [r, 0], End: [r, o.cols - 1],
    };
    if (moves[ev.key]) {
      ev.preventDefault();
      setCursor(moves[ev.key][0], moves[ev.key][1], true);
    } else if ((ev.key === 'Enter' || ev.key === ' ') && o.onActivate) {
      ev.preventDefault();
      o.onActivate(r, c);
    }
  });
  draw();

  const legend = colorBar(o.legend, o.legend.color ?? o.color);
  const el = h('figure', { class: 'heatmap-figure chart', id: o.id },
    h('figcaption', { class: 'heatmap-title' }, o.title),
    h('div', { class: 'heatmap-body' }, h('div', { class: 'heatmap-wrap' }, canvas, tip), legend),
    live);
  return { el, canvas, focusCell: (r, c) => setCursor(r, c, true) };
}

/** A vertical colour bar with its min, (mid) and max. */
function colorBar(l: HeatmapOptions['legend'], color: (v: number) => string): HTMLElement {
  const c = document.createElement('canvas');
  c.width = 14;
  c.height = 160;
  const g = c.getContext('2d')!;
  for (let y = 0; y < 160; y++) {
    g.fillStyle = color(l.max - ((l.max - l.min) * y) / 159);
    g.fillRect(0, y, 14, 1);
  }
  const f = l.format ?? ((v: number) => String(+v.toPrecision(3)));
  return h('div', { class: 'colorbar' }, h('div', { class: 'colorbar-label' }, l.label),
    h('div', { class: 'colorbar-body' }, c, h('div', { class: 'colorbar-ticks' },
      h('span', {}, f(l.max)), l.mid !== undefined ? h('span', {}, f(l.mid)) : h('span', {}, ''), h('span', {}, f(l.min)))));
}

/** CSS colour -> [r, g, b] (through a 1x1 canvas, cached). */
function colorParser(): (css: string) => [number, number, number] {
  const seen = new Map<string, [number, number, number]>();
  const c = document.createElement('canvas').getContext('2d', { willReadFrequently: true })!;
  return (css) => {
    let v = seen.get(css);
    if (!v) {
      const m = /^rgb\((\d+), ?(\d+), ?(\d+)\)$/.exec(css);
      if (m) v = [Number(m[1]), Number(m[2]), Number(m[3])];
      else {
        c.clearRect(0, 0, 1, 1);
        c.fillStyle = css;
        c.fillRect(0, 0, 1, 1);
        const d = c.getImageData(0, 0, 1, 1).data;
        v = [d[0], d[1], d[2]];
      }
      if (seen.size < 4096) seen.set(css, v);
    }
    return v;
  };
}

/** A colour ramp through stops (hex), t in [0, 1] -> `rgb(...)`. */
export function ramp(stops: readonly string[]): (t: number) => string {
  const rgb = stops.map((s) => [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16)));
  return (t) => {
    const x = Math.min(1, Math.max(0, isFinite(t) ? t : 0)) * (rgb.length - 1);
    const i = Math.min(rgb.length - 2, Math.floor(x)), f = x - i;
    const [a, b] = [rgb[i], rgb[i + 1]];
    return `rgb(${Math.round(a[0] + (b[0] - a[0]) * f)}, ${Math.round(a[1] + (b[1] - a[1]) * f)}, ${Math.round(a[2] + (b[2] - a[2]) * f)})`;
  };
}

/** Sequential: white -> dark blue (counts, shares, probabilities). */
export const BLUES = ramp(['#F7FBFF', '#C6DBEF', '#6BAED6', '#2171B5', '#08306B']);
/** Sequential, perceptually even (viridis stops). */
export const VIRIDIS = ramp(['#440154', '#3B528B', '#21918C', '#5EC962', '#FDE725']);
/** Diverging around the middle: brown (below) -> white -> teal (above). */
export const DIVERGING = ramp(['#8C510A', '#D8B365', '#F6F6F6', '#5AB4AC', '#01665E']);
