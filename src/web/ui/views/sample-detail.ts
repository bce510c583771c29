import type { SampleDetail, TokenRouting } from '../api.js';
import { clear, h } from '../dom.js';
import { expertColor, inkOn } from '../palette.js';

export interface SampleDetailOptions {
  detail: SampleDetail;
  numExperts: number;
  layer: number;
  /** The k-th image of the sample, drawable on a canvas; null when the trace stores none (the patch grid is drawn alone). */
  image: (k: number) => Promise<CanvasImageSource & { width: number; height: number }> | null;
  /** Patch grid of an image (rows, columns) when the trace says it; else a square grid is assumed only for a square count. */
  patchGrid?: [number, number] | null;
  /** A position to select at once (e.g. the patch an expert's example pointed at). */
  selected?: number;
  /** Called when the user picks a layer in the per-layer table. */
  onLayer?: (layer: number) => void;
}

const SPECIAL_WORDS: Record<string, string> = {};

function label(t: TokenRouting): string {
  if (t.word) return t.modality === 'special' && !t.word.startsWith('<') ? `<${t.word}>` : t.word;
  if (t.modality === 'special') return t.pos === 0 ? '<bos>' : `<special ${t.token}>`;
  return SPECIAL_WORDS[t.token] ?? `#${t.token}`;
}

/**
 * A sample's routing at one layer: its images with every patch tinted by the expert it went to, its
 * text tokens coloured the same way, a legend; clicking (or arrow keys + Enter on) a patch or a token
 * shows its experts and gates at every layer.
 */
export function sampleDetailPanel(o: SampleDetailOptions): { el: HTMLElement; setLayer(layer: number): void } {
  const { detail } = o;
  let layer = o.layer;
  let selected: number | null = o.selected ?? null; // pos
  let highlight: number | null = null; // expert under the pointer in the legend: the others fade
  const byImage = new Map<number, TokenRouting[]>();
  for (const t of detail.tokens) if (t.image >= 0) (byImage.get(t.image) ?? byImage.set(t.image, []).get(t.image)!).push(t);
  const li = () => Math.max(0, detail.layers.indexOf(layer));
  const top1 = (t: TokenRouting) => t.experts[li()]?.[0] ?? -1;

  const legend = h('div', { class: 'legend', 'aria-label': 'Expert colours' });
  const imagesRow = h('div', { class: 'images' });
  const tokensRow = h('div', { class: 'tokens', role: 'group', 'aria-label': 'Tokens' });
  const info = h('div', { class: 'token-info', 'aria-live': 'polite' });
  const el = h('div', { class: 'sample-detail' }, legend, imagesRow, tokensRow, info);

  /** An image part: the expert map (each patch filled with its expert's colour) and, beside it, the image itself with the same grid. */
  type Canvas = { canvas: HTMLCanvasElement; photo: HTMLCanvasElement | null; img: (CanvasImageSource & { width: number; height: number }) | null; rows: number; cols: number; tokens: TokenRouting[]; cursor: number };
  const canvases: Canvas[] = [];

  const outline = (g: CanvasRenderingContext2D, c: Canvas, cw: number, ch: number) => {
    g.strokeStyle = 'rgba(255,255,255,0.7)';
    g.lineWidth = 1;
    for (let i = 1; i < c.cols; i++) { g.beginPath(); g.moveTo(i * cw, 0); g.lineTo(i * cw, c.rows * ch); g.stroke(); }
    for (let i = 1; i < c.rows; i++) { g.beginPath(); g.moveTo(0, i * ch); g.lineTo(c.cols * cw, i * ch); g.stroke(); }
    const sel = c.tokens.find((t) => t.pos === selected) ?? (document.activeElement === c.canvas ? c.tokens[c.cursor] : undefined);
    if (sel) {
      const x = (sel.token % c.cols) * cw, y = Math.floor(sel.token / c.cols) * ch;
      g.lineWidth = 3;
      g.strokeStyle = '#000';
      g.strokeRect(x + 1.5, y + 1.5, cw - 3, ch - 3);
      g.lineWidth = 1;
      g.strokeStyle = '#fff';
      g.strokeRect(x + 3, y + 3, cw - 6, ch - 6);
    }
  };

  const drawCanvas = (c: Canvas) => {
    // The map: opaque expert colours, so that they never mix with the image's own colours (a red shape under a blue tint).
    const g = c.canvas.getContext('2d')!;
    const cw = c.canvas.width / c.cols, ch = c.canvas.height / c.rows;
    g.clearRect(0, 0, c.canvas.width, c.canvas.height);
    for (const t of c.tokens) {
      const e = top1(t);
      g.fillStyle = highlight !== null && e !== highlight ? '#F2F2F2' : expertColor(e);
      g.fillRect((t.token % c.cols) * cw, Math.floor(t.token / c.cols) * ch, cw, ch);
    }
    outline(g, c, cw, ch);
    if (c.photo && c.img) {
      const p = c.photo.getContext('2d')!;
      p.imageSmoothingEnabled = false;
      p.drawImage(c.img, 0, 0, c.photo.width, c.photo.height);
      if (highlight !== null) {
        p.fillStyle = 'rgba(255,255,255,0.8)';
        for (const t of c.tokens) if (top1(t) !== highlight) p.fillRect((t.token % c.cols) * cw, Math.floor(t.token / c.cols) * ch, cw, ch);
      }
      outline(p, c, cw, ch);
    }
    c.canvas.dataset.layer = String(layer);
  };

  const drawLegend = () => {
    const counts = new Map<number, number>();
    for (const t of detail.tokens) if (t.modality !== 'special') counts.set(top1(t), (counts.get(top1(t)) ?? 0) + 1);
    clear(legend, h('span', { class: 'legend-title' }, `Top-1 expert at layer ${layer}:`),
      // Many experts (64-256): only those this sample uses at this layer, so the legend stays a line or two.
      Array.from({ length: o.numExperts }, (_, e) => e).filter((e) => o.numExperts <= 32 || counts.get(e)).map((e) => {
        const on = () => setHighlight(e), off = () => setHighlight(null);
        return h('button', { class: 'legend-item' + (counts.get(e) ? '' : ' unused'), title: `expert ${e}: ${counts.get(e) ?? 0} tokens of this sample (hover or focus to show only them)`,
          onmouseenter: on, onmouseleave: off, onfocus: on, onblur: off },
        h('span', { class: 'swatch', style: { background: expertColor(e) } }), `${e}`, h('small', {}, ` ${counts.get(e) ?? 0}`));
      }));
  };

  const drawTokens = () => {
    clear(tokensRow, detail.tokens.filter((t) => t.image < 0).map((t) => {
      const e = top1(t);
      const special = t.modality === 'special';
      const bg = special ? '#e6e6e6' : expertColor(e);
      return h('button', {
        class: 'token' + (special ? ' special' : '') + (t.pos === selected ? ' selected' : '') + (highlight !== null && e !== highlight ? ' faded' : ''),
        style: { background: bg, color: special ? '#444' : inkOn(bg) },
        title: `pos ${t.pos} · ${t.modality} · expert ${t.experts[li()]?.join(', ') ?? '–'}`,
        'data-pos': String(t.pos), 'data-expert': String(e),
        onclick: () => choose(t.pos),
      }, label(t));
    }));
  };

  const drawInfo = () => {
    const t = detail.tokens.find((x) => x.pos === selected);
    if (!t) {
      clear(info, h('p', { class: 'hint' }, 'Click a patch or a token (or focus an image and use the arrow keys) to see its experts and gates at every layer.'));
      return;
    }
    const what = t.image >= 0 ? `patch ${t.token} of image ${t.image}` : `${t.modality} token “${label(t)}”`;
    clear(info,
      h('h3', {}, `Position ${t.pos}: ${what}`),
      h('table', { class: 'routing' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Layer'), h('th', { scope: 'col' }, 'Experts (gate)'))),
        h('tbody', {}, detail.layers.map((l, i) => h('tr', { class: l === layer ? 'current' : '' },
          h('th', { scope: 'row' }, o.onLayer ? h('button', { class: 'link', onclick: () => o.onLayer!(l) }, String(l)) : String(l)),
          h('td', {}, (t.experts[i] ?? []).map((e, k) => h('span', { class: 'chip-e', style: { background: expertColor(e), color: inkOn(expertColor(e)) } },
            `${e}`, h('small', {}, ` ${(100 * (t.gates[i]?.[k] ?? 0)).toFixed(0)}%`)))))))));
  };

  const setHighlight = (e: number | null) => {
    if (highlight === e) return;
    highlight = e;
    for (const c of canvases) drawCanvas(c);
    drawTokens();
  };

  const choose = (pos: number) => {
    selected = pos;
    for (const c of canvases) drawCanvas(c);
    drawTokens();
    drawInfo();
  };

  const build = async () => {
    for (const [k, tokens] of [...byImage.entries()].sort((a, b) => a[0] - b[0])) {
      const n = Math.max(1, ...tokens.map((t) => t.token + 1));
      const sq = Math.round(Math.sqrt(n));
      // The grid: this image's own (samples image_grids [t, h, w], frames stacked), the trace's (meta/config),
      // a square for a square count, else one row (never a guessed shape).
      const own = o.detail.imageGrids?.[k];
      const [rows, cols] = own && own.length === 3 && own[0] * own[1] * own[2] >= n ? [own[0] * own[1], own[2]]
        : o.patchGrid && o.patchGrid[0] * o.patchGrid[1] >= n ? o.patchGrid : sq * sq === n ? [sq, sq] : [1, n];
      let img: Canvas['img'] = null;
      let why = '';
      const pending = o.image(k);
      if (pending) {
        try {
          img = await pending;
        } catch (e) {
          why = e instanceof Error ? e.message : String(e);
        }
      } else why = 'the trace stores no image for this part';
      const W = img ? img.width * Math.max(1, Math.floor(256 / img.width)) : Math.min(512, cols * Math.max(4, Math.floor(256 / Math.max(rows, cols))));
      const H = img ? img.height * Math.max(1, Math.floor(256 / img.width)) : Math.round((W / cols) * rows);
      const canvas = h('canvas', {
        width: W, height: H, tabindex: '0', class: 'patches', 'data-image': String(k),
        'aria-label': `Image ${k}: each patch filled with the colour of its expert; arrow keys move between patches, Enter shows one`,
      });
      const photo = img ? h('canvas', { width: W, height: H, class: 'photo', 'aria-hidden': 'true' }) : null;
      const sorted = [...tokens].sort((a, b) => a.token - b.token);
      const c: Canvas = { canvas, photo, img, rows, cols, tokens: sorted, cursor: Math.max(0, sorted.findIndex((t) => t.pos === selected)) };
      const pick = (ev: MouseEvent) => {
        const r = (ev.currentTarget as HTMLCanvasElement).getBoundingClientRect();
        const x = Math.floor(((ev.clientX - r.left) / r.width) * cols), y = Math.floor(((ev.clientY - r.top) / r.height) * rows);
        const t = c.tokens.find((t) => t.token === y * cols + x);
        if (t) {
          c.cursor = c.tokens.indexOf(t);
          choose(t.pos);
        }
      };
      canvas.addEventListener('click', pick);
      photo?.addEventListener('click', pick);
      canvas.addEventListener('keydown', (ev) => {
        const d = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols }[ev.key];
        if (d !== undefined) {
          ev.preventDefault();
          c.cursor = Math.min(c.tokens.length - 1, Math.max(0, c.cursor + d));
          choose(c.tokens[c.cursor].pos);
        } else if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          choose(c.tokens[c.cursor].pos);
        }
      });
      canvas.addEventListener('focus', () => drawCanvas(c));
      canvases.push(c);
      imagesRow.append(h('figure', { class: 'image-part' }, h('div', { class: 'pair' }, photo, canvas),
        h('figcaption', {}, `image ${k} · ${rows}\u00d7${cols} patches`, img ? ' · left: the image, right: top-1 expert of each patch' : ` · patch grid only (${why})`)));
      drawCanvas(c);
    }
    if (!byImage.size) imagesRow.append(h('p', { class: 'hint' }, 'This sample has no image.'));
    el.dataset.ready = 'true';
  };

  drawLegend();
  drawTokens();
  drawInfo();
  void build();
  return {
    el,
    setLayer(l: number) {
      layer = l;
      for (const c of canvases) drawCanvas(c);
      drawLegend();
      drawTokens();
      drawInfo();
    },
  };
}

/** Load an image URL as a decoded <img>. */
export function loadImage(url: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}
