import { softmaxForward } from './softmax.js';
/**
 * MoE router (SPEC §1): probs = softmax(logits) in float32; experts = the K highest probs, descending,
 * ties to the LOWER expert index; gates = those probs, divided by their sum when normTopk.
 */
export function routerForward(
  experts: Int32Array,
  gates: Float32Array,
  probs: Float32Array,
  logits: Float32Array,
  N: number,
  E: number,
  K: number,
  normTopk: boolean,
): void {
  // logits, probs [N,E]; experts, gates [N,K]
  softmaxForward(probs, logits, N, E); // probs = softmax(logits), float32
  for (let n = 0; n < N; n++) {
    const x = n * E;
    const y = n * K;
    let chosenSum = 0;
    for (let k = 0; k < K; k++) {
      // top-k: scan upward with strict '>' so an equal prob never displaces a lower index
      let best = -1;
      let bestP = -Infinity;
      for (let e = 0; e < E; e++) {
        let taken = false;
        for (let j = 0; j < k; j++) if (experts[y + j] === e) taken = true;
        if (taken) continue;
        const p = probs[x + e];
        if (best < 0 || p > bestP) {
          best = e;
          bestP = p;
        }
      }
      experts[y + k] = best;
      gates[y + k] = bestP; // gate_k = probs[e_k]
      chosenSum += bestP;
    }
    if (normTopk) {
      for (let k = 0; k < K; k++) gates[y + k] = gates[y + k] / chosenSum; // gate_k /= sum of chosen probs
    }
  }
}

export function routerBackward(
  dlogits: Float32Array,
  dgates: Float32Array,
  probs: Float32Array,
  experts: Int32Array,
  N: number,
  E: number,
  K: number,
  normTopk: boolean,
): void {
  // dgates [N,K], probs [N,E], experts [N,K]; dlogits [N,E] accumulated
  // The top-k choice itself is piecewise constant: gradient flows only through the chosen probs.
  const dprobs = new Float64Array(E);
  for (let n = 0; n < N; n++) {
    const x = n * E;
    const y = n * K;
    dprobs.fill(0);
    if (normTopk) {
      let S = 0;
      for (let k = 0; k < K; k++) S += probs[x + experts[y + k]];
      let dot = 0; // sum_k dgate_k * gate_k
      for (let k = 0; k < K; k++) dot += dgates[y + k] * (probs[x + experts[y + k]] / S);
      // undoes gate_k = p_k / S:  dp_k = (dgate_k - sum_j dgate_j gate_j) / S
      for (let k = 0; k < K; k++) dprobs[experts[y + k]] += (dgates[y + k] - dot) / S;
    } else {
      for (let k = 0; k < K; k++) dprobs[experts[y + k]] += dgates[y + k]; // undoes gate_k = probs[e_k]
    }
    let dot = 0;
    for (let e = 0; e < E; e++) dot += probs[x + e] * dprobs[e];
    for (let e = 0; e < E; e++) dlogits[x + e] += probs[x + e] * (dprobs[e] - dot); // undoes probs = softmax(logits)
  }
}
