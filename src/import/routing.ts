import { InputError } from '../util/errors.js';
import { softmaxExps } from './softmax-exps.js';
import { softmaxTopKRows } from './softmax-topk.js';

/**
 * Turning what engines save into trace rows: top-k from router scores (logits or probabilities),
 * and given top-k lists put in descending-gate order. Slot 0 of an engine's list is not
 * necessarily its top-1 (Megatron's routing map lists experts by id, fused kernels may not sort).
 */
export type Scoring = 'softmax' | 'sigmoid';
export type RouterOutput = 'logits' | 'probs' | 'auto';

export interface Routed {
  // all arrays read-only: they may be the reader's or shared (placeholder gates)
  experts: Int32Array; // T*K, descending gate, ties to the lower expert id
  gates: Float32Array; // T*K
  probs?: Float32Array; // T*E router distribution
  /** the producer saved ids only: `gates` are placeholders (the trace's gate column is NULL) */
  noGates?: boolean;
  /** every id is known to be in 0..idsBelow-1 (checked, or chosen among this many scores): no need to scan them again */
  idsBelow?: number;
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

/** Put (v, e) into the descending list topV/topI at slot `from` or above; strict > keeps ties on the lower id. */
function insertSorted(topV: Float64Array, topI: Int32Array, v: number, e: number, from: number): void {
  let j = from;
  while (j > 0 && v > topV[j - 1]) {
    topV[j] = topV[j - 1];
    topI[j] = topI[j - 1];
    j--;
  }
  topV[j] = v;
  topI[j] = e;
}

/** The K chosen experts and their gates (renormalised over the K when normTopk) into row `out`. */
function writeChoices(experts: Int32Array, gates: Float32Array, out: number, topI: Int32Array, topP: Float64Array, K: number, normTopk: boolean): void {
  let sumK = 0;
  for (let j = 0; j < K; j++) sumK += topP[j];
  for (let j = 0; j < K; j++) {
    experts[out + j] = topI[j];
    gates[out + j] = normTopk && sumK > 0 ? topP[j] / sumK : topP[j];
  }
}

/**
 * probs = scoring(logits) per row (or the scores themselves), top-k by prob, gates optionally
 * renormalised. Softmax over logits (the usual) goes through softmax-topk.wat, then SoftmaxTopK.row,
 * each bit for bit this plain loop, which takes the rows they leave. With `where`, a score that is
 * not finite is an InputError naming the first one (row, then expert): the kernel and the fast
 * path leave such rows to the plain loop, which checks its row first, so the driver need not scan
 * every score beforehand.
 */
export function routeFromScores(scores: Float32Array, T: number, E: number, K: number, scoring: Scoring, areProbs: boolean, normTopk: boolean, wantProbs: boolean, where?: string): Routed {
  const experts = new Int32Array(T * K);
  const gates = new Float32Array(T * K);
  const probs = wantProbs ? new Float32Array(T * E) : undefined;
  const p = new Float64Array(E);
  const topV = new Float64Array(K);
  const topI = new Int32Array(K);
  const plainRow = (t: number): void => {
    const row = t * E;
    if (where !== undefined) checkFiniteRow(scores, row, E, where, t);
    if (areProbs) for (let e = 0; e < E; e++) p[e] = scores[row + e];
    else if (scoring === 'sigmoid') for (let e = 0; e < E; e++) p[e] = 1 / (1 + Math.exp(-scores[row + e]));
    else {
      let max = -Infinity;
      for (let e = 0; e < E; e++) max = Math.max(max, scores[row + e]);
      const sum = softmaxExps(scores, row, E, max, p);
      for (let e = 0; e < E; e++) p[e] /= sum;
    }
    if (probs) for (let e = 0; e < E; e++) probs[row + e] = p[e];
    // one pass keeping the k best in descending order; strict > keeps ties on the lower id
    let n = 0;
    for (let e = 0; e < E; e++) {
      const v = p[e];
      if (n === K && !(v > topV[K - 1])) continue;
      insertSorted(topV, topI, v, e, n < K ? n++ : K - 1);
    }
    writeChoices(experts, gates, t * K, topI, topV, K, normTopk);
  };
  const softmaxLogits = !areProbs && scoring === 'softmax' && K < E;
  if (!(softmaxLogits && !probs && softmaxTopKRows(scores, T, E, K, normTopk, experts, gates, plainRow))) {
    const fast = softmaxLogits ? new SoftmaxTopK(E, K) : null;
    for (let t = 0; t < T; t++) if (!(fast && fast.row(scores, t * E, experts, gates, t * K, normTopk, probs))) plainRow(t);
  }
  return { experts, gates, probs, idsBelow: E };
}

/**
 * Given top-k ids (and weights when the engine saved them): check the ids, then order each row by
 * descending weight, ties to the lower id. Without weights the slot order is kept and each choice
 * gets gate 1/K (the engine did not say how much each expert counted).
 */
export function sortTopK(where: string, ids: Int32Array, weights: Float32Array | null, T: number, K: number, E: number | undefined, rowName = 'token'): Routed {
  // duplicates: each expert id stamped with its row (+1) when the count is known, else pairwise
  const seen = E !== undefined && E <= 1 << 16 ? new Int32Array(E) : null;
  if (!weights) {
    checkIds(where, ids, T, K, E, seen, rowName);
    // slot order kept (the ids themselves: nobody writes into them), each choice 1/K
    return { experts: ids.length === T * K ? ids : ids.subarray(0, T * K), gates: placeholderGates(T * K, K), idsBelow: E };
  }
  const experts = new Int32Array(T * K);
  const gates = new Float32Array(T * K);
  const order = Array.from({ length: K }, (_, j) => j);
  for (let t = 0; t < T; t++) {
    const o = t * K;
    checkRowIds(where, ids, t, K, E, seen, rowName);
    for (let j = 0; j < K; j++) if (!Number.isFinite(weights[o + j])) throw new InputError(`${where}: ${rowName} ${t}: weight ${weights[o + j]} is not a finite number`);
    order.sort((a, b) => weights[o + b] - weights[o + a] || ids[o + a] - ids[o + b]);
    for (let j = 0; j < K; j++) {
      experts[o + j] = ids[o + order[j]];
      gates[o + j] = weights[o + order[j]];
    }
    for (let j = 0; j < K; j++) order[j] = j;
  }
  return { experts, gates, idsBelow: E };
}

/**
 * Every row of a top-k id list (a loop of its own: see util/int-scan.ts). With the expert count
 * known, one flat loop finds the first bad row (an id out of range, or one its row stamped in
 * `seen` already), and checkRowIds names the problem.
 */
function checkIds(where: string, ids: Int32Array, T: number, K: number, E: number | undefined, seen: Int32Array | null, rowName: string): void {
  if (E === undefined || seen === null || ids.length < T * K) {
    for (let t = 0; t < T; t++) checkRowIds(where, ids, t, K, E, seen, rowName);
    return;
  }
  const bad = firstBadRow(ids, T, K, E, seen);
  if (bad >= 0) {
    seen.fill(0);
    checkRowIds(where, ids, bad, K, E, seen, rowName);
  }
}

/** The first row with an id outside 0..E-1 or twice, or -1; seen[e] holds the last row (+1) that chose e. */
function firstBadRow(ids: Int32Array, T: number, K: number, E: number, seen: Int32Array): number {
  for (let t = 0, o = 0; t < T; t++) {
    const stamp = t + 1;
    for (let j = 0; j < K; j++, o++) {
      const e = ids[o];
      if (e >>> 0 >= E || seen[e] === stamp) return t;
      seen[e] = stamp;
    }
  }
  return -1;
}

/** Row t of a top-k id list: every id in 0..E-1 (Int32Array values are integers; past the end, undefined fails), none twice. */
function checkRowIds(where: string, ids: Int32Array, t: number, K: number, E: number | undefined, seen: Int32Array | null, rowName: string): void {
  const o = t * K;
  const max = E ?? Infinity;
  for (let j = 0; j < K; j++) {
    const e = ids[o + j];
    if (!(e >= 0 && e < max)) throw new InputError(`${where}: ${rowName} ${t}: expert id ${e} outside 0..${E === undefined ? '' : E - 1}`);
    if (seen) {
      if (seen[e] === t + 1) throw new InputError(`${where}: ${rowName} ${t}: expert ${e} chosen twice in one top-k list`);
      seen[e] = t + 1;
    } else for (let i = 0; i < j; i++) if (ids[o + i] === e) throw new InputError(`${where}: ${rowName} ${t}: expert ${e} chosen twice in one top-k list`);
  }
}

let gateFill: Float32Array = new Float32Array(0);

/** n gates of 1/K for ids without weights: a view of one shared array (read-only, like all Routed arrays). */
function placeholderGates(n: number, K: number): Float32Array {
  if (gateFill.length < n || gateFill[0] !== Math.fround(1 / K)) gateFill = new Float32Array(Math.max(n, gateFill.length)).fill(1 / K);
  return gateFill.subarray(0, n);
}

/**
 * The softmax top-k of one row without dividing every exp by the sum: select the K+1 best raw
 * logits while finding the max (exp is monotonic), then divide only those. exp and the division
 * can merge two values into one probability, which would change the tie order; the caller falls
 * back to the plain loop for such rows (and rows with NaNs or infinities), so the result is bit
 * for bit that of the plain loop.
 */
class SoftmaxTopK {
  private readonly topV: Float64Array;
  private readonly topI: Int32Array;
  private readonly topP: Float64Array;
  private readonly ex: Float64Array; // exp(score - max) of the row, computed once
  constructor(readonly E: number, readonly K: number) {
    this.ex = new Float64Array(E);
    this.topV = new Float64Array(K + 1);
    this.topP = new Float64Array(K + 1);
    this.topI = new Int32Array(K + 1);
  }

  /** Write row `row/E` into experts/gates at `out` (and probs at `row`); false = caller must do it. */
  row(scores: Float32Array, row: number, experts: Int32Array, gates: Float32Array, out: number, normTopk: boolean, probs: Float32Array | undefined): boolean {
    const { E, K, topV, topI, topP, ex } = this;
    const K1 = K + 1;
    // the first K+1 sorted by insertion, then only values above the K+1-th get in (E > K)
    let max = -Infinity;
    for (let e = 0; e < K1; e++) {
      const v = scores[row + e];
      if (v - v !== 0) return false; // NaN or infinity
      if (v > max) max = v;
      insertSorted(topV, topI, v, e, e);
    }
    let thr = topV[K];
    for (let e = K1; e < E; e++) {
      const v = scores[row + e];
      if (v > thr) {
        if (v > max) max = v;
        insertSorted(topV, topI, v, e, K);
        thr = topV[K];
      } else if (v - v !== 0) return false;
    }
    if (max === Infinity) return false;
    const sum = softmaxExps(scores, row, E, max, ex);
    if (!(sum > 0) || sum === Infinity) return false;
    // probabilities of the K+1 best must stay strictly ordered for the selection to be the plain loop's
    topP[0] = ex[topI[0]] / sum;
    for (let j = 1; j < K1; j++) {
      topP[j] = ex[topI[j]] / sum;
      if (!(topP[j] < topP[j - 1])) return false;
    }
    if (probs) for (let e = 0; e < E; e++) probs[row + e] = ex[e] / sum;
    writeChoices(experts, gates, out, topI, topP, K, normTopk);
    return true;
  }
}

/** A score that is not a finite number, in row t (scores[row..row+E)): an InputError naming the first. */
function checkFiniteRow(scores: Float32Array, row: number, E: number, where: string, t: number): void {
  for (let e = 0; e < E; e++) {
    const v = scores[row + e];
    if (v - v !== 0) throw new InputError(`${where}: token ${t}: router score ${v} for expert ${e} is not a finite number`);
  }
}

/** What the driver needs to know about a router beyond its scoring (src/import/layers.ts RouterRule). */
export interface ChoiceRule {
  scoring: Scoring;
  normTopk: boolean;
  nGroup: number;
  topkGroup: number;
  groupScore: 'top2sum' | 'max';
  scalingFactor: number;
}

/**
 * A bias-corrected and/or group-limited router, as transformers' DeepseekV3MoE.route_tokens_to_experts
 * (and Glm4MoeMoE, MiniMaxM2SparseMoeBlock) compute it from the gate's logits:
 *   s = sigmoid(logits) (or softmax); c = s + bias                      (bias only for the choice)
 *   group score = sum of the 2 best c in each of n_group groups (or the max), best topk_group kept,
 *   c of the other groups set to 0.0 (masked_fill, not -inf); chosen = top-k of c;
 *   gate = s[chosen] / (sum + 1e-20) when norm_topk_prob, times routed_scaling_factor.
 * Trace rows hold the chosen experts by descending gate (ties to the lower id).
 */
export function routeByRule(scores: Float32Array, T: number, E: number, K: number, rule: ChoiceRule, bias: Float32Array | null, areProbs: boolean, wantProbs: boolean, where: string): Routed {
  const { nGroup, topkGroup } = rule;
  if (E % nGroup !== 0) throw new InputError(`${where}: ${E} experts do not split into n_group ${nGroup} groups`);
  if (bias && bias.length !== E) throw new InputError(`${where}: e_score_correction_bias has ${bias.length} values for ${E} experts`);
  if (nGroup > 1 && K > topkGroup * (E / nGroup)) throw new InputError(`${where}: top-k ${K} exceeds the ${topkGroup * (E / nGroup)} experts of the topk_group groups`);
  const G = E / nGroup;
  const experts = new Int32Array(T * K);
  const gates = new Float32Array(T * K);
  const probs = wantProbs ? new Float32Array(T * E) : undefined;
  const s = new Float64Array(E);
  const c = new Float64Array(E);
  const gs = new Float64Array(nGroup);
  const keep = new Uint8Array(nGroup);
  const topV = new Float64Array(K);
  const topI = new Int32Array(K);
  const pick = new Float64Array(K);
  for (let t = 0; t < T; t++) {
    const row = t * E;
    checkFiniteRow(scores, row, E, where, t);
    if (areProbs) for (let e = 0; e < E; e++) s[e] = scores[row + e];
    else if (rule.scoring === 'sigmoid') for (let e = 0; e < E; e++) s[e] = 1 / (1 + Math.exp(-scores[row + e]));
    else {
      let max = -Infinity;
      for (let e = 0; e < E; e++) max = Math.max(max, scores[row + e]);
      const sum = softmaxExps(scores, row, E, max, s);
      for (let e = 0; e < E; e++) s[e] /= sum;
    }
    if (probs) for (let e = 0; e < E; e++) probs[row + e] = s[e];
    for (let e = 0; e < E; e++) c[e] = s[e] + (bias ? bias[e] : 0);
    if (nGroup > 1) {
      for (let g = 0; g < nGroup; g++) {
        let a = -Infinity;
        let b = -Infinity;
        for (let e = g * G; e < g * G + G; e++) {
          if (c[e] > a) {
            b = a;
            a = c[e];
          } else if (c[e] > b) b = c[e];
        }
        gs[g] = rule.groupScore === 'max' || G === 1 ? a : a + b;
      }
      keep.fill(0);
      for (let j = 0; j < topkGroup; j++) {
        let best = -1;
        for (let g = 0; g < nGroup; g++) if (!keep[g] && (best < 0 || gs[g] > gs[best])) best = g;
        keep[best] = 1;
      }
      for (let g = 0; g < nGroup; g++) if (!keep[g]) for (let e = g * G; e < g * G + G; e++) c[e] = 0;
    }
    let n = 0;
    for (let e = 0; e < E; e++) {
      const v = c[e];
      if (n === K && !(v > topV[K - 1])) continue;
      insertSorted(topV, topI, v, e, n < K ? n++ : K - 1);
    }
    // gates from the unbiased scores, then by descending gate (ties to the lower id)
    let sum = 0;
    for (let j = 0; j < K; j++) sum += pick[j] = s[topI[j]];
    const den = rule.normTopk ? sum + 1e-20 : 1;
    const o = t * K;
    const order = Array.from({ length: K }, (_, j) => j).sort((a, b) => pick[b] - pick[a] || topI[a] - topI[b]);
    for (let j = 0; j < K; j++) {
      experts[o + j] = topI[order[j]];
      gates[o + j] = (pick[order[j]] / den) * rule.scalingFactor;
    }
  }
  return { experts, gates, probs, idsBelow: E };
}
