import type { AllocationRow, Counts, Normalization } from './types.js';

export type SortOrder = 'text' | 'image' | 'id' | 'load';
export const SORT_ORDERS: readonly SortOrder[] = ['text', 'image', 'id', 'load'];

/**
 * Shares (fractions, not %) of one layer under a normalisation, E rows of M; a row is null when
 * the expert received no token of the analysed modalities (the figure marks it as empty).
 * - expert:   n[e][m] / sum_m n[e][m]
 * - modality: n[e][m] / sum_e n[e][m]          (P(e|m); 0 for a modality absent from the layer)
 * - balanced: like expert after dividing n[e][m] by the modality total N_m
 */
export function layerShares(counts: Counts, li: number, norm: Normalization): (number[] | null)[] {
  const E = counts.numExperts;
  const M = counts.modalities.length;
  const row = (e: number) => Array.from({ length: M }, (_, m) => counts.n[(li * E + e) * M + m]);
  const rows = Array.from({ length: E }, (_, e) => row(e));
  const modTotal = Array.from({ length: M }, (_, m) => rows.reduce((s, r) => s + r[m], 0));
  return rows.map((r) => {
    const total = r.reduce((a, b) => a + b, 0);
    if (!(total > 0)) return null;
    if (norm === 'modality') return r.map((v, m) => (modTotal[m] > 0 ? v / modTotal[m] : 0));
    const w = norm === 'balanced' ? r.map((v, m) => (modTotal[m] > 0 ? v / modTotal[m] : 0)) : r;
    const s = w.reduce((a, b) => a + b, 0);
    return w.map((v) => v / s);
  });
}

/** allocation.csv rows (and the figure's data): share in %, null for an expert with no tokens. */
export function allocationRows(counts: Counts, norm: Normalization = 'expert'): AllocationRow[] {
  const E = counts.numExperts;
  const M = counts.modalities.length;
  const out: AllocationRow[] = [];
  counts.layers.forEach((layer, li) => {
    const shares = layerShares(counts, li, norm);
    for (let e = 0; e < E; e++)
      counts.modalities.forEach((modality, m) => {
        const s = shares[e];
        out.push({ layer, expert: e, modality, count: counts.n[(li * E + e) * M + m], share: s === null ? null : 100 * s[m] });
      });
  });
  return out;
}

/**
 * Expert order of one panel: by descending share of text (or image) under the normalisation, by
 * descending load, or by id. Ties go to the lower id; experts with no tokens come last.
 */
export function expertOrder(counts: Counts, li: number, sort: SortOrder, norm: Normalization = 'expert'): number[] {
  const E = counts.numExperts;
  const M = counts.modalities.length;
  const ids = Array.from({ length: E }, (_, e) => e);
  if (sort === 'id') return ids;
  const shares = layerShares(counts, li, norm);
  let key: (e: number) => number;
  if (sort === 'load') {
    key = (e) => {
      let s = 0;
      for (let m = 0; m < M; m++) s += counts.n[(li * E + e) * M + m];
      return s;
    };
  } else {
    const mi = Math.max(0, counts.modalities.indexOf(sort));
    key = (e) => shares[e]?.[mi] ?? -1;
  }
  const empty = (e: number) => (shares[e] === null ? 1 : 0);
  return ids.sort((a, b) => empty(a) - empty(b) || key(b) - key(a) || a - b);
}

/** allocation.csv text (layer, expert, modality, count, share in %); an empty share is an expert with no tokens. */
export function allocationCsv(rows: readonly AllocationRow[]): string {
  const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(10).replace(/\.?0+$/, ''));
  const lines = ['layer,expert,modality,count,share'];
  for (const r of rows) lines.push(`${r.layer},${r.expert},${r.modality},${num(r.count)},${r.share === null ? '' : num(r.share)}`);
  return lines.join('\n') + '\n';
}
