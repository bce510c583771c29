/**
 * How decided a router is (issue 14): over one layer's rows, the sum of the top-1 gate and of the
 * router entropy in bits. Sums (not means) so that micro-batches and chunks add up; divide by rows.
 * A router at a tie has top-1 gate 1/E and entropy log2 E; a decided one approaches 1 and 0.
 */
export function routerStatsSums(probs: Float32Array, gates: Float32Array, N: number, E: number, K: number): { gate: number; entropy: number } {
  let gate = 0, entropy = 0;
  for (let n = 0; n < N; n++) {
    gate += gates[n * K]; // gate of the top-1 choice
    let h = 0;
    for (let e = 0; e < E; e++) {
      const p = probs[n * E + e];
      if (p > 0) h -= p * Math.log2(p);
    }
    entropy += h;
  }
  return { gate, entropy };
}

/** Layer bands of a depth for the training log: thirds (0-7, 8-15, 16-23 for 24 layers). */
export function layerBands(L: number): { label: string; from: number; to: number }[] {
  const n = Math.min(3, L);
  const out: { label: string; from: number; to: number }[] = [];
  for (let i = 0; i < n; i++) {
    const from = Math.floor((i * L) / n), to = Math.floor(((i + 1) * L) / n) - 1;
    out.push({ label: `${from}-${to}`, from, to });
  }
  return out;
}
