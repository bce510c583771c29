import type { Counts, LayerExtras, LayerMetrics } from './types.js';

/** Entropy in bits of non-negative weights (normalised here); 0 log 0 = 0. */
export function entropyBits(w: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i];
  if (!(sum > 0)) return 0;
  let h = 0;
  for (let i = 0; i < w.length; i++) {
    const p = w[i] / sum;
    if (p > 0) h -= p * Math.log2(p);
  }
  return h;
}

/** Jensen-Shannon divergence in bits between two weight vectors (each normalised here). */
export function jsdBits(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const sa = sumOf(a), sb = sumOf(b);
  const mix = Array.from({ length: a.length }, (_, i) => (a[i] / sa + b[i] / sb) / 2);
  return Math.max(0, entropyBits(mix) - (entropyBits(a) + entropyBits(b)) / 2);
}

function sumOf(w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i];
  return s;
}

/** A layer without the extra metrics (router, repeat, co-activation, token): all null. */
export function emptyExtras(): LayerExtras {
  return {
    router: { gate_top1_mean: null, top1_prob_mean: null, margin_mean: null, entropy_mean: null, near_uniform: null },
    repeat_rate: null, repeat_rate_chance: null, coactivation: null,
    token_specialisation: null, token_specialisation_chance: null, token_specialisation_ids: 0,
  };
}

/**
 * SPEC §3 metrics of one layer from its E x G counts (pure: small arrays, not rows), joined with
 * the layer's extras (computed in SQL by extras.ts).
 */
export function layerMetrics(counts: Counts, li: number, extras: LayerExtras = emptyExtras()): LayerMetrics {
  const E = counts.numExperts;
  const M = counts.modalities.length;
  const at = (e: number, m: number) => counts.n[(li * E + e) * M + m];
  const perExpert = Array.from({ length: E }, (_, e) => Array.from({ length: M }, (_, m) => at(e, m)));
  const expertTotal = perExpert.map(sumOf);
  const groupTotal = Array.from({ length: M }, (_, m) => perExpert.reduce((s, row) => s + row[m], 0));
  const N = sumOf(expertTotal);
  const tokens: Record<string, number> = {};
  counts.modalities.forEach((m, mi) => (tokens[m] = counts.tokens[li * M + mi]));

  const logM = M >= 2 ? Math.log2(M) : 0;
  const withTokens = perExpert.filter((_, e) => expertTotal[e] > 0);
  const hM = N > 0 ? entropyBits(groupTotal) : null;
  const S = logM > 0 && withTokens.length > 0
    ? withTokens.reduce((s, row) => s + (1 - entropyBits(row) / logM), 0) / withTokens.length
    : null;
  const S0 = logM > 0 && hM !== null ? 1 - hM / logM : null;

  // I(G;E) = sum p(e,g) log2 p(e,g) / (p(e) p(g))
  let mi: number | null = null;
  if (N > 0 && M >= 2) {
    mi = 0;
    for (let e = 0; e < E; e++)
      for (let m = 0; m < M; m++) {
        const p = perExpert[e][m] / N;
        if (p > 0) mi += p * Math.log2(p / ((expertTotal[e] / N) * (groupTotal[m] / N)));
      }
    mi = Math.max(0, mi);
  }
  const miNorm = mi !== null && hM !== null && hM > 0 ? mi / hM : null;

  // JSD between the first two groups' P(e|g)
  const jsd = M >= 2 && groupTotal[0] > 0 && groupTotal[1] > 0
    ? jsdBits(perExpert.map((r) => r[0]), perExpert.map((r) => r[1]))
    : null;

  const share = expertTotal.map((t) => (N > 0 ? t / N : 0));
  const mean = 1 / E;
  const cv = N > 0 ? Math.sqrt(share.reduce((s, f) => s + (f - mean) ** 2, 0) / E) / mean : null;
  const maxOverMean = N > 0 ? Math.max(...share) / mean : null;
  const dead = expertTotal.flatMap((t, e) => (t > 0 ? [] : [e]));

  return {
    layer: counts.layers[li],
    tokens,
    assignments: N,
    S,
    S0,
    mi,
    mi_norm: miNorm,
    h_groups: hM,
    jsd,
    load: { share, cv, max_over_mean: maxOverMean, active_fraction: (E - dead.length) / E, dead: dead.length, dead_ids: dead },
    ...extras,
  };
}

/** Metrics of every layer of `counts`, with each layer's `extras` (extras.ts) when known. */
export function allLayerMetrics(counts: Counts, extras?: Map<number, LayerExtras>): LayerMetrics[] {
  return counts.layers.map((l, li) => layerMetrics(counts, li, extras?.get(l) ?? emptyExtras()));
}
