/** Row softmax, cross-entropy and their fused backward (llm.c's softmax/crossentropy pair). */
export function softmaxForward(probs: Float32Array, logits: Float32Array, N: number, V: number): void {
  // logits, probs [N,V]
  for (let n = 0; n < N; n++) {
    const x = n * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[x + i] > max) max = logits[x + i];
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const e = Math.exp(logits[x + i] - max);
      probs[x + i] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let i = 0; i < V; i++) probs[x + i] *= inv; // probs = exp(l - max) / sum
  }
}

/** Plain softmax backward, for losses defined on probs (e.g. the router's load-balancing term). */
export function softmaxBackward(dlogits: Float32Array, dprobs: Float32Array, probs: Float32Array, N: number, V: number): void {
  // dprobs, probs [N,V]; dlogits [N,V] accumulated
  for (let n = 0; n < N; n++) {
    const x = n * V;
    let dot = 0;
    for (let i = 0; i < V; i++) dot += probs[x + i] * dprobs[x + i];
    for (let i = 0; i < V; i++) dlogits[x + i] += probs[x + i] * (dprobs[x + i] - dot); // undoes probs = exp(l - max)/sum
  }
}

export function crossEntropyForward(losses: Float32Array, probs: Float32Array, targets: Int32Array, N: number, V: number): void {
  // probs [N,V], targets [N] (< 0: ignored), losses [N]
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    losses[n] = t < 0 ? 0 : -Math.log(probs[n * V + t]); // loss = -log p[target]
  }
}

export function crossEntropySoftmaxBackward(
  dlogits: Float32Array,
  dlosses: Float32Array,
  probs: Float32Array,
  targets: Int32Array,
  N: number,
  V: number,
): void {
  // dlosses [N], probs [N,V], targets [N]; dlogits [N,V] accumulated
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t < 0) continue; // ignored position: no gradient
    const x = n * V;
    const d = dlosses[n];
    for (let i = 0; i < V; i++) dlogits[x + i] += (probs[x + i] - (i === t ? 1 : 0)) * d; // undoes loss = -log softmax(l)[t]
  }
}
