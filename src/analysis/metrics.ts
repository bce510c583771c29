import type { Counts, LayerMetrics } from './types.js';

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

/**
 * SPEC §3 metrics of one layer from its E x M counts (pure: small arrays, not rows).
 * `routerEntropy` comes from the trace's `prob` column when it has one.
 */
export function layerMetrics(counts: Counts, li: number, routerEntropy: number | null = null): LayerMetrics {
  const E = counts.numExperts;
  const M = counts.modalities.length;
  const at = (e: number, m: number) => counts.n[(li * E + e) * M + m];
  const perExpert = Array.from({ length: E }, (_, e) => Array.from({ length: M }, (_, m) => at(e, m)));
  const expertTotal = perExpert.map(sumOf);
  const modalityTotal = Array.from({ length: M }, (_, m) => perExpert.reduce((s, row) => s + row[m], 0));
  const N = sumOf(expertTotal);
  const tokens: Record<string, number> = {};
  counts.modalities.forEach((m, mi) => (tokens[m] = counts.tokens[li * M + mi]));

  const logM = M >= 2 ? Math.log2(M) : 0;
  const withTokens = perExpert.filter((_, e) => expertTotal[e] > 0);
  const hM = N > 0 ? entropyBits(modalityTotal) : null;
  const specialization = logM > 0 && withTokens.length > 0
    ? withTokens.reduce((s, row) => s + (1 - entropyBits(row) / logM), 0) / withTokens.length
    : null;
  const specializationBaseline = logM > 0 && hM !== null ? 1 - hM / logM : null;

  // I(M;E) = sum p(e,m) log2 p(e,m) / (p(e) p(m))
  let mi: number | null = null;
  if (N > 0) {
    mi = 0;
    for (let e = 0; e < E; e++)
      for (let m = 0; m < M; m++) {
        const p = perExpert[e][m] / N;
        if (p > 0) mi += p * Math.log2(p / ((expertTotal[e] / N) * (modalityTotal[m] / N)));
      }
    mi = Math.max(0, mi);
  }
  const miNorm = mi !== null && hM !== null && hM > 0 ? mi / hM : null;

  const ti = counts.modalities.indexOf('text');
  const ii = counts.modalities.indexOf('image');
  const jsd = ti >= 0 && ii >= 0 && modalityTotal[ti] > 0 && modalityTotal[ii] > 0
    ? jsdBits(perExpert.map((r) => r[ti]), perExpert.map((r) => r[ii]))
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
    specialization,
    specializationBaseline,
    mutualInformation: mi,
    mutualInformationNormalized: miNorm,
    modalityEntropy: hM,
    jsdTextImage: jsd,
    load: { share, cv, maxOverMean, activeFraction: (E - dead.length) / E, deadExperts: dead },
    routerEntropy,
  };
}

export function allLayerMetrics(counts: Counts, routerEntropy?: Map<number, number | null>): LayerMetrics[] {
  return counts.layers.map((l, li) => layerMetrics(counts, li, routerEntropy?.get(l) ?? null));
}
