import { wasmKernel } from './wasm.js';

/**
 * SwiGLU gate of an expert:  out = silu(g) * u,  silu(g) = g * sigmoid(g).
 * WASM SIMD (float32, with a vector exp) when available; the JS loops (float64) are the fallback and
 * the reference. Operands go through WASM memory by memcpy.
 */
let useWasm = wasmKernel !== null;
/** Force the JS loops (false) or WASM where available (true); tests compare them. */
export function setSwigluWasm(on: boolean): void {
  useWasm = on && wasmKernel !== null;
}
const MIN_WASM = 64;

export function swigluForward(out: Float32Array, g: Float32Array, u: Float32Array, N: number, F: number): void {
  // g, u, out [N,F]
  const n = N * F;
  if (!useWasm || n < MIN_WASM) return swigluForwardJs(out, g, u, N, F);
  const w = wasmKernel!;
  const n4 = (n + 3) & ~3;
  const gOff = 0, uOff = n4, oOff = 2 * n4;
  const mem = w.heap(3 * n4);
  mem.set(g.subarray(0, n), gOff);
  mem.set(u.subarray(0, n), uOff);
  mem.fill(0, gOff + n, gOff + n4);
  mem.fill(0, uOff + n, uOff + n4);
  w.swiglu(gOff * 4, uOff * 4, oOff * 4, n4); // out = silu(g) * u
  out.set(mem.subarray(oOff, oOff + n));
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
  if (!useWasm || n < MIN_WASM) return swigluBackwardJs(dg, du, dout, g, u, N, F);
  const w = wasmKernel!;
  const n4 = (n + 3) & ~3;
  const gOff = 0, uOff = n4, dOff = 2 * n4, dgOff = 3 * n4, duOff = 4 * n4;
  const mem = w.heap(5 * n4);
  mem.set(g.subarray(0, n), gOff);
  mem.set(u.subarray(0, n), uOff);
  mem.set(dout.subarray(0, n), dOff);
  mem.set(dg.subarray(0, n), dgOff);
  mem.set(du.subarray(0, n), duOff);
  for (const o of [gOff, uOff, dOff]) mem.fill(0, o + n, o + n4);
  w.swigluBackward(gOff * 4, uOff * 4, dOff * 4, dgOff * 4, duOff * 4, n4); // undoes out = silu(g) * u
  dg.set(mem.subarray(dgOff, dgOff + n));
  du.set(mem.subarray(duOff, duOff + n));
}

export function swigluForwardJs(out: Float32Array, g: Float32Array, u: Float32Array, N: number, F: number): void {
  // g, u, out [N,F]
  const n = N * F;
  for (let i = 0; i < n; i++) {
    const x = g[i];
    out[i] = (x / (1 + Math.exp(-x))) * u[i]; // out = silu(g) * u
  }
}

export function swigluBackwardJs(
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
