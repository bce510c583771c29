import { wasmKernel, type WasmKernel } from './wasm.js';
import type { MatmulBackend } from './gemm-js.js';

/**
 * The matmul backend on the WebAssembly SIMD gemm4 (wasm.ts):  C[M,P] (+)= A[M,K] @ B[K,P], A's rows
 * interleaved in fours (packed inside WASM; a transposed A already is). Each call copies its operands into WASM
 * memory (memcpy when the layout already fits) and the result out: O(MK + KP + MP) moves against
 * O(MKP) flops (measured: a few percent at the model's shapes).
 */
const K_CHUNK = 256;
/** With one panel of columns (the router: P = 8) packing A costs more than gemm4 saves. */
const PACK_MIN_P = 8;
const up = (n: number, m: number) => Math.ceil(n / m) * m;

/** Copy rows x cols (contiguous in src) into the heap at `dst` with row stride `ldd` (zero padded). */
function placeRows(mem: Float32Array, dst: number, ldd: number, src: Float32Array, rows: number, cols: number): void {
  if (ldd === cols) {
    mem.set(src.subarray(0, rows * cols), dst);
    return;
  }
  for (let r = 0; r < rows; r++) {
    mem.set(src.subarray(r * cols, r * cols + cols), dst + r * ldd);
    mem.fill(0, dst + r * ldd + cols, dst + r * ldd + ldd);
  }
}

function backend(w: WasmKernel): MatmulBackend {
  const { ROWS, COLS } = w;

  /**
   * Run gemm4 with A at aOff in its interleaved layout (block stride sab, k stride sak, in floats), B at
   * bOff [K][Pp], C at cOff [Mp][Pp]; C comes in from `out` when accumulating and goes back to it.
   */
  function run(mem: Float32Array, out: Float32Array, aOff: number, sab: number, sak: number, bOff: number, cOff: number, M: number, K: number, P: number, accumulate: boolean, packed = true): void {
    const Mp = up(M, ROWS), Pp = up(P, COLS);
    const gemm = packed ? w.gemm4 : w.gemm; // the plain gemm reads row-major A: sab is then the row stride
    if (accumulate) placeRows(mem, cOff, Pp, out, M, P);
    // Long k (the weight gradient: k runs over all N rows) goes in chunks, so the A and B slices a chunk
    // re-reads for every block of C stay in L2; C accumulates across chunks.
    for (let k0 = 0; k0 < K || k0 === 0; k0 += K_CHUNK) {
      const kc = Math.min(K_CHUNK, K - k0);
      const first = k0 === 0 && !accumulate;
      gemm((aOff + k0 * sak) * 4, sab * 4, sak * 4, (bOff + k0 * Pp) * 4, Pp * 4, cOff * 4, Pp * 4, Mp, kc, Pp, first ? 0 : 1);
    }
    if (Pp === P) out.set(mem.subarray(cOff, cOff + M * P));
    else for (let m = 0; m < M; m++) out.set(mem.subarray(cOff + m * Pp, cOff + m * Pp + P), m * P);
  }

  /** Heap layout shared by nn and nt: A [M][K] raw, then packed [Mp/4][K][4], B [K][Pp], C [Mp][Pp], extra. */
  function layout(M: number, K: number, P: number, extra: number) {
    const Mp = up(M, ROWS), Pp = up(P, COLS);
    const aOff = 0, pOff = up(Mp * K, 4) + 4 * K; // rows past M read into the gap: finite
    const bOff = pOff + up(Mp * K, 4), cOff = bOff + up(K * Pp, 4), xOff = cOff + up(Mp * Pp, 4);
    const mem = w.heap(xOff + extra);
    mem.fill(0, aOff + M * K, pOff);
    return { mem, Mp, Pp, aOff, pOff, bOff, cOff, xOff };
  }

  return {
    name: 'wasm-simd',
    /** out[M,P] (+)= A[M,K] @ B[K,P]   (dinp = dout @ weight) */
    nn(out, A, B, M, K, P, accumulate) {
      const { mem, Mp, Pp, aOff, pOff, bOff, cOff } = layout(M, K, P, 0);
      mem.set(A.subarray(0, M * K), aOff);
      placeRows(mem, bOff, Pp, B, K, P);
      if (P <= PACK_MIN_P) return run(mem, out, aOff, K, 1, bOff, cOff, M, K, P, accumulate, false);
      w.pack4(aOff * 4, K * 4, Mp, K, pOff * 4);
      run(mem, out, pOff, 4 * K, 4, bOff, cOff, M, K, P, accumulate);
    },
    /** out[M,P] (+)= A[M,K] @ Bt[P,K]^T   (the forward pass: Bt is the weight, transposed inside WASM) */
    nt(out, A, Bt, M, K, P, accumulate) {
      const { mem, Mp, Pp, aOff, pOff, bOff, cOff, xOff } = layout(M, K, P, P * K);
      mem.set(A.subarray(0, M * K), aOff);
      mem.set(Bt.subarray(0, P * K), xOff);
      w.transpose(xOff * 4, K * 4, P, K, bOff * 4, Pp * 4); // B[k][p] = Bt[p][k]
      if (Pp > P) for (let k = 0; k < K; k++) mem.fill(0, bOff + k * Pp + P, bOff + k * Pp + Pp);
      if (P <= PACK_MIN_P) return run(mem, out, aOff, K, 1, bOff, cOff, M, K, P, accumulate, false);
      w.pack4(aOff * 4, K * 4, Mp, K, pOff * 4);
      run(mem, out, pOff, 4 * K, 4, bOff, cOff, M, K, P, accumulate);
    },
    /** nt for several weights of one shape: A is copied and packed once (q/k/v, an expert's W1/W3); same bits as nt each. */
    ntShared(outs, A, Bts, M, K, P) {
      const { mem, Mp, Pp, aOff, pOff, bOff, cOff, xOff } = layout(M, K, P, P * K);
      mem.set(A.subarray(0, M * K), aOff);
      const packed = P > PACK_MIN_P;
      if (packed) w.pack4(aOff * 4, K * 4, Mp, K, pOff * 4);
      for (let i = 0; i < Bts.length; i++) {
        mem.set(Bts[i].subarray(0, P * K), xOff);
        w.transpose(xOff * 4, K * 4, P, K, bOff * 4, Pp * 4); // B[k][p] = Bt[p][k]
        if (Pp > P) for (let k = 0; k < K; k++) mem.fill(0, bOff + k * Pp + P, bOff + k * Pp + Pp);
        if (packed) run(mem, outs[i], pOff, 4 * K, 4, bOff, cOff, M, K, P, false);
        else run(mem, outs[i], aOff, K, 1, bOff, cOff, M, K, P, false, false);
      }
    },
    /** out[M,P] (+)= At[K,M]^T @ B[K,P]   (the weight gradient: At is dout, B is inp) */
    tn(out, At, B, M, K, P, accumulate) {
      const Mp = up(M, ROWS), Pp = up(P, COLS);
      const aOff = 0, bOff = up(K * M + ROWS, 4), cOff = bOff + up(K * Pp, 4);
      const mem = w.heap(cOff + Mp * Pp);
      mem.set(At.subarray(0, K * M), aOff); // A[m][k] = At[k][m]: rows already interleaved, k stride M
      mem.fill(0, aOff + K * M, bOff);
      placeRows(mem, bOff, Pp, B, K, P);
      run(mem, out, aOff, 4, M, bOff, cOff, M, K, P, accumulate);
    },
  };
}

/** The WASM matmul backend, or null when this runtime lacks WebAssembly SIMD. */
export const wasmBackend: MatmulBackend | null = wasmKernel === null ? null : backend(wasmKernel);
