import { draw, layerLines } from '../charts.js';
import type { Context } from '../context.js';
import { clear, fmtNum, h } from '../dom.js';
import type { LayerStatsJson } from '../api.js';
import { errorText, message, type View } from './view.js';

/** The layers whose router is close to a tie (SPEC §3 near_uniform), for warnings and headlines. */
export function nearUniformLayers(s: LayerStatsJson): number[] {
  return s.layers.filter((l) => l.router.near_uniform).map((l) => l.layer);
}

/**
 * View: per layer, how sure the router is (mean top-1 gate against 1/E, top-1 minus top-2 margin,
 * entropy), how often consecutive tokens keep their expert against chance (Mixtral), and how much a
 * token id alone decides its expert against chance (OLMoE). Layers with a near-uniform router are
 * flagged: their specialisation numbers describe near-ties.
 */
export function routerView(ctx: Context): View {
  const warn = h('div', { id: 'router-warning' });
  const conf = h('div', { class: 'chart', id: 'router-confidence' });
  const repeat = h('div', { class: 'chart', id: 'router-repeat' });
  const spec = h('div', { class: 'chart', id: 'router-token-spec' });
  const notes = h('ul', { class: 'hint notes' });
  const table = h('div', { class: 'table-wrap' });
  const el = h('section', { class: 'view', 'aria-label': 'Router confidence, repeat rate and token specialisation' }, warn, h('div', { class: 'row' }, conf, repeat, spec), notes,
    h('details', { class: 'data-table' }, h('summary', {}, 'The numbers as a table'), table));
  const render = async () => {
    try {
      clear(warn, message('computing (one pass over the routing rows)…'));
      const s = await ctx.layerStats();
      const flagged = nearUniformLayers(s);
      clear(warn, flagged.length
        ? h('p', { class: 'msg warning', role: 'alert' }, `Near-uniform router at layer${flagged.length > 1 ? 's' : ''} ${flagged.join(', ')}: the mean top-1 gate is within 10% of 1/E = ${s.uniformGate.toPrecision(3)}, so the choice is close to a tie there; do not read those layers\u2019 specialisation as strong.`)
        : h('p', { class: 'msg' }, `No layer has a near-uniform router (mean top-1 gate within 10% of 1/E = ${s.uniformGate.toPrecision(3)}).`));
      const flag = flagged.length ? { layers: flagged, label: 'near-uniform router' } : undefined;
      const c = s.layers.flatMap((l) => [
        { layer: l.layer, series: 'mean top-1 gate', value: l.router.gate_top1_mean },
        { layer: l.layer, series: 'uniform 1/E', value: s.uniformGate },
        { layer: l.layer, series: 'mean margin (top-1 \u2212 top-2)', value: l.router.margin_mean },
      ]);
      const positive = c.every((x) => x.value === null || x.value > 0);
      await draw(conf, layerLines(c, { title: 'Router confidence', yTitle: positive ? 'gate (log scale)' : 'gate', yLog: positive, series: ['mean top-1 gate', 'uniform 1/E', 'mean margin (top-1 \u2212 top-2)'], colors: ['#1F77B4', '#999999', '#FF7F0E'], dashes: [[1, 0], [4, 3], [6, 2]], flagged: flag }));
      const r = s.layers.flatMap((l) => [
        { layer: l.layer, series: 'repeat rate', value: l.repeat_rate },
        { layer: l.layer, series: 'chance', value: l.repeat_rate_chance },
      ]);
      await draw(repeat, layerLines(r, { title: 'Consecutive tokens on the same top-1 expert', yTitle: 'share of consecutive pairs', series: ['repeat rate', 'chance'], colors: ['#2CA02C', '#999999'], dashes: [[1, 0], [4, 3]], flagged: flag }));
      const t = s.layers.flatMap((l) => [
        { layer: l.layer, series: 'token specialisation', value: l.token_specialisation },
        { layer: l.layer, series: 'chance (shuffled)', value: l.token_specialisation_chance },
      ]);
      await draw(spec, layerLines(t, { title: 'How much the token id decides the top-1 expert', yTitle: 'mean max P(expert | token id)', series: ['token specialisation', 'chance (shuffled)'], colors: ['#9467BD', '#999999'], dashes: [[1, 0], [4, 3]], flagged: flag }));
      clear(notes, s.notes.map((n) => h('li', {}, n)));
      clear(table, h('table', {},
        h('thead', {}, h('tr', {}, ['Layer', 'top-1 gate', 'margin', 'entropy (bits)', 'near-uniform', 'repeat', 'chance', 'token spec.', 'chance', 'token ids'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, s.layers.map((l) => h('tr', { class: l.router.near_uniform ? 'flagged' : '' }, h('th', { scope: 'row' }, String(l.layer)),
          [l.router.gate_top1_mean, l.router.margin_mean, l.router.entropy_mean].map((v) => h('td', {}, fmtNum(v, 4))),
          h('td', {}, l.router.near_uniform ? 'yes' : ''),
          [l.repeat_rate, l.repeat_rate_chance, l.token_specialisation, l.token_specialisation_chance].map((v) => h('td', {}, fmtNum(v, 3))),
          h('td', {}, String(l.token_specialisation_ids)))))));
      el.dataset.ready = 'true';
    } catch (e) {
      clear(warn, message(errorText(e), 'error'));
    }
  };
  return {
    id: 'router', label: 'Router', el, show: render,
    update: async (changed) => {
      if (changed.includes('groups') || changed.includes('by')) await render();
    },
  };
}
