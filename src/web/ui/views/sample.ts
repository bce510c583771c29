import { getJson, type SampleDetail, type SampleList } from '../api.js';
import type { Context } from '../context.js';
import { clear, h } from '../dom.js';
import { layerSlider } from './layer-slider.js';
import { loadImage, sampleDetailPanel } from './sample-detail.js';
import { errorText, message, type View } from './view.js';

const PAGE = 40;

/** View 3: sample drill-down. Pick a sample; see its patches and tokens coloured by expert at the chosen layer. */
export function sampleView(ctx: Context): View {
  let offset = 0;
  let query = '';
  let current: number | null = null;
  let panel: ReturnType<typeof sampleDetailPanel> | null = null;
  const list = h('ol', { class: 'sample-list', 'aria-label': 'Samples' });
  const pager = h('div', { class: 'pager' });
  const search = h('input', { type: 'search', placeholder: 'search text or source', 'aria-label': 'Search samples' });
  const detail = h('div', { class: 'detail', id: 'sample-detail' });
  const heading = h('div', { class: 'sample-heading' });
  const slider = layerSlider(ctx.trace.layers, ctx.state.layer, (l) => ctx.set({ layer: l }));
  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => { query = search.value; offset = 0; void loadList(); }, 200);
  });
  const gotoBox = h('input', { type: 'number', min: '0', placeholder: 'sample #', 'aria-label': 'Go to sample number', class: 'goto' });
  gotoBox.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && gotoBox.value !== '') ctx.go(`#sample/${gotoBox.value}`);
  });
  const el = h('section', { class: 'view sample-view', 'aria-label': 'Sample drill-down' },
    h('aside', { class: 'sidebar' }, h('div', { class: 'row' }, search, gotoBox), list, pager),
    h('div', { class: 'main' }, h('div', { class: 'controls' }, slider.el), heading, detail));

  const loadList = async () => {
    if (!ctx.trace.hasSamples) {
      clear(list, message('This trace has no samples.parquet; enter a sample number to see its routing.'));
      return;
    }
    try {
      const r = await getJson<SampleList>(`api/samples?offset=${offset}&limit=${PAGE}&q=${encodeURIComponent(query)}`);
      clear(list, r.rows.map((s) => h('li', {},
        h('button', { class: 'sample-item' + (s.sample === current ? ' selected' : ''), 'aria-current': s.sample === current ? 'true' : undefined, onclick: () => ctx.go(`#sample/${s.sample}`) },
          h('b', {}, `#${s.sample}`), ' ', s.images ? h('span', { class: 'badge' }, `${s.images} img`) : null, s.domain ? h('span', { class: 'badge domain' }, s.domain) : null, ' ', s.text || h('i', {}, '(no text)')))));
      clear(pager,
        h('button', { class: 'small', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); void loadList(); } }, '‹ prev'),
        h('span', {}, r.total ? `${offset + 1}–${Math.min(offset + PAGE, r.total)} of ${r.total}` : 'no samples'),
        h('button', { class: 'small', disabled: offset + PAGE >= r.total, onclick: () => { offset += PAGE; void loadList(); } }, 'next ›'));
    } catch (e) {
      clear(list, message(errorText(e), 'error'));
    }
  };

  const loadSample = async (id: number, pos?: number) => {
    current = id;
    clear(detail, message('loading…'));
    try {
      const d = await getJson<SampleDetail>(`api/samples/${id}`);
      clear(heading, h('h2', {}, `Sample ${d.sample}`), d.source ? h('p', { class: 'source' }, d.source, d.domain ? ` · domain ${d.domain}` : '') : null, d.text ? h('p', { class: 'text' }, d.text) : null);
      panel = sampleDetailPanel({
        detail: d, numExperts: ctx.numExperts, layer: ctx.state.layer, selected: pos,
        image: (k) => (k < d.images ? loadImage(`api/samples/${id}/images/${k}.png`) : null),
        patchGrid: ctx.trace.patchGrid,
        onLayer: (l) => ctx.set({ layer: l }),
      });
      clear(detail, panel.el);
    } catch (e) {
      panel = null;
      clear(heading);
      clear(detail, message(errorText(e), 'error'));
    }
    void loadList();
  };

  return {
    id: 'sample', label: 'Samples', el,
    show: async (args) => {
      slider.set(ctx.state.layer);
      const id = args[0] !== undefined && /^\d+$/.test(args[0]) ? Number(args[0]) : (current ?? 0);
      if (args[0] !== undefined && !/^\d+$/.test(args[0])) {
        clear(detail, message(`not a sample number: ${args[0]}`, 'error'));
        void loadList();
        return;
      }
      const pos = args[1] !== undefined && /^\d+$/.test(args[1]) ? Number(args[1]) : undefined;
      if (id !== current || !panel || pos !== undefined) await loadSample(id, pos);
      else panel.setLayer(ctx.state.layer);
    },
    update: async (changed) => {
      if (changed.includes('layer')) {
        slider.set(ctx.state.layer);
        panel?.setLayer(ctx.state.layer);
      }
    },
  };
}
