import type { SampleDetail, TokenRouting } from '../api.js';
import { clear, h } from '../dom.js';
import { expertColor, inkOn } from '../palette.js';

export interface SampleDetailOptions {
  detail: SampleDetail;
  numExperts: number;
  layer: number;
  /** The k-th image of the sample, drawable on a canvas. */
  image: (k: number) => Promise<CanvasImageSource & { width: number; height: number }>;
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

  type Canvas = { canvas: HTMLCanvasElement; img: CanvasImageSource & { width: number; height: number }; side: number; scale: number; tokens: TokenRouting[]; cursor: number };
  const canvases: Canvas[] = [];

  const drawCanvas = (c: Canvas) => {
    const g = c.canvas.getContext('2d')!;
    g.imageSmoothingEnabled = false;
    g.clearRect(0, 0, c.canvas.width, c.canvas.height);
    g.drawImage(c.img, 0, 0, c.canvas.width, c.canvas.height);
    const cell = c.canvas.width / c.side;
    g.globalAlpha = 0.5;
    for (const t of c.tokens) {
      const p = t.token;
      g.fillStyle = expertColor(top1(t));
      g.fillRect((p % c.side) * cell, Math.floor(p / c.side) * cell, cell, cell);
    }
    g.globalAlpha = 1;
    if (highlight !== null) {
      g.fillStyle = 'rgba(255,255,255,0.75)';
      for (const t of c.tokens) if (top1(t) !== highlight) g.fillRect((t.token % c.side) * cell, Math.floor(t.token / c.side) * cell, cell, cell);
    }
    g.strokeStyle = 'rgba(255,255,255,0.6)';
    g.lineWidth = 1;
    for (let i = 1; i < c.side; i++) {
      g.beginPath(); g.moveTo(i * cell, 0); g.lineTo(i * cell, c.canvas.height); g.stroke();
      g.beginPath(); g.moveTo(0, i * cell); g.lineTo(c.canvas.width, i * cell); g.stroke();
    }
    const sel = c.tokens.find((t) => t.pos === selected) ?? (document.activeElement === c.canvas ? c.tokens[c.cursor] : undefined);
    if (sel) {
      const p = sel.token;
      g.lineWidth = 3;
      g.strokeStyle = '#000';
      g.strokeRect((p % c.side) * cell + 1.5, Math.floor(p / c.side) * cell + 1.5, cell - 3, cell - 3);
      g.lineWidth = 1;
      g.strokeStyle = '#fff';
      g.strokeRect((p % c.side) * cell + 3, Math.floor(p / c.side) * cell + 3, cell - 6, cell - 6);
    }
    c.canvas.dataset.layer = String(layer);
  };

  const drawLegend = () => {
    const counts = new Map<number, number>();
    for (const t of detail.tokens) if (t.modality !== 'special') counts.set(top1(t), (counts.get(top1(t)) ?? 0) + 1);
    clear(legend, h('span', { class: 'legend-title' }, `Top-1 expert at layer ${layer}:`),
      Array.from({ length: o.numExperts }, (_, e) => {
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
      const side = Math.round(Math.sqrt(tokens.length)) || 1;
      let img: Canvas['img'];
      try {
        img = await o.image(k);
      } catch (e) {
        imagesRow.append(h('p', { class: 'msg error' }, `image ${k}: ${e instanceof Error ? e.message : e}`));
        continue;
      }
      const scale = Math.max(1, Math.floor(256 / img.width));
      const canvas = h('canvas', {
        width: img.width * scale, height: img.height * scale, tabindex: '0', class: 'patches', 'data-image': String(k),
        'aria-label': `Image ${k}: each patch tinted by its expert; arrow keys move between patches, Enter shows one`,
      });
      const sorted = [...tokens].sort((a, b) => a.token - b.token);
      const c: Canvas = { canvas, img, side, scale, tokens: sorted, cursor: Math.max(0, sorted.findIndex((t) => t.pos === selected)) };
      canvas.addEventListener('click', (ev) => {
        const r = canvas.getBoundingClientRect();
        const x = Math.floor(((ev.clientX - r.left) / r.width) * side), y = Math.floor(((ev.clientY - r.top) / r.height) * side);
        const t = c.tokens.find((t) => t.token === y * side + x);
        if (t) {
          c.cursor = c.tokens.indexOf(t);
          choose(t.pos);
        }
      });
      canvas.addEventListener('keydown', (ev) => {
        const d = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -side, ArrowDown: side }[ev.key];
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
      imagesRow.append(h('figure', {}, canvas, h('figcaption', {}, `image ${k} · ${side}×${side} patches`)));
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
