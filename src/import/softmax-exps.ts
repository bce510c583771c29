/**
 * The softmax of router logits as the import computes it, in one definition for every path (the
 * WebAssembly kernel softmax-topk.wat, SoftmaxTopK.row and the plain loops of routing.ts):
 *
 *   d_e = fround(score_e - max)            (float32, as the scores are)
 *   x_e = expF32(d_e)                       (float32: Cephes' expf, within 2 ulp of exp)
 *   sum = (s0 + s2) + (s1 + s3)             (float64; s_j = the x_e with e mod 4 = j, in id order)
 *   p_e = x_e / sum                         (float64, stored as float32)
 *
 * The router itself computes the softmax in float32 (transformers' `softmax(router_logits,
 * dtype=torch.float)`), so float32 exps lose nothing a gate could hold: summed in float64, the
 * probabilities are within a float32 ulp or two of the exact ones. Four exps per SIMD instruction
 * instead of two made the kernel ~1.45x faster, and the sum in four lanes does not wait on
 * each addition in turn.
 */

const f = Math.fround;
/** Below this argument expF32 is 0 (the result would be under float32's least normal). */
const LOW = f(-87.3);
const LOG2E = f(1.44269504088896341);
/** 1.5 * 2^23: adding it rounds to an integer held in the float's low mantissa bits */
const SHIFT = 12582912;
/** ln 2 in two parts: C1 has few bits, so n * C1 is exact */
const C1 = 0.693359375;
const C2 = f(-2.12194440e-4);
const P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1].map(f);
/** 2^n for n = -127..128 (index n + 127): exact powers of two */
const POW2 = Float64Array.from({ length: 256 }, (_, i) => 2 ** (i - 127));

/**
 * exp(x) in float32 for a float32 x <= 0, operation for operation the kernel's f32x4 code (every
 * step rounded to float32 by fround): n = round(x / ln 2), r = x - n ln 2, exp(r) = 1 + r + r^2 P(r)
 * (degree 5), times 2^n. Arguments below -87.3 give 0; NaN gives NaN.
 */
export function expF32(x: number): number {
  if (x !== x) return NaN;
  let r = x < LOW ? LOW : x; // f32x4.pmax(x, LOW)
  if (88 < r) r = 88; // f32x4.pmin(r, 88)
  const t = f(f(r * LOG2E) + SHIFT);
  const n = t - SHIFT; // exact: an integer in -126..127
  r = f(r - f(n * C1));
  r = f(r - f(n * C2));
  let p = f(f(P[0] * r) + P[1]);
  p = f(f(p * r) + P[2]);
  p = f(f(p * r) + P[3]);
  p = f(f(p * r) + P[4]);
  p = f(f(p * r) + P[5]);
  p = f(f(f(f(p * r) * r) + r) + 1);
  return x < LOW ? 0 : f(p * POW2[n + 127]);
}

/**
 * The softmax numerators of one row, x_e = expF32(fround(scores[row + e] - max)) into ex[0..E),
 * and their sum in the order above. `max` is the row's greatest score.
 */
export function softmaxExps(scores: Float32Array, row: number, E: number, max: number, ex: Float64Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let e = 0;
  for (; e + 3 < E; e += 4) {
    s0 += ex[e] = expF32(f(scores[row + e] - max));
    s1 += ex[e + 1] = expF32(f(scores[row + e + 1] - max));
    s2 += ex[e + 2] = expF32(f(scores[row + e + 2] - max));
    s3 += ex[e + 3] = expF32(f(scores[row + e + 3] - max));
  }
  // the last E mod 4 take the lanes they would have had
  if (e < E) s0 += ex[e] = expF32(f(scores[row + e] - max));
  if (e + 1 < E) s1 += ex[e + 1] = expF32(f(scores[row + e + 1] - max));
  if (e + 2 < E) s2 += ex[e + 2] = expF32(f(scores[row + e + 2] - max));
  return s0 + s2 + (s1 + s3);
}
