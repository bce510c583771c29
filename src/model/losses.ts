/**
 * The router's auxiliary losses (SPEC §1 Training), forward/backward pairs over one layer's router
 * outputs: logits, probs [N,E] (probs = softmax(logits)) and the chosen experts [N*K]. Forwards return
 * the loss WITHOUT its coefficient; backwards take the coefficient and ACCUMULATE into dlogits.
 */
import { softmaxBackward } from './kernels/softmax.js';

/**
 * Load balancing (Switch/Mixtral style): E * sum_e f_e * P_e, with f_e the share of the N*K top-k
 * assignments that go to e (a count: no gradient) and P_e the mean router prob of e. Fills f [E].
 */
export function loadBalanceForward(f: Float64Array, probs: Float32Array, experts: Int32Array, N: number, E: number, K: number): number {
  f.fill(0);
  for (let j = 0; j < N * K; j++) f[experts[j]] += 1 / (N * K); // f_e = count_e / (N*K)
  let loss = 0;
  for (let e = 0; e < E; e++) {
    let P = 0;
    for (let n = 0; n < N; n++) P += probs[n * E + e];
    loss += f[e] * (P / N); // P_e = mean_n probs[n,e]
  }
  return E * loss;
}

export function loadBalanceBackward(
  dlogits: Float32Array, dprobsScratch: Float32Array, coef: number, f: Float64Array, probs: Float32Array, N: number, E: number,
): void {
  const c = (coef * E) / N;
  for (let n = 0; n < N; n++) for (let e = 0; e < E; e++) dprobsScratch[n * E + e] = c * f[e]; // undoes loss = E * sum_e f_e * mean_n probs
  softmaxBackward(dlogits, dprobsScratch, probs, N, E); // undoes probs = softmax(logits)
}

/** Router z-loss: mean_n logsumexp(logits[n])^2. Fills lse [N] for the backward. */
export function zLossForward(lse: Float32Array, logits: Float32Array, N: number, E: number): number {
  let loss = 0;
  for (let n = 0; n < N; n++) {
    const x = n * E;
    let max = -Infinity;
    for (let e = 0; e < E; e++) if (logits[x + e] > max) max = logits[x + e];
    let s = 0;
    for (let e = 0; e < E; e++) s += Math.exp(logits[x + e] - max);
    const l = max + Math.log(s); // lse = logsumexp(logits[n])
    lse[n] = l;
    loss += l * l;
  }
  return N > 0 ? loss / N : 0; // mean_n lse^2
}

export function zLossBackward(dlogits: Float32Array, coef: number, lse: Float32Array, probs: Float32Array, N: number, E: number): void {
  // undoes mean_n lse_n^2 and lse = logsumexp(logits): d/dlogits[n,e] = 2 lse_n softmax(logits)[n,e] / N
  const c = (2 * coef) / N;
  for (let n = 0; n < N; n++) {
    const k = c * lse[n];
    const x = n * E;
    for (let e = 0; e < E; e++) dlogits[x + e] += k * probs[x + e];
  }
}
