import { wasmKernel } from './wasm.js';

/**
 * RMSNorm over rows of C:  out = inp * rstd * weight,  rstd = 1 / sqrt(mean(inp^2) + eps)
 * (also used per head for QK-norm: N = T*H rows of C = hd).
 */
let useWasm = wasmKernel !== null;
/** Force the JS loop (false) or WASM where available (true); tests compare them. */
export function setRmsnormWasm(on: boolean): void {
  useWasm = on && wasmKernel !== null;
}

/** In WASM SIMD (float32, as PyTorch) when C is a multiple of 4; else the JS loop (float64 sums). */
export function rmsnormForward(
  out: Float32Array,
  rstd: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  N: number,
  C: number,
  eps: number,
): void {
  if (useWasm && C % 4 === 0 && N * C >= 256) rmsnormForwardWasm(out, rstd, inp, weight, N, C, eps);
  else rmsnormForwardJs(out, rstd, inp, weight, N, C, eps);
}

function rmsnormForwardWasm(
  out: Float32Array,
  rstd: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  N: number,
  C: number,
  eps: number,
): void {
  // inp [N,C], weight [C], out [N,C], rstd [N]: copied through WASM memory (memcpy speed)
  const w = wasmKernel!;
  const xOff = 0, oOff = N * C, wOff = 2 * N * C, rOff = wOff + C;
  const mem = w.heap(rOff + N);
  mem.set(inp.subarray(0, N * C), xOff);
  mem.set(weight.subarray(0, C), wOff);
  w.rmsnorm(xOff * 4, oOff * 4, wOff * 4, rOff * 4, N, C, eps); // rstd = 1/sqrt(mean(x^2)+eps); out = x * rstd * w
  out.set(mem.subarray(oOff, oOff + N * C));
  rstd.set(mem.subarray(rOff, rOff + N));
}

export function rmsnormForwardJs(
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
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0; // 4 partial sums: one running sum is bound by the add latency
    let i = 0;
    for (; i + 3 < C; i += 4) {
      const a = inp[x + i], b = inp[x + i + 1], c = inp[x + i + 2], d = inp[x + i + 3];
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += d * d;
    }
    for (; i < C; i++) s0 += inp[x + i] * inp[x + i];
    const ss = s0 + s1 + (s2 + s3);
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
    let d0 = 0, d1 = 0; // sum_i dout_i * w_i * x_i, in 2 partial sums
    let i = 0;
    for (; i + 1 < C; i += 2) {
      d0 += dout[x + i] * weight[i] * inp[x + i];
      d1 += dout[x + i + 1] * weight[i + 1] * inp[x + i + 1];
    }
    if (i < C) d0 += dout[x + i] * weight[i] * inp[x + i];
    const dot = d0 + d1;
    const k = (r * r * r * dot) / C; // undoes rstd = 1/sqrt(mean(x^2)+eps): d rstd/dx_i = -rstd^3 x_i / C
    for (let i = 0; i < C; i++) {
      const g = dout[x + i];
      if (dweight !== null) dweight[i] += g * inp[x + i] * r; // undoes out = x * rstd * w (w.r.t. w)
      dinp[x + i] += g * weight[i] * r - k * inp[x + i]; // undoes out = x * rstd * w (w.r.t. x, via x and rstd)
    }
  }
}
