/**
 * Plain-JS matmul backend. Every product is reduced to one NN gemm,
 *   out[M, P] (+)= A[M, K] @ B[K, P]        (all row-major),
 * register-blocked 4 rows x 4 columns: 16 accumulators stay in registers while k runs, so each
 * loaded A and B value is used 4 times. Remainder rows/columns take the scalar path.
 */

/** The three products a linear layer needs; `accumulate` adds into out instead of overwriting. */
export interface MatmulBackend {
  name: string;
  /** out[M,P] (+)= A[M,K] @ B[K,P] */
  nn(out: Float32Array, A: Float32Array, B: Float32Array, M: number, K: number, P: number, accumulate: boolean): void;
  /** out[M,P] (+)= A[M,K] @ Bt[P,K]^T */
  nt(out: Float32Array, A: Float32Array, Bt: Float32Array, M: number, K: number, P: number, accumulate: boolean): void;
  /** out[M,P] (+)= At[K,M]^T @ B[K,P] */
  tn(out: Float32Array, At: Float32Array, B: Float32Array, M: number, K: number, P: number, accumulate: boolean): void;
  /** outs[i][M,P] = A[M,K] @ Bts[i][P,K]^T for several weights of one shape (A moved once); optional. */
  ntShared?(outs: Float32Array[], A: Float32Array, Bts: Float32Array[], M: number, K: number, P: number): void;
}

export function gemmJs(
  out: Float32Array,
  A: Float32Array,
  B: Float32Array,
  M: number,
  K: number,
  P: number,
  accumulate: boolean,
): void {
  const M4 = M - (M % 4);
  const P4 = P - (P % 4);
  for (let m = 0; m < M4; m += 4) {
    const a0 = m * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
    const o0 = m * P, o1 = o0 + P, o2 = o1 + P, o3 = o2 + P;
    for (let p = 0; p < P4; p += 4) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let k = 0, b = p; k < K; k++, b += P) {
        const b0 = B[b], b1 = B[b + 1], b2 = B[b + 2], b3 = B[b + 3];
        const x0 = A[a0 + k], x1 = A[a1 + k], x2 = A[a2 + k], x3 = A[a3 + k];
        c00 += x0 * b0; c01 += x0 * b1; c02 += x0 * b2; c03 += x0 * b3;
        c10 += x1 * b0; c11 += x1 * b1; c12 += x1 * b2; c13 += x1 * b3;
        c20 += x2 * b0; c21 += x2 * b1; c22 += x2 * b2; c23 += x2 * b3;
        c30 += x3 * b0; c31 += x3 * b1; c32 += x3 * b2; c33 += x3 * b3;
      }
      if (accumulate) {
        out[o0 + p] += c00; out[o0 + p + 1] += c01; out[o0 + p + 2] += c02; out[o0 + p + 3] += c03;
        out[o1 + p] += c10; out[o1 + p + 1] += c11; out[o1 + p + 2] += c12; out[o1 + p + 3] += c13;
        out[o2 + p] += c20; out[o2 + p + 1] += c21; out[o2 + p + 2] += c22; out[o2 + p + 3] += c23;
        out[o3 + p] += c30; out[o3 + p + 1] += c31; out[o3 + p + 2] += c32; out[o3 + p + 3] += c33;
      } else {
        out[o0 + p] = c00; out[o0 + p + 1] = c01; out[o0 + p + 2] = c02; out[o0 + p + 3] = c03;
        out[o1 + p] = c10; out[o1 + p + 1] = c11; out[o1 + p + 2] = c12; out[o1 + p + 3] = c13;
        out[o2 + p] = c20; out[o2 + p + 1] = c21; out[o2 + p + 2] = c22; out[o2 + p + 3] = c23;
        out[o3 + p] = c30; out[o3 + p + 1] = c31; out[o3 + p + 2] = c32; out[o3 + p + 3] = c33;
      }
    }
    // remainder columns of this row block
    for (let p = P4; p < P; p++) {
      let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let k = 0, b = p; k < K; k++, b += P) {
        const bv = B[b];
        c0 += A[a0 + k] * bv; c1 += A[a1 + k] * bv; c2 += A[a2 + k] * bv; c3 += A[a3 + k] * bv;
      }
      if (accumulate) { out[o0 + p] += c0; out[o1 + p] += c1; out[o2 + p] += c2; out[o3 + p] += c3; }
      else { out[o0 + p] = c0; out[o1 + p] = c1; out[o2 + p] = c2; out[o3 + p] = c3; }
    }
  }
  // remainder rows
  for (let m = M4; m < M; m++) {
    const a = m * K, o = m * P;
    for (let p = 0; p < P; p++) {
      let c = 0;
      for (let k = 0, b = p; k < K; k++, b += P) c += A[a + k] * B[b];
      if (accumulate) out[o + p] += c;
      else out[o + p] = c;
    }
  }
}

/** dst[cols, rows] = src[rows, cols]^T */
export function transpose(dst: Float32Array, src: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const s = r * cols;
    for (let c = 0, d = r; c < cols; c++, d += rows) dst[d] = src[s + c];
  }
}

let scratch = new Float32Array(0);
function scratchOf(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(Math.max(n, scratch.length * 2));
  return scratch;
}

export const jsBackend: MatmulBackend = {
  name: 'js',
  nn: gemmJs,
  nt(out, A, Bt, M, K, P, accumulate) {
    const B = scratchOf(K * P);
    transpose(B, Bt, P, K); // O(KP), the small operand
    gemmJs(out, A, B, M, K, P, accumulate);
  },
  tn(out, At, B, M, K, P, accumulate) {
    const A = scratchOf(M * K);
    transpose(A, At, K, M);
    gemmJs(out, A, B, M, K, P, accumulate);
  },
};
