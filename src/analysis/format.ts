import { expertOrder, layerShares } from './allocation.js';
import type { Counts, LayerMetrics } from './types.js';

const fmt = (x: number | null, d = 3) => (x === null ? '-' : x.toFixed(d));

/** The `moescope analyze` table: one line per layer (dead experts as a count; their ids are in --json). */
export function metricsTable(metrics: readonly LayerMetrics[], groups: readonly string[]): string {
  const has = (f: (m: LayerMetrics) => unknown) => metrics.some((m) => f(m) !== null && f(m) !== undefined);
  const cols: [string, (m: LayerMetrics) => string][] = [
    ['layer', (m) => String(m.layer)],
    ...groups.map((g): [string, (m: LayerMetrics) => string] => [`${g} tok`, (m) => String(Math.round(m.tokens[g] ?? 0))]),
  ];
  if (groups.length >= 2) {
    cols.push(['S', (m) => fmt(m.S)], ['S0', (m) => fmt(m.S0)], ['I(G;E)', (m) => fmt(m.mi)], ['I/H(G)', (m) => fmt(m.mi_norm)], ['JSD', (m) => fmt(m.jsd)]);
  }
  cols.push(['load CV', (m) => fmt(m.load.cv)], ['max/mean', (m) => fmt(m.load.max_over_mean, 2)], ['active', (m) => `${Math.round(m.load.active_fraction * 100)}%`], ['dead', (m) => String(m.load.dead)]);
  if (has((m) => m.router.gate_top1_mean)) cols.push(['top1 gate', (m) => fmt(m.router.gate_top1_mean)]);
  if (has((m) => m.router.margin_mean)) cols.push(['margin', (m) => fmt(m.router.margin_mean)]);
  if (has((m) => m.router.entropy_mean)) cols.push(['H(router)', (m) => fmt(m.router.entropy_mean)]);
  if (has((m) => m.repeat_rate)) cols.push(['repeat', (m) => fmt(m.repeat_rate)], ['chance', (m) => fmt(m.repeat_rate_chance)]);
  if (has((m) => m.token_specialisation)) cols.push(['tok spec', (m) => fmt(m.token_specialisation)], ['chance', (m) => fmt(m.token_specialisation_chance)]);
  const head = cols.map(([h]) => h);
  const rows = metrics.map((m) => cols.map(([, f]) => f(m)));
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

/** Warnings for the summary: layers whose router is close to a tie (SPEC §3 near_uniform). */
export function routerWarnings(metrics: readonly LayerMetrics[], numExperts: number): string[] {
  const flat = metrics.filter((m) => m.router.near_uniform === true);
  if (!flat.length) return [];
  const list = flat.map((m) => `${m.layer} (${fmt(m.router.top1_prob_mean)})`).join(', ');
  return [`warning: near-uniform router in layer${flat.length > 1 ? 's' : ''} ${list}: mean top-1 probability within 10% of 1/E = ${fmt(1 / numExperts)}; its choices are close to ties, so read its specialisation with care`];
}

/**
 * A compact text version of the figure for the terminal: one line per expert, the first modality
 * (text) as '#' from the left and the rest as '.', experts in the figure's order.
 */
export function textBars(counts: Counts, width = 30): string {
  const out: string[] = [];
  const M = counts.modalities.length;
  counts.layers.forEach((layer, li) => {
    out.push(`Layer ${layer}  (# ${counts.modalities[0]}, . ${counts.modalities.slice(1).join('/')})`);
    const shares = layerShares(counts, li, 'expert');
    for (const e of expertOrder(counts, li, 'text')) {
      const s = shares[e];
      if (s === null) {
        out.push(`  ${String(e).padStart(3)} ${' '.repeat(width)}  no tokens`);
        continue;
      }
      const first = Math.round(s[0] * width);
      out.push(`  ${String(e).padStart(3)} ${'#'.repeat(first)}${'.'.repeat(width - first)}  ${(100 * s[0]).toFixed(0).padStart(3)}% ${counts.modalities[0]}`);
    }
  });
  return out.join('\n') + '\n';
}
