import { layerShares } from '../../../analysis/allocation.js';
import { entropyBits } from '../../../analysis/metrics.js';
import type { Counts } from '../../../analysis/types.js';
import { draw, metricLines } from '../charts.js';
import type { Context } from '../context.js';
import { type MetricsJson } from '../api.js';
import { clear, fmtNum, h } from '../dom.js';
import { DIVERGING, heatmap, VIRIDIS } from '../heatmap.js';
import { chartWidth, fallbackNote } from './figure.js';
import { errorText, message, type View } from './view.js';

/** Each expert's routings at each layer, summed over the analysed groups. */
export function expertTotals(counts: Counts): Float64Array {
  const E = counts.numExperts, M = counts.modalities.length;
  const out = new Float64Array(counts.layers.length * E);
  for (let li = 0; li < counts.layers.length; li++) for (let e = 0; e < E; e++) {
    let s = 0;
    for (let m = 0; m < M; m++) s += counts.n[(li * E + e) * M + m];
    out[li * E + e] = s;
  }
  return out;
}

/** A layers x experts load heatmap: each expert's routings over the uniform share (1 = uniform; log scale, capped at 1/8x and 8x). */
export function loadHeatmap(ctx: Context, counts: Counts, id: string): HTMLElement {
  const E = counts.numExperts;
  const tot = expertTotals(counts);
  const layerSum = counts.layers.map((_, li) => tot.subarray(li * E, li * E + E).reduce((a, b) => a + b, 0));
  const rel = (li: number, e: number) => (layerSum[li] > 0 ? (tot[li * E + e] * E) / layerSum[li] : null);
  // Colour range: the largest departure from uniform, in log2, between 2x and 8x, so that a mild imbalance is still visible.
  let cap = 1;
  for (let li = 0; li < counts.layers.length; li++) for (let e = 0; e < E; e++) {
    const v = rel(li, e);
    if (v !== null) cap = Math.max(cap, Math.abs(Math.log2(Math.max(v, 1 / 8))));
  }
  cap = Math.min(3, cap);
  const fmtX = (x: number) => (x >= 1 ? `${+x.toPrecision(2)}\u00d7` : `1/${+(1 / x).toPrecision(2)}\u00d7`);
  return heatmap({
    id, title: 'Load: each expert\u2019s routings relative to the uniform share (1\u00d7 = uniform)',
    rows: counts.layers.length, cols: E, rowLabel: (r) => String(counts.layers[r]), xTitle: 'Expert', yTitle: 'Layer',
    value: (r, c) => rel(r, c), color: (v) => DIVERGING(0.5 + Math.max(-cap, Math.min(cap, Math.log2(Math.max(v, 2 ** -cap)))) / (2 * cap)),
    describe: (r, c) => `layer ${counts.layers[r]}, expert ${c}: ${tot[r * E + c].toLocaleString('en-US')} routings, ${fmtNum(rel(r, c), 2)}\u00d7 uniform`,
    onActivate: (r, c) => ctx.go(`#expert/${counts.layers[r]}/${c}`),
    maxWidth: Math.min(chartWidth(), 1100), maxHeight: 560,
    legend: { min: 0, max: 1, mid: 0.5, color: DIVERGING, label: '\u00d7 uniform (log)', format: (t) => (t === 0 ? `\u2264${fmtX(2 ** -cap)}` : t === 1 ? `\u2265${fmtX(2 ** cap)}` : '1\u00d7') },
  }).el;
}

/** View 2: depth overview, layers x experts heatmaps (group share or specialisation, load) and S, S0, I(G;E), JSD by layer. */
export function depthView(ctx: Context): View {
  const note = h('div', {});
  const headline = h('p', { class: 'headline', id: 'depth-headline' });
  const heat = h('div', { id: 'depth-heatmap' });
  const load = h('div', { id: 'depth-load' });
  const lines = h('div', { id: 'depth-metrics', class: 'chart' });
  const table = h('div', { class: 'table-wrap' });
  const hint = h('p', { class: 'hint' });
  const el = h('section', { class: 'view', 'aria-label': 'Depth overview' }, note, headline, h('div', { class: 'row' }, heat, lines), load, hint, table);
  const render = async () => {
    const { count } = ctx.state;
    clear(note, fallbackNote(ctx));
    try {
      const [counts, metrics] = await Promise.all([
        ctx.counts(),
        ctx.fetchOnce<MetricsJson>(`api/metrics?count=${count}&${ctx.groupQuery}`),
      ]);
      const E = counts.numExperts, G = counts.modalities.length;
      const groups = counts.modalities;
      const shareOf = (li: number) => layerShares(counts, li, 'expert');
      const shares = counts.layers.map((_, li) => shareOf(li));
      const tot = expertTotals(counts);
      if (ctx.loadOnly) clear(heat);
      else if (G === 2) {
        const g = groups[1];
        clear(heat, heatmap({
          id: 'depth-share', title: `${g} share of each expert\u2019s routings (${groups[0]} \u2190 \u2192 ${g})`,
          rows: counts.layers.length, cols: E, rowLabel: (r) => String(counts.layers[r]), xTitle: 'Expert', yTitle: 'Layer',
          value: (r, c) => (shares[r][c] ? shares[r][c]![1] : null), color: (v) => DIVERGING(v),
          describe: (r, c) => `layer ${counts.layers[r]}, expert ${c}: ${shares[r][c] ? `${(100 * shares[r][c]![1]).toFixed(1)}% ${g}` : 'no routings'}, ${tot[r * E + c].toLocaleString('en-US')} routings`,
          onActivate: (r, c) => ctx.go(`#expert/${counts.layers[r]}/${c}`),
          maxWidth: Math.min(chartWidth() / 2, 760), legend: { min: 0, max: 1, mid: 0.5, label: `% ${g}`, format: (v) => `${Math.round(100 * v)}%` },
        }).el);
      } else {
        const spec = (r: number, c: number) => (shares[r][c] ? 1 - entropyBits(shares[r][c]!) / Math.log2(G) : null);
        let top = 0.05;
        for (let r = 0; r < counts.layers.length; r++) for (let c = 0; c < E; c++) top = Math.max(top, spec(r, c) ?? 0);
        clear(heat, heatmap({
          id: 'depth-share', title: `Specialisation of each expert over ${G} ${ctx.state.by} groups (1 - H/log\u2082G)`,
          rows: counts.layers.length, cols: E, rowLabel: (r) => String(counts.layers[r]), xTitle: 'Expert', yTitle: 'Layer',
          value: spec, color: (v) => VIRIDIS(v / top),
          describe: (r, c) => {
            const s = shares[r][c];
            if (!s) return `layer ${counts.layers[r]}, expert ${c}: no routings`;
            const top = s.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0])[0];
            return `layer ${counts.layers[r]}, expert ${c}: specialisation ${fmtNum(spec(r, c), 3)}, mostly ${groups[top[1]]} (${(100 * top[0]).toFixed(1)}%)`;
          },
          onActivate: (r, c) => ctx.go(`#expert/${counts.layers[r]}/${c}`),
          maxWidth: Math.min(chartWidth() / 2, 760), legend: { min: 0, max: top, label: 'specialisation' },
        }).el);
      }
      clear(load, loadHeatmap(ctx, counts, 'depth-load-map'));
      if (!ctx.loadOnly) {
        const two = G === 2;
        const gname = ctx.state.by === 'modality' ? 'M' : 'G';
        const series = ['S', 'S0 (baseline)', `I(${gname};E)`, ...(two ? [`JSD(${groups[0]}, ${groups[1]})`] : [])];
        const long = metrics.layers.flatMap((m) => [
          { layer: m.layer, metric: series[0], value: m.S },
          { layer: m.layer, metric: series[1], value: m.S0 },
          { layer: m.layer, metric: series[2], value: m.mi },
          ...(two ? [{ layer: m.layer, metric: series[3], value: m.jsd }] : []),
        ]);
        await draw(lines, metricLines(long, { title: `${ctx.state.by === 'modality' ? 'Modality' : ctx.state.by[0].toUpperCase() + ctx.state.by.slice(1)} specialisation by layer`, series }));
        lines.hidden = false;
      } else {
        clear(lines);
        lines.hidden = true;
      }
      clear(hint, ctx.loadOnly
        ? 'Load relative to the uniform share: teal above, brown below; white is an even load. Click a cell (or focus the map, arrow keys, Enter) to open that expert.'
        : `S: mean specialisation of the experts (1 = each expert sees one group); S0: its value when experts mirror the layer\u2019s group mix; I(G;E): mutual information of group and expert, bits; JSD: Jensen-Shannon divergence between P(e|g) of the two groups, bits (for two groups of equal size it equals I(G;E), so JSD is drawn wide and pale beneath the dashed I(G;E)). Click a cell to open that expert.`);
      const hasEntropy = metrics.layers.some((m) => m.router.entropy_mean !== null);
      clear(table, h('table', { class: 'metrics' },
        h('thead', {}, h('tr', {}, ['Layer', 'S', 'S0', 'I(G;E)', 'I/H(G)', 'JSD', 'load CV', 'max/mean', 'active', 'dead', ...(hasEntropy ? ['router H'] : [])].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, metrics.layers.map((m) => h('tr', {},
          h('th', { scope: 'row' }, String(m.layer)),
          [m.S, m.S0, m.mi, m.mi_norm, m.jsd, m.load.cv, m.load.max_over_mean, m.load.active_fraction].map((v) => h('td', {}, fmtNum(v))),
          // dead: a count (ids in the tooltip), so 124 dead experts do not make a column of ids
          h('td', { title: m.load.dead_ids.length ? `dead experts: ${m.load.dead_ids.join(', ')}` : '' }, String(m.load.dead_ids.length)),
          hasEntropy ? h('td', {}, fmtNum(m.router.entropy_mean)) : null,
        )))));
      el.dataset.ready = ctx.groupQuery;
      if (!ctx.loadOnly) void headlineOf(metrics).then((x) => clear(headline, x), () => clear(headline));
      else clear(headline);
    } catch (e) {
      clear(heat, message(errorText(e), 'error'));
    }
  };
  /** The most specialised layer (S above its baseline), never one whose router is a near-tie (SPEC §3 near_uniform). */
  const headlineOf = async (metrics: MetricsJson): Promise<HTMLElement | null> => {
    const stats = await ctx.layerStats();
    const flagged = new Set(stats.layers.filter((l) => l.router.near_uniform).map((l) => l.layer));
    const ranked = metrics.layers.filter((m) => m.S !== null).map((m) => ({ layer: m.layer, gain: m.S! - (m.S0 ?? 0), S: m.S! }))
      .sort((a, b) => b.gain - a.gain || a.layer - b.layer);
    const best = ranked.find((r) => !flagged.has(r.layer));
    const skipped = ranked.slice(0, ranked.indexOf(best!)).filter((r) => flagged.has(r.layer)).map((r) => r.layer);
    if (!best) return h('p', { class: 'msg warning' }, 'Every layer\u2019s router is near-uniform: no layer is called the most specialised.');
    return h('span', {}, `Most specialised layer: ${best.layer} (S ${best.S.toFixed(3)}, ${best.gain >= 0 ? '+' : ''}${best.gain.toFixed(3)} over its baseline S0).`,
      skipped.length ? h('span', { class: 'warning-text' }, ` Layer${skipped.length > 1 ? 's' : ''} ${skipped.join(', ')} scored higher but ${skipped.length > 1 ? 'have' : 'has'} a near-uniform router (mean top-1 gate within 10% of 1/E), so ${skipped.length > 1 ? 'they are' : 'it is'} not named.`) : null);
  };
  return {
    id: 'depth', label: 'Depth', el, show: render,
    update: async (changed) => {
      if (changed.includes('count') || changed.includes('groups') || changed.includes('by')) await render();
    },
  };
}
