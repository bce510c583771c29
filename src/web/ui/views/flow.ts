import type { FlowJson } from '../api.js';
import type { Context } from '../context.js';
import { clear, h, select } from '../dom.js';
import { BLUES, heatmap } from '../heatmap.js';
import { chartWidth } from './figure.js';
import { errorText, message, type View } from './view.js';

/** View 5: where a token's top-1 expert at layer a sends it at layer b, a transition matrix drawn to a canvas (256 x 256 is one bitmap). */
export function flowView(ctx: Context): View {
  const layers = ctx.trace.layers;
  let a = layers[0];
  let b = layers[Math.min(1, layers.length - 1)];
  let group = ''; // '' = all analysed groups together
  const controls = h('div', { class: 'controls' });
  const chart = h('div', { id: 'flow-chart' });
  const note = h('p', { class: 'hint' });
  const el = h('section', { class: 'view', 'aria-label': 'Flow between layers' }, controls, chart, note);
  const render = async () => {
    const groups = ctx.state.groups;
    if (group && !groups.includes(group)) group = '';
    clear(controls,
      select('From layer', layers.map((l) => ({ value: String(l), label: String(l) })), String(a), (v) => { a = Number(v); void render(); }, 'flow-a'),
      select('To layer', layers.map((l) => ({ value: String(l), label: String(l) })), String(b), (v) => { b = Number(v); void render(); }, 'flow-b'),
      select('Tokens', [{ value: '', label: `all analysed (${groups.join(', ')})` }, ...groups.map((g) => ({ value: g, label: g }))], group, (v) => { group = v; void render(); }, 'flow-group'));
    try {
      const r = await ctx.fetchOnce<FlowJson>(`api/flow?a=${a}&b=${b}&${ctx.groupQuery}`);
      const E = r.numExperts;
      const n = new Float64Array(E * E);
      r.groups.forEach((g, gi) => {
        if (!group || g === group) for (let k = 0; k < E * E; k++) n[k] += r.n[gi][k];
      });
      const rowTotal = Array.from({ length: E }, (_, i) => n.subarray(i * E, i * E + E).reduce((x, y) => x + y, 0));
      const total = rowTotal.reduce((x, y) => x + y, 0);
      if (!total) {
        clear(chart, message('no tokens present at both layers'));
        return;
      }
      const share = (i: number, j: number) => (rowTotal[i] > 0 ? n[i * E + j] / rowTotal[i] : null);
      clear(chart, heatmap({
        id: 'flow', title: `Top-1 expert at layer ${a} (rows) \u2192 at layer ${b} (columns)${group ? `, ${group} tokens` : ''}`,
        rows: E, cols: E, xTitle: `Top-1 expert at layer ${b}`, yTitle: `Top-1 expert at layer ${a}`,
        value: share, color: (v) => BLUES(v),
        describe: (i, j) => `${n[i * E + j].toLocaleString('en-US')} of the ${rowTotal[i].toLocaleString('en-US')} tokens on expert ${i} at layer ${a} go to expert ${j} at layer ${b}${rowTotal[i] ? ` (${((100 * n[i * E + j]) / rowTotal[i]).toFixed(1)}%)` : ''}`,
        onActivate: (_i, j) => ctx.go(`#expert/${b}/${j}`),
        maxWidth: Math.min(chartWidth(), 820), maxHeight: 760,
        legend: { min: 0, max: 1, label: 'share of row', format: (v) => `${Math.round(100 * v)}%` },
      }).el);
      let same = 0;
      for (let i = 0; i < E; i++) same += n[i * E + i];
      clear(note, `Each row: the tokens whose top-1 expert at layer ${a} is that expert, spread over their top-1 expert at layer ${b}. ${total.toLocaleString('en-US')} tokens; ${((100 * same) / total).toFixed(1)}% keep the same expert id (ids of different layers are unrelated unless the model ties them).`);
      chart.dataset.ready = `${a}/${b}`;
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
      if (changed.includes('groups') || changed.includes('by')) await render();
    },
  };
}
