import type { CoactivationJson } from '../api.js';
import type { Context } from '../context.js';
import { clear, fmtNum, h } from '../dom.js';
import { BLUES, heatmap } from '../heatmap.js';
import { chartWidth } from './figure.js';
import { layerSlider } from './layer-slider.js';
import { errorText, message, type View } from './view.js';

/**
 * View: co-activation at one layer (OLMoE), C[i][j] = share of the tokens that chose expert i which
 * also chose j, as a canvas heatmap; the strongest pairs listed beside it.
 */
export function coactivationView(ctx: Context): View {
  const slider = layerSlider(ctx.trace.layers, ctx.state.layer, (l) => ctx.set({ layer: l }));
  const map = h('div', { id: 'coactivation-map' });
  const pairs = h('div', { class: 'pairs' });
  const el = h('section', { class: 'view', 'aria-label': 'Expert co-activation' }, h('div', { class: 'controls' }, slider.el),
    h('div', { class: 'row' }, map, pairs),
    h('p', { class: 'hint' }, 'Row i: of the tokens that chose expert i, the share that also chose expert j (the diagonal is 1 and drawn grey). Under uniform independent routing every off-diagonal share is (k\u22121)/(E\u22121). Click a cell (or focus the map, arrow keys, Enter) to open expert j.'));
  const render = async () => {
    slider.set(ctx.state.layer);
    if (ctx.trace.meta.top_k < 2) {
      clear(map, message(`Top-${ctx.trace.meta.top_k} routing: each token chooses one expert, so no two experts are ever chosen together.`));
      clear(pairs);
      return;
    }
    try {
      const layer = ctx.state.layer;
      const c = await ctx.fetchOnce<CoactivationJson>(`api/coactivation/${layer}?${ctx.groupQuery}`);
      if (layer !== ctx.state.layer) return;
      const E = c.numExperts;
      const chance = (c.topK - 1) / (E - 1);
      let max = chance * 2;
      for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) if (i !== j) max = Math.max(max, c.matrix[i * E + j] ?? 0);
      const v = (i: number, j: number) => (i === j ? null : c.matrix[i * E + j]);
      clear(map, heatmap({
        id: 'coactivation', title: `Co-activation at layer ${layer}: P(j chosen | i chosen)`,
        rows: E, cols: E, xTitle: 'Expert j', yTitle: 'Expert i',
        value: v, color: (x) => BLUES(x / max),
        describe: (i, j) => i === j ? `expert ${i}: chosen by ${c.chosen[i].toLocaleString('en-US')} tokens` : `experts ${i} and ${j}: ${fmtNum(100 * (c.matrix[i * E + j] ?? NaN), 1)}% of the tokens that chose ${i} also chose ${j} (chance ${(100 * chance).toFixed(1)}%)`,
        onActivate: (_i, j) => ctx.go(`#expert/${layer}/${j}`),
        maxWidth: Math.min(chartWidth() - 320, 760), maxHeight: 760,
        legend: { min: 0, max, label: 'P(j | i)', format: (x) => `${Math.round(100 * x)}%` },
      }).el);
      const top: [number, number, number][] = [];
      for (let i = 0; i < E; i++) for (let j = i + 1; j < E; j++) {
        const a = c.matrix[i * E + j], b = c.matrix[j * E + i];
        if (a !== null && b !== null) top.push([i, j, Math.min(a, b)]);
      }
      top.sort((x, y) => y[2] - x[2]);
      clear(pairs, h('h3', {}, 'Pairs chosen together most'), h('table', {},
        h('thead', {}, h('tr', {}, ['Experts', 'min(P(j|i), P(i|j))', '\u00d7 chance'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, top.slice(0, 15).map(([i, j, p]) => h('tr', {}, h('td', {}, h('a', { href: `#expert/${layer}/${i}` }, String(i)), ' + ', h('a', { href: `#expert/${layer}/${j}` }, String(j))),
          h('td', {}, `${(100 * p).toFixed(1)}%`), h('td', {}, (p / chance).toFixed(1)))))));
      el.dataset.ready = String(layer);
    } catch (e) {
      clear(map, message(errorText(e), 'error'));
    }
  };
  return {
    id: 'coactivation', label: 'Co-activation', el, show: render,
    update: async (changed) => {
      if (changed.includes('layer') || changed.includes('groups') || changed.includes('by')) await render();
    },
  };
}
