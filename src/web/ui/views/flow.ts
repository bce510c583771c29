import { getJson, type FlowJson } from '../api.js';
import { draw, flowMatrix } from '../charts.js';
import type { Context } from '../context.js';
import { clear, h, select } from '../dom.js';
import { errorText, message, type View } from './view.js';

/** View 5: where a token's top-1 expert at layer a sends it at layer b, a transition matrix per modality. */
export function flowView(ctx: Context): View {
  const layers = ctx.trace.layers;
  let a = layers[0];
  let b = layers[Math.min(1, layers.length - 1)];
  const controls = h('div', { class: 'controls' });
  const chart = h('div', { class: 'chart', id: 'flow-chart' });
  const note = h('p', { class: 'hint' });
  const el = h('section', { class: 'view', 'aria-label': 'Flow between layers' }, controls, chart, note);
  const render = async () => {
    clear(controls,
      select('From layer', layers.map((l) => ({ value: String(l), label: String(l) })), String(a), (v) => { a = Number(v); void render(); }, 'flow-a'),
      select('To layer', layers.map((l) => ({ value: String(l), label: String(l) })), String(b), (v) => { b = Number(v); void render(); }, 'flow-b'));
    try {
      const r = await getJson<FlowJson>(`api/flow?a=${a}&b=${b}&modalities=${encodeURIComponent(ctx.state.modalities.join(','))}`);
      const rowTotal = new Map<string, number>();
      for (const x of r.rows) rowTotal.set(`${x.modality}/${x.source}`, (rowTotal.get(`${x.modality}/${x.source}`) ?? 0) + x.n);
      const rows = r.rows.map((x) => ({ ...x, share: x.n / (rowTotal.get(`${x.modality}/${x.source}`) ?? 1) }));
      if (!rows.length) {
        clear(chart, message('no tokens present at both layers'));
        return;
      }
      await draw(chart, flowMatrix(rows, { a, b, numExperts: ctx.numExperts }));
      const same = rows.filter((x) => x.source === x.target).reduce((s, x) => s + x.n, 0);
      const total = rows.reduce((s, x) => s + x.n, 0);
      clear(note, `Each row: the tokens whose top-1 expert at layer ${a} is that expert, spread over their top-1 expert at layer ${b}. ${total.toLocaleString('en-US')} tokens; ${((100 * same) / total).toFixed(1)}% keep the same expert id (ids of different layers are unrelated unless the model ties them).`);
    } catch (e) {
      clear(chart, message(errorText(e), 'error'));
    }
  };
  return {
    id: 'flow', label: 'Flow', el,
    show: async () => {
      if (a === b && layers.length > 1) b = layers[layers.indexOf(a) + 1] ?? layers[0];
      await render();
    },
    update: async (changed) => {
      if (changed.includes('modalities')) await render();
    },
  };
}
