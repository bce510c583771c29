import { layerShares } from '../../../analysis/allocation.js';
import { depthHeatmap, draw, metricLines } from '../charts.js';
import type { Context } from '../context.js';
import { getJson, type MetricsJson } from '../api.js';
import { clear, fmtNum, h } from '../dom.js';
import { errorText, message, type View } from './view.js';

/** View 2: depth overview, a layers x experts heatmap of image share and S, S0, I(M;E), JSD by layer. */
export function depthView(ctx: Context): View {
  const heat = h('div', { id: 'depth-heatmap', class: 'chart' });
  const lines = h('div', { id: 'depth-metrics', class: 'chart' });
  const table = h('div', { class: 'table-wrap' });
  const el = h('section', { class: 'view', 'aria-label': 'Depth overview' },
    h('div', { class: 'row' }, heat, lines),
    h('p', { class: 'hint' }, 'S: mean specialisation of the experts (1 = each expert sees one modality); S0: its value when experts mirror the layer\u2019s modality mix; I(M;E): mutual information of modality and expert, bits; JSD: Jensen-Shannon divergence between P(e|text) and P(e|image), bits. Click a cell to open that expert.'),
    table);
  const render = async () => {
    const { count, modalities } = ctx.state;
    try {
      const [counts, metrics] = await Promise.all([
        ctx.counts(),
        getJson<MetricsJson>(`api/metrics?count=${count}&modalities=${encodeURIComponent(modalities.join(','))}`),
      ]);
      const mi = counts.modalities.indexOf('image');
      const E = counts.numExperts, M = counts.modalities.length;
      const rows = counts.layers.flatMap((layer, li) => {
        const shares = layerShares(counts, li, 'expert');
        return shares.map((s, e) => {
          let n = 0;
          for (let m = 0; m < M; m++) n += counts.n[(li * E + e) * M + m];
          return { layer, expert: e, image: s === null || mi < 0 ? null : 100 * s[mi], count: n };
        });
      });
      await draw(heat, depthHeatmap(rows, { numExperts: E, layers: counts.layers, title: 'Image share of each expert\u2019s tokens' }), (d) => {
        if (typeof d.layer === 'number' && typeof d.expert === 'number') ctx.go(`#expert/${d.layer}/${d.expert}`);
      });
      const long = metrics.layers.flatMap((m) => [
        { layer: m.layer, metric: 'S', value: m.S },
        { layer: m.layer, metric: 'S0 (baseline)', value: m.S0 },
        { layer: m.layer, metric: 'I(M;E)', value: m.mi },
        { layer: m.layer, metric: 'JSD(text, image)', value: m.jsd },
      ]);
      await draw(lines, metricLines(long, { title: 'Modality specialisation by layer' }));
      const hasEntropy = metrics.layers.some((m) => m.router.entropy_mean !== null);
      clear(table, h('table', { class: 'metrics' },
        h('thead', {}, h('tr', {}, ['Layer', 'S', 'S0', 'I(M;E)', 'I/H(M)', 'JSD', 'load CV', 'max/mean', 'active', 'dead', ...(hasEntropy ? ['router H'] : [])].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, metrics.layers.map((m) => h('tr', {},
          h('th', { scope: 'row' }, String(m.layer)),
          [m.S, m.S0, m.mi, m.mi_norm, m.jsd, m.load.cv, m.load.max_over_mean, m.load.active_fraction].map((v) => h('td', {}, fmtNum(v))),
          h('td', {}, m.load.dead_ids.join(', ') || '–'),
          hasEntropy ? h('td', {}, fmtNum(m.router.entropy_mean)) : null,
        )))));
    } catch (e) {
      clear(heat, message(errorText(e), 'error'));
    }
  };
  return {
    id: 'depth', label: 'Depth', el, show: render,
    update: async (changed) => {
      if (changed.includes('count') || changed.includes('modalities')) await render();
    },
  };
}
