/**
 * RMSNorm over rows of C:  out = inp * rstd * weight,  rstd = 1 / sqrt(mean(inp^2) + eps)
 * (also used per head for QK-norm: N = T*H rows of C = hd).
 */
export function rmsnormForward(
  out: Float32Array,
  rstd: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  N: number,
  C: number,
  eps: number,
): void {
  // inp [N,C], weight [C], out [N,C], rstd [N]
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let ss = 0;
    for (let i = 0; i < C; i++) ss += inp[x + i] * inp[x + i];
    const r = 1 / Math.sqrt(ss / C + eps); // rstd = 1/sqrt(mean(x^2)+eps)
    rstd[n] = r;
    for (let i = 0; i < C; i++) out[x + i] = inp[x + i] * r * weight[i]; // out = x * rstd * w
  }
}

export function rmsnormBackward(
  dinp: Float32Array,
  dweight: Float32Array | null,
  dout: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  rstd: Float32Array,
  N: number,
  C: number,
): void {
  // dout [N,C], inp [N,C], weight [C], rstd [N]; dinp [N,C], dweight [C] accumulated
  for (let n = 0; n < N; n++) {
    const x = n * C;
    const r = rstd[n];
    let dot = 0; // sum_i dout_i * w_i * x_i
    for (let i = 0; i < C; i++) dot += dout[x + i] * weight[i] * inp[x + i];
    const k = (r * r * r * dot) / C; // undoes rstd = 1/sqrt(mean(x^2)+eps): d rstd/dx_i = -rstd^3 x_i / C
    for (let i = 0; i < C; i++) {
      const g = dout[x + i];
      if (dweight !== null) dweight[i] += g * inp[x + i] * r; // undoes out = x * rstd * w (w.r.t. w)
      dinp[x + i] += g * weight[i] * r - k * inp[x + i]; // undoes out = x * rstd * w (w.r.t. x, via x and rstd)
    }
  }
}
