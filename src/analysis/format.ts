import { expertOrder, layerShares } from './allocation.js';
import type { Counts, LayerMetrics } from './types.js';

const fmt = (x: number | null, d = 3) => (x === null ? '-' : x.toFixed(d));

/** The `moescope analyze` table: one line per layer. */
export function metricsTable(metrics: readonly LayerMetrics[], modalities: readonly string[]): string {
  const hasEntropy = metrics.some((m) => m.routerEntropy !== null);
  const head = ['layer', ...modalities.map((m) => `${m} tok`), 'S', 'S0', 'I(M;E)', 'I/H(M)', 'JSD', 'load CV', 'max/mean', 'active', 'dead', ...(hasEntropy ? ['H(router)'] : [])];
  const rows = metrics.map((m) => [
    String(m.layer),
    ...modalities.map((mod) => String(Math.round(m.tokens[mod] ?? 0))),
    fmt(m.specialization),
    fmt(m.specializationBaseline),
    fmt(m.mutualInformation),
    fmt(m.mutualInformationNormalized),
    fmt(m.jsdTextImage),
    fmt(m.load.cv),
    fmt(m.load.maxOverMean, 2),
    `${Math.round(m.load.activeFraction * 100)}%`,
    m.load.deadExperts.length ? m.load.deadExperts.join(' ') : '-',
    ...(hasEntropy ? [fmt(m.routerEntropy)] : []),
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
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
