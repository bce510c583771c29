import { getJson, type ExpertPage } from '../api.js';
import type { Context } from '../context.js';
import { clear, h, select } from '../dom.js';
import { expertColor, inkOn } from '../palette.js';
import { loadImage } from './sample-detail.js';
import { errorText, message, type View } from './view.js';

const PAGE = 48;

/** An example patch: its whole image with the patch outlined, and the patch enlarged beside it. */
async function patchThumb(url: string, patch: number, grid: [number, number] | null, perImage: number, cache: Map<string, Promise<HTMLImageElement>>): Promise<HTMLCanvasElement> {
  let p = cache.get(url);
  if (!p) {
    p = loadImage(url);
    cache.set(url, p);
  }
  const img = await p;
  const side = grid ? grid[1] : Math.round(Math.sqrt(perImage)) || 1;
  const ps = img.width / side;
  const S = 56;
  const c = document.createElement('canvas');
  c.width = 2 * S + 4;
  c.height = S;
  const g = c.getContext('2d')!;
  g.imageSmoothingEnabled = false;
  g.drawImage(img, 0, 0, S, S);
  const cell = S / side;
  g.strokeStyle = '#fff';
  g.lineWidth = 3;
  g.strokeRect((patch % side) * cell + 1, Math.floor(patch / side) * cell + 1, cell - 2, cell - 2);
  g.strokeStyle = '#000';
  g.lineWidth = 1;
  g.strokeRect((patch % side) * cell + 1, Math.floor(patch / side) * cell + 1, cell - 2, cell - 2);
  g.drawImage(img, (patch % side) * ps, Math.floor(patch / side) * ps, ps, ps, S + 4, 0, S, S);
  return c;
}

/** An example patch of an image the trace does not store: the patch grid with the patch filled. */
function gridThumb(patch: number, grid: [number, number] | null, perImage: number): HTMLCanvasElement {
  const sq = Math.round(Math.sqrt(perImage));
  const [rows, cols] = grid ?? (sq * sq === perImage ? [sq, sq] : [1, Math.max(1, perImage)]);
  const S = 56;
  const c = document.createElement('canvas');
  c.width = S;
  c.height = Math.max(8, Math.round((S / cols) * rows));
  c.title = 'no stored image: the patch in its grid';
  const g = c.getContext('2d')!;
  const cw = c.width / cols, ch = c.height / rows;
  g.fillStyle = '#f4f4f4';
  g.fillRect(0, 0, c.width, c.height);
  g.fillStyle = '#333';
  g.fillRect((patch % cols) * cw, Math.floor(patch / cols) * ch, Math.max(1, cw), Math.max(1, ch));
  g.strokeStyle = '#bbb';
  g.strokeRect(0.5, 0.5, c.width - 1, c.height - 1);
  return c;
}

/** View 4: expert drill-down, what expert e receives at layer l: totals, most frequent words, example patches (paginated). */
export function expertView(ctx: Context): View {
  const layers = ctx.trace.layers;
  let layer = ctx.state.layer;
  let expert = 0;
  let modality = ctx.trace.modalities.includes('image') ? 'image' : ctx.trace.modalities.includes('text') ? 'text' : ctx.trace.modalities[0];
  let offset = 0;
  let token: number | null = null; // examples of one word only (its contexts)
  const images = new Map<string, Promise<HTMLImageElement>>();
  const controls = h('div', { class: 'controls' });
  const summary = h('div', { class: 'expert-summary' });
  const words = h('div', { class: 'top-words' });
  const examples = h('div', { class: 'examples', id: 'expert-examples' });
  const examplesTitle = h('h3', { id: 'examples-title' }, 'Examples');
  const groupMix = h('p', { class: 'group-mix' });
  const pager = h('div', { class: 'pager' });
  const el = h('section', { class: 'view', 'aria-label': 'Expert drill-down' }, controls, summary,
    h('div', { class: 'row' }, h('div', {}, h('h3', {}, 'Words over-represented here'), words), h('div', { class: 'grow' }, examplesTitle, examples, pager)));

  const drawControls = () => {
    clear(controls,
      select('Layer', layers.map((l) => ({ value: String(l), label: String(l) })), String(layer), (v) => ctx.go(`#expert/${v}/${expert}`), 'expert-layer'),
      select('Expert', Array.from({ length: ctx.numExperts }, (_, e) => ({ value: String(e), label: String(e) })), String(expert), (v) => ctx.go(`#expert/${layer}/${v}`), 'expert-id'),
      h('div', { class: 'control', role: 'group', 'aria-label': 'Modality of the examples' }, h('span', {}, 'Examples'),
        ctx.trace.modalities.map((m) => h('button', { class: 'chip', 'aria-pressed': String(m === modality), onclick: () => { modality = m; offset = 0; token = null; void render(); } }, m))));
  };

  const render = async () => {
    drawControls();
    try {
      const r = await getJson<ExpertPage>(`api/experts/${layer}/${expert}?count=${ctx.state.count}&modality=${modality}&offset=${offset}&limit=${PAGE}${token !== null ? `&token=${token}` : ''}`);
      const total = Object.values(r.totals).reduce((a, b) => a + b, 0);
      const col = expertColor(expert);
      clear(summary, h('h2', {}, h('span', { class: 'chip-e big', style: { background: col, color: inkOn(col) } }, `expert ${expert}`), ` at layer ${layer}`),
        h('p', {}, total ? `${total.toLocaleString('en-US')} ${ctx.state.count === 'top1' ? 'top-1 ' : ''}assignments: ` : 'No token is routed here. ',
          Object.entries(r.totals).map(([m, n]) => h('span', { class: 'pill' }, `${m} ${n.toLocaleString('en-US')} (${((100 * n) / total).toFixed(1)}%)`))),
        groupMix);
      // The expert's mix over the analysed groups (domain, phase, ...), from the same counts as the figure.
      if (ctx.state.by !== 'modality') {
        void ctx.counts().then((c) => {
          const li = c.layers.indexOf(layer), G = c.modalities.length;
          if (li < 0) return;
          const n = c.modalities.map((_, g) => c.n[(li * c.numExperts + expert) * G + g]);
          const sum = n.reduce((a, b) => a + b, 0);
          if (!sum) return clear(groupMix);
          clear(groupMix, `By ${ctx.state.by}: `, c.modalities.map((g, i) => h('span', { class: 'pill' }, `${g} ${n[i].toLocaleString('en-US')} (${((100 * n[i]) / sum).toFixed(1)}%)`)));
        }, () => clear(groupMix));
      } else clear(groupMix);
      const maxL = Math.max(1, ...r.topWords.map((w) => w.lift));
      const wordOf = (w: { word: string | null; token: number }) => w.word ?? `#${w.token}`;
      clear(words, r.topWords.length
        ? h('div', {},
          h('p', { class: 'hint' }, `Lift: a word\u2019s share of this expert\u2019s text routings over its share of all text routings at layer ${layer} (1 = as often as anywhere). Words routed here at least ${r.minCount} times. Click a word for its contexts.`),
          h('table', { class: 'word-lift' },
            h('thead', {}, h('tr', {}, ['Word', 'Lift', 'Here', 'Layer'].map((c) => h('th', { scope: 'col' }, c)))),
            h('tbody', {}, r.topWords.map((w) => h('tr', { class: w.token === token ? 'selected' : '' },
              h('td', {}, h('button', { class: 'link word', 'aria-pressed': String(w.token === token), onclick: () => { token = w.token === token ? null : w.token; offset = 0; if (modality !== 'text') modality = 'text'; void render(); } }, wordOf(w))),
              h('td', { class: 'lift' }, h('span', { class: 'bar', style: { width: `${(4 * w.lift) / maxL}em` } }), ` ${w.lift.toFixed(2)}\u00d7`),
              h('td', {}, w.n.toLocaleString('en-US')), h('td', {}, w.layerN.toLocaleString('en-US')))))))
        : message(`no word is routed here ${r.minCount} times or more`));
      clear(examplesTitle, token !== null
        ? h('span', {}, `Contexts of \u201c${wordOf(r.topWords.find((w) => w.token === token) ?? { word: null, token })}\u201d, by descending gate `, h('button', { class: 'small', onclick: () => { token = null; offset = 0; void render(); } }, 'all words'))
        : `Examples by descending gate`);
      if (!r.examples.length) clear(examples, message(`no ${modality} tokens routed to expert ${expert} at layer ${layer}`));
      else if (modality === 'image') {
        clear(examples);
        for (const x of r.examples) {
          const b = h('button', { class: 'patch-thumb', title: `sample ${x.sample}, image ${x.image}, patch ${x.token}; experts ${x.experts.join(', ')} (gates ${x.gates.map((g) => g.toFixed(2)).join(', ')})`, onclick: () => ctx.go(`#sample/${x.sample}/${x.pos}`) },
            h('small', {}, `#${x.sample}·${x.token}`));
          examples.append(b);
          if (!x.imageStored) {
            b.prepend(gridThumb(x.token, r.patchGrid, r.patchesPerImage));
            continue;
          }
          patchThumb(`api/samples/${x.sample}/images/${x.image}.png`, x.token, r.patchGrid, r.patchesPerImage, images).then((c) => b.prepend(c), () => b.prepend(gridThumb(x.token, r.patchGrid, r.patchesPerImage)));
        }
      } else {
        clear(examples, h('ol', { class: 'contexts' }, r.examples.map((x) => h('li', {},
          h('span', { class: 'ctx before' }, x.context?.before ?? ''), ' ',
          h('button', { class: 'token', style: { background: col, color: inkOn(col) }, title: `sample ${x.sample}, pos ${x.pos}; experts ${x.experts.join(', ')}`, onclick: () => ctx.go(`#sample/${x.sample}/${x.pos}`) }, x.word ?? `#${x.token}`),
          ' ', h('span', { class: 'ctx after' }, x.context?.after ?? ''),
          h('small', { class: 'gate' }, x.gate === null ? '' : ` gate ${x.gate.toFixed(3)}`), h('small', {}, ` #${x.sample}`)))));
      }
      clear(pager,
        h('button', { class: 'small', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); void render(); } }, '‹ prev'),
        h('span', {}, r.total ? `${offset + 1}–${Math.min(offset + PAGE, r.total)} of ${r.total.toLocaleString('en-US')} ${modality}` : ''),
        h('button', { class: 'small', disabled: offset + PAGE >= r.total, onclick: () => { offset += PAGE; void render(); } }, 'next ›'));
      examples.dataset.ready = `${layer}/${expert}/${modality}/${offset}`;
    } catch (e) {
      clear(summary, message(errorText(e), 'error'));
      clear(words);
      clear(examples);
      clear(pager);
    }
  };

  return {
    id: 'expert', label: 'Experts', el,
    show: async (args) => {
      const [l, e] = args.map(Number);
      if (args.length >= 2 && Number.isInteger(l) && Number.isInteger(e)) {
        if (l !== layer || e !== expert) {
          offset = 0;
          token = null;
        }
        layer = l;
        expert = e;
        if (layers.includes(l)) ctx.set({ layer: l });
      }
      await render();
    },
    update: async (changed) => {
      if (changed.includes('count')) await render();
    },
  };
}
