import { wasmKernel } from './wasm.js';
import { attentionForwardWasm, attentionBackwardWasm } from './attention-wasm.js';

/**
 * Multi-head attention over ONE sequence with the efmoe mask (SPEC §1): t attends s when s <= t, or
 * when s and t lie in the same image part (imagePart[s] === imagePart[t] >= 0; -1 marks text).
 * q, k, v are [T, H*hd] (already normed and rotated); att [H, T, T] keeps the softmax probabilities
 * (masked entries 0) for the backward pass.
 *
 * Two implementations: attention-wasm.ts (the products on the WASM SIMD gemm, float32 like PyTorch;
 * the default where WebAssembly SIMD exists, 3-4x faster) and the JS loops below (float64 sums; the
 * fallback, and what the finite-difference tests differentiate). In the JS loops each head's q, k, v
 * (and gradients) are first gathered into contiguous float64 scratch, so the inner loops run over plain
 * doubles without float32 conversions, and dot products use 4 accumulators (a single running sum is
 * bound by the add latency).
 */
let useWasm = wasmKernel !== null;
/** Force the JS loops (false) or WASM where available (true); tests and benchmarks compare them. */
export function setAttentionWasm(on: boolean): void {
  useWasm = on && wasmKernel !== null;
}

export function attentionMask(imagePart: Int32Array, t: number, s: number): boolean {
  return s <= t || (imagePart[t] >= 0 && imagePart[s] === imagePart[t]);
}

/** Keys t may see all lie below this bound: t itself, or the last later position of its image. */
function rowEnd(imagePart: Int32Array, t: number, T: number): number {
  let hi = t + 1;
  const p = imagePart[t];
  if (p >= 0) for (let s = t + 1; s < T; s++) if (imagePart[s] === p) hi = s + 1;
  return hi;
}

let f64s: Float64Array[] = [];
/** Scratch buffer i with at least n doubles (reused across calls; not zeroed). */
function scratch(i: number, n: number): Float64Array {
  if (!f64s[i] || f64s[i].length < n) f64s[i] = new Float64Array(Math.max(n, 2 * (f64s[i]?.length ?? 0)));
  return f64s[i];
}

/** dst[s*hd + i] = src[s*C + h*hd + i]: one head's [T, hd] slice, contiguous. */
function gather(dst: Float64Array, src: Float32Array, T: number, C: number, h: number, hd: number): void {
  for (let s = 0; s < T; s++) {
    const o = s * C + h * hd, d = s * hd;
    for (let i = 0; i < hd; i++) dst[d + i] = src[o + i];
  }
}

/** sum_i a[ao+i] * b[bo+i] over hd entries, 4 independent partial sums. */
function dot(a: Float64Array, ao: number, b: Float64Array, bo: number, hd: number): number {
  let d0 = 0, d1 = 0, d2 = 0, d3 = 0;
  let i = 0;
  for (; i + 3 < hd; i += 4) {
    d0 += a[ao + i] * b[bo + i];
    d1 += a[ao + i + 1] * b[bo + i + 1];
    d2 += a[ao + i + 2] * b[bo + i + 2];
    d3 += a[ao + i + 3] * b[bo + i + 3];
  }
  for (; i < hd; i++) d0 += a[ao + i] * b[bo + i];
  return d0 + d1 + (d2 + d3);
}

/**
 * out[i] = sum_{s < n} w[s] * rows[s*hd + i] for i < hd. The sums are kept in registers, 4 columns
 * at a time (accumulating into memory would chain every step through a store and a reload).
 */
function weightedRowSum(out: Float64Array, w: Float64Array, rows: Float64Array, n: number, hd: number): void {
  let i = 0;
  for (; i + 3 < hd; i += 4) {
    let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (let s = 0, o = i; s < n; s++, o += hd) {
      const a = w[s];
      c0 += a * rows[o];
      c1 += a * rows[o + 1];
      c2 += a * rows[o + 2];
      c3 += a * rows[o + 3];
    }
    out[i] = c0;
    out[i + 1] = c1;
    out[i + 2] = c2;
    out[i + 3] = c3;
  }
  for (; i < hd; i++) {
    let c = 0;
    for (let s = 0, o = i; s < n; s++, o += hd) c += w[s] * rows[o];
    out[i] = c;
  }
}

/** WASM SIMD below (attention-wasm.ts) when available; the JS loops are the fallback and the reference. */
export function attentionForward(
  out: Float32Array,
  att: Float32Array | null, // [H,T,T] probabilities for the backward; null in inference (not kept)
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  imagePart: Int32Array,
  T: number,
  H: number,
  hd: number,
): void {
  if (useWasm && T > 1) attentionForwardWasm(out, att, q, k, v, imagePart, T, H, hd);
  else attentionForwardJs(out, att ?? scratchAtt(H * T * T), q, k, v, imagePart, T, H, hd);
}

let attScratch = new Float32Array(0);
function scratchAtt(n: number): Float32Array {
  if (attScratch.length < n) attScratch = new Float32Array(Math.max(n, 2 * attScratch.length));
  return attScratch.subarray(0, n);
}

export function attentionForwardJs(
  out: Float32Array,
  att: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  imagePart: Int32Array,
  T: number,
  H: number,
  hd: number,
): void {
  // q, k, v, out [T, C] with C = H*hd; att [H, T, T]; imagePart [T]
  const C = H * hd;
  const scale = 1 / Math.sqrt(hd);
  const qh = scratch(0, T * hd), kh = scratch(1, T * hd), vh = scratch(2, T * hd), acc = scratch(3, hd), w = scratch(4, T);
  for (let h = 0; h < H; h++) {
    gather(qh, q, T, C, h, hd);
    gather(kh, k, T, C, h, hd);
    gather(vh, v, T, C, h, hd);
    for (let t = 0; t < T; t++) {
      const hi = rowEnd(imagePart, t, T); // keys s < hi may be visible (an image part is normally contiguous)
      const p = imagePart[t];
      const ar = h * T * T + t * T;
      const qo = t * hd;
      let max = -Infinity;
      for (let s = 0; s < hi; s++) {
        if (s > t && imagePart[s] !== p) {
          w[s] = -Infinity; // masked: a later token outside t's image
          continue;
        }
        const sc = dot(qh, qo, kh, s * hd, hd) * scale; // preatt = q.k / sqrt(hd)
        w[s] = sc;
        if (sc > max) max = sc;
      }
      let sum = 0;
      for (let s = 0; s < hi; s++) {
        const e = Math.exp(w[s] - max);
        w[s] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let s = 0; s < hi; s++) {
        const a = w[s] * inv; // att = softmax(preatt) over allowed s
        w[s] = a;
        att[ar + s] = a;
      }
      for (let s = hi; s < T; s++) att[ar + s] = 0; // masked
      weightedRowSum(acc, w, vh, hi, hd); // out = att @ v
      const oo = t * C + h * hd;
      for (let i = 0; i < hd; i++) out[oo + i] = acc[i];
    }
  }
}

export function attentionBackward(
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
  dout: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  att: Float32Array,
  imagePart: Int32Array,
  T: number,
  H: number,
  hd: number,
): void {
  if (useWasm && T > 1) attentionBackwardWasm(dq, dk, dv, dout, q, k, v, att, T, H, hd); // the mask is in att (zeros)
  else attentionBackwardJs(dq, dk, dv, dout, q, k, v, att, imagePart, T, H, hd);
}

export function attentionBackwardJs(
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
  dout: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  att: Float32Array,
  imagePart: Int32Array,
  T: number,
  H: number,
  hd: number,
): void {
  // dout, q, k, v [T, C]; att [H, T, T]; dq, dk, dv [T, C] accumulated
  const C = H * hd;
  const scale = 1 / Math.sqrt(hd);
  const qh = scratch(0, T * hd), kh = scratch(1, T * hd), vh = scratch(2, T * hd), doh = scratch(3, T * hd);
  const dkh = scratch(5, T * hd), dvh = scratch(6, T * hd), datt = scratch(7, T), acc = scratch(8, hd);
  for (let h = 0; h < H; h++) {
    gather(qh, q, T, C, h, hd);
    gather(kh, k, T, C, h, hd);
    gather(vh, v, T, C, h, hd);
    gather(doh, dout, T, C, h, hd);
    dkh.fill(0, 0, T * hd);
    dvh.fill(0, 0, T * hd);
    for (let t = 0; t < T; t++) {
      const hi = rowEnd(imagePart, t, T);
      const ar = h * T * T + t * T;
      const to = t * hd;
      let sdot = 0; // sum_s att * datt
      for (let s = 0; s < hi; s++) {
        const a = att[ar + s];
        if (a === 0) {
          datt[s] = 0; // masked (or underflowed): no gradient either way
          continue;
        }
        const so = s * hd;
        const d = dot(doh, to, vh, so, hd); // undoes out = att @ v (w.r.t. att)
        for (let i = 0; i < hd; i++) dvh[so + i] += a * doh[to + i]; // undoes out = att @ v (w.r.t. v)
        datt[s] = d;
        sdot += a * d;
      }
      for (let s = 0; s < hi; s++) datt[s] = att[ar + s] * (datt[s] - sdot) * scale; // undoes att = softmax(preatt), preatt = q.k*scale
      weightedRowSum(acc, datt, kh, hi, hd); // undoes preatt = q.k (w.r.t. q)
      const oo = t * C + h * hd;
      for (let i = 0; i < hd; i++) dq[oo + i] += acc[i];
      for (let s = 0; s < hi; s++) {
        const dpre = datt[s];
        if (dpre === 0) continue;
        const so = s * hd;
        for (let i = 0; i < hd; i++) dkh[so + i] += dpre * qh[to + i]; // undoes preatt = q.k (w.r.t. k)
      }
    }
    for (let s = 0; s < T; s++) {
      const o = s * C + h * hd, d = s * hd;
      for (let i = 0; i < hd; i++) {
        dk[o + i] += dkh[d + i];
        dv[o + i] += dvh[d + i];
      }
    }
  }
}
