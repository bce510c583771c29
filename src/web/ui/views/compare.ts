import { layerShares } from '../../../analysis/allocation.js';
import { countsFromJson, type CompareJson } from '../api.js';
import { draw, layerLines } from '../charts.js';
import type { Context } from '../context.js';
import { clear, h, select } from '../dom.js';
import { DIVERGING, heatmap } from '../heatmap.js';
import { expertTotals } from './depth.js';
import { chartWidth } from './figure.js';
import { errorText, message, type View } from './view.js';

const TRACE_COLORS = ['#1F77B4', '#FF7F0E', '#2CA02C', '#D62728', '#9467BD', '#8C564B', '#E377C2', '#17BECF', '#BCBD22', '#7F7F7F'];

/**
 * View 6: many traces (`serve A --compare B C ...`, e.g. checkpoints of one run): S, load CV and
 * router saturation against A per layer, one line per trace; when the models agree, the per-expert
 * difference of one trace against A as a heatmap.
 */
export function compareView(ctx: Context): View {
  const warn = h('div', { id: 'compare-warning' });
  const sChart = h('div', { class: 'chart', id: 'compare-s' });
  const satChart = h('div', { class: 'chart', id: 'compare-saturation' });
  const cvChart = h('div', { class: 'chart', id: 'compare-cv' });
  const diffControls = h('div', { class: 'controls' });
  const diff = h('div', { id: 'compare-diff' });
  const body = h('div', {}, warn, h('div', { class: 'row' }, sChart, satChart, cvChart), diffControls, diff);
  const el = h('section', { class: 'view', 'aria-label': 'Compare traces' }, body);
  let other = 1;
  const render = async () => {
    if (ctx.info.traces.length < 2) {
      clear(body, message('Only one trace is open. Start the dashboard with `moescope serve A --compare B [C ...]` to compare traces (e.g. checkpoints of one run captured on the same data).'));
      return;
    }
    try {
      const r = await ctx.fetchOnce<CompareJson>(`api/compare?count=${ctx.state.count}&${ctx.groupQuery}`);
      const label = (i: number) => `${r.names[i]}: ${r.folders[i]}`;
      const series = r.names.map((_, i) => label(i));
      const colors = series.map((_, i) => TRACE_COLORS[i % TRACE_COLORS.length]);
      clear(warn, r.warning ? h('p', { class: 'msg warning', role: 'alert' }, r.warning) : h('p', { class: 'msg' }, `The traces record the same model: experts are matched by id.`));
      const long = (key: 'S' | 'cv' | 'saturation') => r.layers.flatMap((l) => l[key].map((v, i) => ({ layer: l.layer, series: label(i), value: v })));
      const loadOnly = r.layers.every((l) => l.S.every((v) => v === null));
      if (loadOnly) clear(sChart, message(`S needs two groups or more (now: ${r.groups.join(', ')}).`));
      else await draw(sChart, layerLines(long('S'), { title: `Specialisation S over ${r.by}`, yTitle: 'S', series, colors }));
      if (r.layers.some((l) => l.saturation.some((v) => v !== null))) {
        await draw(satChart, layerLines(long('saturation').filter((x) => x.series !== label(0)), { title: `Router saturation against ${r.folders[0]}`, yTitle: 'share of top-k choices also in A\u2019s', series: series.slice(1), colors: colors.slice(1), yDomain: [0, 1] }));
      } else clear(satChart, message('No saturation: the traces do not share tokens or experts (see above).'));
      await draw(cvChart, layerLines(long('cv'), { title: 'Load imbalance (CV of expert shares)', yTitle: 'CV', series, colors }));
      if (!r.counts) {
        clear(diffControls);
        clear(diff);
      } else {
        const counts = r.counts.map(countsFromJson);
        if (other >= counts.length) other = 1;
        clear(diffControls, select('Per-expert difference of', r.names.slice(1).map((_, i) => ({ value: String(i + 1), label: label(i + 1) })), String(other), (v) => { other = Number(v); void render(); }, 'compare-other'));
        const A = counts[0], B = counts[other];
        const layers = A.layers.filter((l) => B.layers.includes(l));
        const E = A.numExperts;
        let value: (r: number, c: number) => number | null;
        let title: string, unit: string;
        if (A.modalities.length >= 2) {
          const mi = A.modalities.length - 1;
          const g = A.modalities[mi];
          const sa = layers.map((l) => layerShares(A, A.layers.indexOf(l), 'expert')), sb = layers.map((l) => layerShares(B, B.layers.indexOf(l), 'expert'));
          value = (r, c) => (sa[r][c] && sb[r][c] ? 100 * (sb[r][c]![mi] - sa[r][c]![mi]) : null);
          title = `${g} share per expert, ${r.folders[other]} \u2212 ${r.folders[0]} (percentage points)`;
          unit = 'points';
        } else {
          const ta = expertTotals(A), tb = expertTotals(B);
          const sum = (t: Float64Array, li: number) => t.subarray(li * E, li * E + E).reduce((x, y) => x + y, 0) || 1;
          value = (r, c) => {
            const la = A.layers.indexOf(layers[r]), lb = B.layers.indexOf(layers[r]);
            return 100 * (tb[lb * E + c] / sum(tb, lb) - ta[la * E + c] / sum(ta, la));
          };
          title = `Load per expert, ${r.folders[other]} \u2212 ${r.folders[0]} (percentage points of the routings)`;
          unit = 'points';
        }
        let max = 0.01;
        for (let i = 0; i < layers.length; i++) for (let e = 0; e < E; e++) max = Math.max(max, Math.abs(value(i, e) ?? 0));
        clear(diff, heatmap({
          id: 'compare-diff-map', title, rows: layers.length, cols: E, rowLabel: (i) => String(layers[i]), xTitle: 'Expert', yTitle: 'Layer',
          value, color: (v) => DIVERGING(0.5 + v / (2 * max)),
          describe: (i, e) => `layer ${layers[i]}, expert ${e}: ${value(i, e) === null ? 'no routings in one trace' : `${value(i, e)! > 0 ? '+' : ''}${value(i, e)!.toFixed(2)} ${unit}`}`,
          onActivate: (i, e) => ctx.go(`#expert/${layers[i]}/${e}`),
          maxWidth: Math.min(chartWidth(), 1100), legend: { min: -max, max, mid: 0, label: unit, format: (v) => v.toFixed(1) },
        }).el);
      }
      el.dataset.ready = 'true';
    } catch (e) {
      clear(warn, message(errorText(e), 'error'));
    }
  };
  return {
    id: 'compare', label: 'Compare', el, show: render,
    update: async (changed) => {
      if (changed.some((k) => k === 'count' || k === 'groups' || k === 'by')) await render();
    },
  };
}
