import { jsBackend, type MatmulBackend } from './gemm-js.js';
import { wasmBackend } from './gemm-wasm.js';
import { WasmOutOfMemory } from './wasm.js';

/**
 * Linear layer, llm.c's matmul_forward/backward:  out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC]
 * The three products go to a backend: WebAssembly SIMD where available (gemm-wasm.ts), else the
 * register-blocked JS loops (gemm-js.ts); tiny products stay in JS (copying into WASM memory costs more).
 */

/** Below this many multiply-adds the JS loop beats copying into WASM memory (measured, bench/matmul.ts). */
const WASM_MIN_WORK = 1024;

/** 'auto' picks per call; a backend forces it (tests and benchmarks compare them). */
let forced: MatmulBackend | null = null;
export function setMatmulBackend(b: MatmulBackend | null): void {
  forced = b;
}
export function matmulBackends(): MatmulBackend[] {
  return wasmBackend ? [jsBackend, wasmBackend] : [jsBackend];
}

/** out[M,P] (+)= op(A) @ op(B) on the chosen backend; WASM falls back to JS if its memory cannot grow. */
function product(op: 'nn' | 'nt' | 'tn', out: Float32Array, A: Float32Array, B: Float32Array, M: number, K: number, P: number, accumulate: boolean): void {
  const be = forced ?? (wasmBackend !== null && M * K * P >= WASM_MIN_WORK ? wasmBackend : jsBackend);
  try {
    be[op](out, A, B, M, K, P, accumulate);
  } catch (e) {
    if (!(e instanceof WasmOutOfMemory)) throw e; // thrown before out is touched
    jsBackend[op](out, A, B, M, K, P, accumulate);
  }
}

/** Catch shape mistakes early: the WASM path would otherwise copy a short array silently. */
function need(name: string, a: Float32Array | null, n: number): void {
  if (a !== null && a.length < n) throw new RangeError(`matmul: ${name} has ${a.length} elements, needs ${n}`);
}

export function matmulForward(
  out: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  bias: Float32Array | null,
  N: number,
  C: number,
  OC: number,
): void {
  // inp [N,C], weight [OC,C], bias [OC], out [N,OC]
  need('out', out, N * OC), need('inp', inp, N * C), need('weight', weight, OC * C), need('bias', bias, OC);
  product('nt', out, inp, weight, N, C, OC, false); // out = inp @ weight^T
  if (bias !== null) {
    for (let n = 0; n < N; n++) {
      const o = n * OC;
      for (let j = 0; j < OC; j++) out[o + j] += bias[j]; // out += bias
    }
  }
}

/**
 * outs[i] = inp @ weights[i]^T for several weights of one shape [OC,C] and no bias (q/k/v, an expert's
 * W1/W3): the same numbers as one matmulForward per weight, with the input moved into WASM once.
 */
export function matmulForwardShared(outs: Float32Array[], inp: Float32Array, weights: Float32Array[], N: number, C: number, OC: number): void {
  need('inp', inp, N * C);
  outs.forEach((o, i) => (need('out', o, N * OC), need('weight', weights[i], OC * C)));
  const be = forced ?? (wasmBackend !== null && N * C * OC >= WASM_MIN_WORK ? wasmBackend : jsBackend);
  if (be.ntShared) {
    try {
      be.ntShared(outs, inp, weights, N, C, OC);
      return;
    } catch (e) {
      if (!(e instanceof WasmOutOfMemory)) throw e; // thrown before any out is touched
    }
  }
  for (let i = 0; i < outs.length; i++) product('nt', outs[i], inp, weights[i], N, C, OC, false);
}

export function matmulBackward(
  dinp: Float32Array | null,
  dweight: Float32Array | null,
  dbias: Float32Array | null,
  dout: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  N: number,
  C: number,
  OC: number,
): void {
  // dout [N,OC], inp [N,C], weight [OC,C]; dinp [N,C], dweight [OC,C], dbias [OC] (all accumulated)
  need('dout', dout, N * OC), need('inp', inp, N * C), need('weight', weight, OC * C);
  need('dinp', dinp, N * C), need('dweight', dweight, OC * C), need('dbias', dbias, OC);
  if (dinp !== null) product('nn', dinp, dout, weight, N, OC, C, true); // undoes out = inp @ weight^T (w.r.t. inp)
  if (dweight !== null) product('tn', dweight, dout, inp, OC, N, C, true); // same line, w.r.t. weight: dout^T @ inp
  if (dbias !== null) {
    for (let n = 0; n < N; n++) {
      const o = n * OC;
      for (let j = 0; j < OC; j++) dbias[j] += dout[o + j]; // undoes out += bias
    }
  }
}
