/** SwiGLU gate of an expert:  out = silu(g) * u,  silu(g) = g * sigmoid(g). */
export function swigluForward(out: Float32Array, g: Float32Array, u: Float32Array, N: number, F: number): void {
  // g, u, out [N,F]
  const n = N * F;
  for (let i = 0; i < n; i++) {
    const x = g[i];
    out[i] = (x / (1 + Math.exp(-x))) * u[i]; // out = silu(g) * u
  }
}

export function swigluBackward(
  dg: Float32Array,
  du: Float32Array,
  dout: Float32Array,
  g: Float32Array,
  u: Float32Array,
  N: number,
  F: number,
): void {
  // dout, g, u [N,F]; dg, du [N,F] accumulated
  const n = N * F;
  for (let i = 0; i < n; i++) {
    const x = g[i];
    const sig = 1 / (1 + Math.exp(-x));
    const d = dout[i];
    du[i] += d * x * sig; // undoes out = silu(g) * u (w.r.t. u)
    dg[i] += d * u[i] * sig * (1 + x * (1 - sig)); // same line w.r.t. g: silu'(x) = sig*(1 + x*(1-sig))
  }
}
