import { wasmKernel } from './wasm.js';

/**
 * attentionForward on the WebAssembly SIMD gemm (same contract as attention.ts): per head,
 *   scores = Q_h K_h^T      (gemm, K_h transposed inside WASM)
 *   att    = softmax(mask(scores / sqrt(hd)))   (WASM row softmax with a SIMD exp)
 *   out_h  = att V_h        (gemm)
 * q, k, v are copied into WASM memory once per call; heads are column slices read through strides.
 * Scores are float32 (as in PyTorch); the JS version in attention.ts accumulates in float64.
 */
const up = (n: number, m: number) => Math.ceil(n / m) * m;

let hiBuf = new Int32Array(0);
/** his[t]: keys t may see lie below it (t + 1, or past the last position of t's image part). */
function rowEnds(imagePart: Int32Array, T: number): Int32Array {
  if (hiBuf.length < T) hiBuf = new Int32Array(Math.max(T, 2 * hiBuf.length));
  for (let t = 0; t < T; t++) {
    let hi = t + 1;
    const p = imagePart[t];
    if (p >= 0) for (let s = t + 1; s < T; s++) if (imagePart[s] === p) hi = s + 1;
    hiBuf[t] = hi;
  }
  return hiBuf;
}

export function attentionForwardWasm(
  out: Float32Array,
  att: Float32Array | null, // null: do not keep the probabilities (inference)
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  imagePart: Int32Array,
  T: number,
  H: number,
  hd: number,
): void {
  // q, k, v, out [T, C] with C = H*hd; att [H, T, T]; imagePart [T]
  const w = wasmKernel!;
  const C = H * hd;
  const scale = 1 / Math.sqrt(hd);
  const Tr = up(T, w.ROWS); // rows of a product, padded to the register block
  const Tc = up(T, w.COLS); // score columns, padded to the block width
  const hdc = up(hd, w.COLS); // output columns of att @ V_h
  // heap layout (floats); each operand leaves room for reads past its end by padded rows/columns
  const qOff = 0;
  const kOff = qOff + up(Tr * C + w.COLS, 4);
  const vOff = kOff + up(T * C, 4);
  const ktOff = vOff + up(T * C + w.COLS, 4); // K_h^T [hd][Tc]
  const sOff = ktOff + up(hd * Tc, 4); // scores, then probabilities [Tr][Tc]
  const oOff = sOff + up(Tr * Tc, 4); // out_h [Tr][hdc]
  const lOff = oOff + up(Tr * hdc, 4); // row lengths for the softmax (int32) [T]
  const mem = w.heap(lOff + T);
  const ints = w.heapInts();
  mem.set(q.subarray(0, T * C), qOff);
  mem.fill(0, qOff + T * C, qOff + Tr * C); // padded query rows: finite, thrown away
  mem.set(k.subarray(0, T * C), kOff);
  mem.set(v.subarray(0, T * C), vOff);
  mem.fill(0, vOff + T * C, vOff + T * C + w.COLS);
  // keys t may see lie below his[t]: causal, extended to the last position of t's image
  const his = rowEnds(imagePart, T);
  for (let t = 0; t < T; t++) ints[lOff + t] = (his[t] + 3) & ~3;
  for (let h = 0; h < H; h++) {
    w.transpose((kOff + h * hd) * 4, C * 4, T, hd, ktOff * 4, Tc * 4); // K_h^T
    for (let i = 0; i < hd; i++) mem.fill(0, ktOff + i * Tc + T, ktOff + i * Tc + Tc);
    w.gemm((qOff + h * hd) * 4, C * 4, 4, ktOff * 4, Tc * 4, sOff * 4, Tc * 4, Tr, hd, Tc, 0); // scores = Q_h K_h^T
    for (let t = 0; t < T; t++) {
      const row = sOff + t * Tc, hi = his[t], p = imagePart[t];
      if (p >= 0) for (let s = t + 1; s < hi; s++) if (imagePart[s] !== p) mem[row + s] = -Infinity; // another part inside
      for (let s = hi, e = ints[lOff + t]; s < e; s++) mem[row + s] = -Infinity; // lanes past the row: exp gives 0
    }
    w.softmaxRows(sOff * 4, Tc * 4, lOff * 4, T, scale); // att = softmax(mask(scores) / sqrt(hd))
    for (let t = 0; t < T; t++) {
      const row = sOff + t * Tc, ar = h * T * T + t * T, hi = his[t];
      if (hi < T) mem.fill(0, row + hi, row + T); // masked: no weight in att @ V_h
      if (att === null) continue; // inference: the probabilities are not kept
      att.set(mem.subarray(row, row + hi), ar);
      if (hi < T) att.fill(0, ar + hi, ar + T);
    }
    for (let t = T; t < Tr; t++) mem.fill(0, sOff + t * Tc, sOff + t * Tc + T); // padded rows: finite
    w.gemm(sOff * 4, Tc * 4, 4, (vOff + h * hd) * 4, C * 4, oOff * 4, hdc * 4, Tr, T, hdc, 0); // out_h = att V_h
    for (let t = 0; t < T; t++) {
      const src = oOff + t * hdc, dst = t * C + h * hd;
      for (let i = 0; i < hd; i++) out[dst + i] = mem[src + i];
    }
  }
}

/**
 * attentionBackward on the WASM gemm (same contract as attention.ts; gradients accumulate). Per head:
 *   dV_h  = att^T dout_h            datt = dout_h V_h^T
 *   dpre  = att * (datt - rowsum(att * datt)) / sqrt(hd)     (JS, on the heap)
 *   dQ_h  = dpre K_h                dK_h = dpre^T Q_h
 */
export function attentionBackwardWasm(
  dq: Float32Array,
  dk: Float32Array,
  dv: Float32Array,
  dout: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  att: Float32Array,
  T: number,
  H: number,
  hd: number,
): void {
  // dout, q, k, v [T, C]; att [H, T, T]; dq, dk, dv [T, C] accumulated
  const w = wasmKernel!;
  const C = H * hd;
  const scale = 1 / Math.sqrt(hd);
  const Tr = up(T, w.ROWS), Tc = up(T, w.COLS), hdc = up(hd, w.COLS);
  const qOff = 0;
  const kOff = qOff + up(T * C + w.COLS, 4);
  const vOff = kOff + up(T * C + w.COLS, 4);
  const dOff = vOff + up(T * C, 4); // dout [Tr][C]
  const aOff = dOff + up(Tr * C + w.COLS, 4); // att_h [T][Tc]
  const vtOff = aOff + up(T * Tc, 4); // V_h^T [hd][Tc]
  const pOff = vtOff + up(hd * Tc, 4); // datt, then dpre [Tr][Tc]
  const tOff = pOff + up(Tr * Tc, 4); // one head's gradient [Tr][hdc]
  const mem = w.heap(tOff + Tr * hdc);
  mem.set(q.subarray(0, T * C), qOff);
  mem.fill(0, qOff + T * C, kOff);
  mem.set(k.subarray(0, T * C), kOff);
  mem.fill(0, kOff + T * C, vOff);
  mem.set(v.subarray(0, T * C), vOff);
  mem.set(dout.subarray(0, T * C), dOff);
  mem.fill(0, dOff + T * C, aOff);
  /** g[t*C + h*hd + i] += heap[tOff + t*hdc + i] */
  const addHead = (g: Float32Array, h: number) => {
    for (let t = 0; t < T; t++) {
      const src = tOff + t * hdc, dst = t * C + h * hd;
      for (let i = 0; i < hd; i++) g[dst + i] += mem[src + i];
    }
  };
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < T; t++) {
      const src = h * T * T + t * T, dst = aOff + t * Tc;
      for (let s = 0; s < T; s++) mem[dst + s] = att[src + s];
      mem.fill(0, dst + T, dst + Tc);
    }
    w.gemm(aOff * 4, 4, Tc * 4, (dOff + h * hd) * 4, C * 4, tOff * 4, hdc * 4, Tr, T, hdc, 0); // undoes out = att @ v (w.r.t. v)
    addHead(dv, h);
    w.transpose((vOff + h * hd) * 4, C * 4, T, hd, vtOff * 4, Tc * 4);
    for (let i = 0; i < hd; i++) mem.fill(0, vtOff + i * Tc + T, vtOff + i * Tc + Tc);
    w.gemm((dOff + h * hd) * 4, C * 4, 4, vtOff * 4, Tc * 4, pOff * 4, Tc * 4, Tr, hd, Tc, 0); // undoes out = att @ v (w.r.t. att)
    for (let t = 0; t < T; t++) {
      const row = pOff + t * Tc, a = aOff + t * Tc;
      let sdot = 0;
      for (let s = 0; s < T; s++) sdot += mem[a + s] * mem[row + s];
      for (let s = 0; s < T; s++) mem[row + s] = mem[a + s] * (mem[row + s] - sdot) * scale; // undoes att = softmax(preatt), preatt = q.k*scale
      mem.fill(0, row + T, row + Tc);
    }
    mem.fill(0, pOff + T * Tc, pOff + Tr * Tc);
    w.gemm(pOff * 4, Tc * 4, 4, (kOff + h * hd) * 4, C * 4, tOff * 4, hdc * 4, Tr, T, hdc, 0); // undoes preatt = q.k (w.r.t. q)
    addHead(dq, h);
    w.gemm(pOff * 4, 4, Tc * 4, (qOff + h * hd) * 4, C * 4, tOff * 4, hdc * 4, Tr, T, hdc, 0); // undoes preatt = q.k (w.r.t. k)
    addHead(dk, h);
  }
}
