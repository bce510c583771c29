import { InputError } from '../util/errors.js';

/**
 * Turning what engines save into trace rows: top-k from router scores (logits or probabilities),
 * and given top-k lists put in descending-gate order. Slot 0 of an engine's list is not
 * necessarily its top-1 (Megatron's routing map lists experts by id, fused kernels may not sort).
 */
export type Scoring = 'softmax' | 'sigmoid';
export type RouterOutput = 'logits' | 'probs' | 'auto';

export interface Routed {
  experts: Int32Array; // T*K, descending gate, ties to the lower expert id
  gates: Float32Array; // T*K
  probs?: Float32Array; // T*E router distribution
}

/**
 * Are these scores already probabilities? For softmax routers: every row non-negative and summing
 * to 1 (within float16/bfloat16 rounding); for sigmoid routers: every value in [0, 1].
 */
export function looksLikeProbs(scores: Float32Array, T: number, E: number, scoring: Scoring): boolean {
  for (let t = 0; t < T; t++) {
    let sum = 0;
    for (let e = 0; e < E; e++) {
      const v = scores[t * E + e];
      if (!(v >= 0) || (scoring === 'sigmoid' && v > 1)) return false;
      sum += v;
    }
    if (scoring === 'softmax' && Math.abs(sum - 1) > 1e-2) return false;
  }
  return T > 0;
}

/** probs = scoring(logits) per row (or the scores themselves), top-k by prob, gates optionally renormalised. */
export function routeFromScores(scores: Float32Array, T: number, E: number, K: number, scoring: Scoring, areProbs: boolean, normTopk: boolean, wantProbs: boolean): Routed {
  const experts = new Int32Array(T * K);
  const gates = new Float32Array(T * K);
  const probs = wantProbs ? new Float32Array(T * E) : undefined;
  const p = new Float64Array(E);
  const topV = new Float64Array(K);
  const topI = new Int32Array(K);
  for (let t = 0; t < T; t++) {
    const row = t * E;
    if (areProbs) for (let e = 0; e < E; e++) p[e] = scores[row + e];
    else if (scoring === 'sigmoid') for (let e = 0; e < E; e++) p[e] = 1 / (1 + Math.exp(-scores[row + e]));
    else {
      let max = -Infinity;
      for (let e = 0; e < E; e++) max = Math.max(max, scores[row + e]);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += p[e] = Math.exp(scores[row + e] - max);
      for (let e = 0; e < E; e++) p[e] /= sum;
    }
    if (probs) for (let e = 0; e < E; e++) probs[row + e] = p[e];
    // one pass keeping the k best in descending order; strict > keeps ties on the lower id
    let n = 0;
    for (let e = 0; e < E; e++) {
      const v = p[e];
      if (n === K && !(v > topV[K - 1])) continue;
      let j = n < K ? n++ : K - 1;
      while (j > 0 && v > topV[j - 1]) {
        topV[j] = topV[j - 1];
        topI[j] = topI[j - 1];
        j--;
      }
      topV[j] = v;
      topI[j] = e;
    }
    let sumK = 0;
    for (let j = 0; j < K; j++) sumK += topV[j];
    for (let j = 0; j < K; j++) {
      experts[t * K + j] = topI[j];
      gates[t * K + j] = normTopk && sumK > 0 ? topV[j] / sumK : topV[j];
    }
  }
  return { experts, gates, probs };
}

/**
 * Given top-k ids (and weights when the engine saved them): check the ids, then order each row by
 * descending weight, ties to the lower id. Without weights the slot order is kept and each choice
 * gets gate 1/K (the engine did not say how much each expert counted).
 */
export function sortTopK(where: string, ids: Int32Array, weights: Float32Array | null, T: number, K: number, E: number | undefined, rowName = 'token'): Routed {
  const experts = new Int32Array(T * K);
  const gates = new Float32Array(T * K);
  const order = Array.from({ length: K }, (_, j) => j);
  for (let t = 0; t < T; t++) {
    const o = t * K;
    for (let j = 0; j < K; j++) {
      const e = ids[o + j];
      if (!Number.isInteger(e) || e < 0 || (E !== undefined && e >= E)) {
        throw new InputError(`${where}: ${rowName} ${t}: expert id ${e} outside 0..${E === undefined ? '' : E - 1}`);
      }
      for (let i = 0; i < j; i++) if (ids[o + i] === e) throw new InputError(`${where}: ${rowName} ${t}: expert ${e} chosen twice in one top-k list`);
    }
    if (weights) {
      for (let j = 0; j < K; j++) if (!Number.isFinite(weights[o + j])) throw new InputError(`${where}: ${rowName} ${t}: weight ${weights[o + j]} is not a finite number`);
      order.sort((a, b) => weights[o + b] - weights[o + a] || ids[o + a] - ids[o + b]);
      for (let j = 0; j < K; j++) {
        experts[o + j] = ids[o + order[j]];
        gates[o + j] = weights[o + order[j]];
      }
      for (let j = 0; j < K; j++) order[j] = j;
    } else {
      for (let j = 0; j < K; j++) {
        experts[o + j] = ids[o + j];
        gates[o + j] = 1 / K;
      }
    }
  }
  return { experts, gates };
}
