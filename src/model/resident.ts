/**
 * The inference pass with weights and activations resident in WebAssembly memory (capture's hot path).
 * The same steps, kernels and summation orders as layerForward in efmoe.ts, so the same bits: the gemm
 * kernels of kernels/simd.wat and the RoPE, residual, gather, combine and attention kernels of
 * kernels/forward.wat. Weights are copied in once (transposed into the gemm's B layout); every step of a
 * layer then runs on the heap, and JS touches only the router's N*E probabilities and the dispatch.
 *
 * Shapes: N rows (N4 = N rounded up to the gemm's 4-row block), C hidden, H heads of hd, E experts,
 * K per token, F expert width (Fp: padded to 8 with zero weights, which add exact zeros), NK = N*K.
 * Needs C a multiple of 8 and hd of 4 (else null: callers use layerForward).
 */
import { dims, type ModelConfig } from './config.js';
import type { Params } from './params.js';
import type { RopeTable } from './kernels/rope.js';
import { routerForward } from './kernels/router.js';
import { createForwardKernels, type ForwardKernels } from './kernels/wasm.js';
import { moeDispatch } from './moe.js';

const up = (n: number, m: number) => Math.ceil(n / m) * m;

/** Float offsets of one layer's weights in the heap; matrices transposed to [in][out]. */
interface LayerAt {
  inputNorm: number; postNorm: number; qNorm: number; kNorm: number; // [C], [C], [hd], [hd]
  wq: number; wk: number; wv: number; wo: number; // [C][C]
  router: number; // [C][Ep]
  w1: number[]; w3: number[]; // E x [C][Fp]
  w2: number[]; // E x [Fp][C]
}

/** What the pass needs of efmoe.ts's batch layout. */
export interface ResidentBatch {
  N: number;
  B: number;
  rowStart: Int32Array; // [B+1]
  pos: Int32Array; // [N]
  T: number[]; // [B] sequence lengths
  imagePart: Int32Array[]; // [B] per position: image part index or -1
}

export interface ResidentLayerOut {
  experts: Int32Array; // [N*K]
  gates: Float32Array; // [N*K]
  probs?: Float32Array; // [N*E] when asked for
}

/** JS-side buffers of the router step (from the workspace). */
export interface ResidentScratch {
  experts: Int32Array; // [N*K]
  probs: Float32Array; // [N*E]
  expertStart: Int32Array; // [E+1]
  fill: Int32Array; // [E]
  logits: Float32Array; // [N*E], when the router's gemm columns are padded
}

/** A batch's activations: byte addresses in the heap, and the heap's views (valid for this batch). */
interface Activations {
  N: number; N4: number; NK: number;
  x: number; ln: number; q: number; k: number; v: number; att: number; o: number; // [Nr][C]
  pk: number; rstd: number; rl: number; gates: number; sa: number; gidx: number; // packed A, [Nr*H], [Nr][Ep], [NK], i32 [NK], i32 [NK+4E]
  ye: number; g: number; u: number; s: number; pos: number; // [NK+4][C], [Nr][Fp] x3, i32 [N]
  bias: number; lens: number; kt: number; S: number; O: number; // attention: mask bias, i32 [N], scratch
  biasAt: Int32Array; // [B] each sequence's mask bias
  end: number; // floats used (weights included)
  mem: Float32Array;
  ints: Int32Array;
}

export class ResidentForward {
  private readonly d: ReturnType<typeof dims>;
  private readonly Ep: number; // router columns, padded to the gemm block
  private readonly Fp: number; // expert width, padded to the gemm block
  private readonly at: LayerAt[] = [];
  private readonly cos: number;
  private readonly sin: number;
  private readonly wEnd: number; // weights occupy floats [0, wEnd)
  private holds: Float32Array | null = null; // the params.flat the heap holds

  private constructor(private readonly fk: ForwardKernels, readonly config: ModelConfig) {
    const d = (this.d = dims(config));
    const { L, C, hd, E, F } = d;
    this.Ep = up(E, fk.k.COLS);
    const Fp = (this.Fp = up(F, fk.k.COLS));
    let next = 0;
    const take = (n: number) => {
      const o = next;
      next += up(n, 4);
      return o;
    };
    for (let l = 0; l < L; l++) {
      this.at.push({
        inputNorm: take(C), postNorm: take(C), qNorm: take(hd), kNorm: take(hd),
        wq: take(C * C), wk: take(C * C), wv: take(C * C), wo: take(C * C), router: take(C * this.Ep),
        w1: Array.from({ length: E }, () => take(C * Fp)), w3: Array.from({ length: E }, () => take(C * Fp)),
        w2: Array.from({ length: E }, () => take(Fp * C)),
      });
    }
    const tab = config.max_position_embeddings * (hd >> 1);
    this.cos = take(tab);
    this.sin = take(tab);
    this.wEnd = next;
  }

  /** A pass for this config on a fresh WASM instance, or null (no WebAssembly SIMD, or shapes it does not cover). */
  static create(config: ModelConfig): ResidentForward | null {
    const { C, hd } = dims(config);
    if (C % 8 !== 0 || hd % 4 !== 0) return null;
    const fk = createForwardKernels();
    return fk === null ? null : new ResidentForward(fk, config);
  }

  /** True when the heap holds these weights (as of the last upload). */
  holdsWeightsOf(params: Params): boolean {
    return this.holds === params.flat;
  }

  /** Copy the weights into the heap, transposed to the gemm's [in][out] layout (throws WasmOutOfMemory). */
  upload(params: Params, rope: RopeTable): void {
    const { C, E, F, L, hd } = this.d;
    const { Fp } = this;
    const k = this.fk.k;
    const stage = this.wEnd;
    const mem = k.heap(stage + Math.max(C * C, C * F, E * C));
    /** dst [IN][ldd] = W^T for W [OUT][IN] (row-major); columns OUT..ldd zero. */
    const put = (dst: number, w: Float32Array, OUT: number, IN: number, ldd: number) => {
      mem.set(w.subarray(0, OUT * IN), stage);
      k.transpose(stage * 4, IN * 4, OUT, IN, dst * 4, ldd * 4);
      if (ldd > OUT) for (let i = 0; i < IN; i++) mem.fill(0, dst + i * ldd + OUT, dst + i * ldd + ldd);
    };
    for (let l = 0; l < L; l++) {
      const p = params.layers[l], a = this.at[l];
      mem.set(p.inputNorm, a.inputNorm);
      mem.set(p.postNorm, a.postNorm);
      mem.set(p.qNorm.subarray(0, hd), a.qNorm);
      mem.set(p.kNorm.subarray(0, hd), a.kNorm);
      put(a.wq, p.wq, C, C, C);
      put(a.wk, p.wk, C, C, C);
      put(a.wv, p.wv, C, C, C);
      put(a.wo, p.wo, C, C, C);
      put(a.router, p.router, E, C, this.Ep);
      for (let e = 0; e < E; e++) {
        put(a.w1[e], p.w1[e], F, C, Fp);
        put(a.w3[e], p.w3[e], F, C, Fp);
        put(a.w2[e], p.w2[e], C, F, C);
        mem.fill(0, a.w2[e] + F * C, a.w2[e] + Fp * C); // padded rows of W2_e^T
      }
    }
    const tab = this.config.max_position_embeddings * (hd >> 1);
    mem.set(rope.cos.subarray(0, tab), this.cos);
    mem.set(rope.sin.subarray(0, tab), this.sin);
    this.holds = params.flat;
  }

  /**
   * All layers over x [N,C] (the embedded rows; overwritten with the last layer's output when `keepX`).
   * Returns each layer's routing (fresh arrays). Throws WasmOutOfMemory before any work when the batch
   * does not fit. (The layer steps are separate methods: small functions keep the JIT's work small.)
   */
  run(x: Float32Array, b: ResidentBatch, keepX: boolean, wantProbs: boolean, scratch: ResidentScratch): ResidentLayerOut[] {
    const { d } = this;
    const { L, C, E, K } = d;
    const { N } = b;
    const NK = N * K;
    const a = this.layout(b);
    const mem = a.mem;
    mem.fill(0, this.wEnd, a.end); // padded rows stay zero (finite) through every step
    mem.set(x.subarray(0, N * C), a.x / 4);
    a.ints.set(b.pos.subarray(0, N), a.pos / 4);
    this.maskBias(b, a);
    const gatesV = mem.subarray(a.gates / 4, a.gates / 4 + NK);
    const out: ResidentLayerOut[] = [];
    for (let l = 0; l < L; l++) {
      this.attentionBlock(l, b, a); // h = x + Attn(RMSNorm(x))
      this.routerStep(l, a, scratch, gatesV); // ln2 = RMSNorm(h); probs, top-k experts, gates; dispatch
      this.expertsBlock(l, a, scratch.expertStart); // x = h + sum_k gate_k * expert_k(ln2)
      out.push({ experts: scratch.experts.slice(0, NK), gates: gatesV.slice(0, NK), ...(wantProbs ? { probs: scratch.probs.slice(0, N * E) } : {}) });
    }
    if (keepX) x.set(mem.subarray(a.x / 4, a.x / 4 + N * C));
    return out;
  }

  /** Byte addresses of a batch's activations, after the weights; each leaves slack for padded rows. */
  private layout(b: ResidentBatch): Activations {
    const { C, H, hd, E, K } = this.d;
    const { Ep, Fp } = this;
    const N = b.N, NK = N * K, N4 = up(N, 4), Nr = N4 + 4;
    let next = this.wEnd;
    const take = (n: number) => {
      const o = next;
      next += up(n, 4);
      return o * 4;
    };
    let maxT = 0, biasN = 0;
    for (let i = 0; i < b.B; i++) {
      maxT = Math.max(maxT, b.T[i]);
      biasN += b.T[i] * up(b.T[i], 8);
    }
    const a: Activations = {
      N, N4, NK,
      x: take(Nr * C), ln: take(Nr * C), q: take(Nr * C), k: take(Nr * C), v: take(Nr * C), att: take(Nr * C), o: take(Nr * C),
      pk: take(Nr * Math.max(C, Fp)), rstd: take(Nr * H), rl: take(Nr * Ep), gates: take(NK), sa: take(NK), gidx: take(NK + 4 * E),
      ye: take((NK + 4) * C), g: take(Nr * Fp), u: take(Nr * Fp), s: take(Nr * Fp), pos: take(N),
      bias: take(biasN), lens: take(N), kt: take(hd * up(maxT, 8)), S: take(up(maxT, 4) * up(maxT, 8)), O: take(up(maxT, 4) * up(hd, 8)),
      biasAt: new Int32Array(b.B), end: next,
      mem: new Float32Array(0), ints: new Int32Array(0),
    };
    a.mem = this.fk.k.heap(next);
    a.ints = this.fk.k.heapInts();
    return a;
  }

  /**
   * The attention mask as an additive bias, per sequence (the same for every layer and head): row t sees
   * s <= t and its own image part; lens[t] covers its visible keys, rounded up to 4 lanes.
   */
  private maskBias(b: ResidentBatch, a: Activations): void {
    const { mem, ints } = a;
    for (let i = 0, at = a.bias / 4; i < b.B; i++) {
      const T = b.T[i], Tc = up(T, 8), ip = b.imagePart[i], r0 = b.rowStart[i];
      a.biasAt[i] = at * 4;
      for (let t = 0; t < T; t++) {
        let hi = t + 1;
        const p = ip[t];
        if (p >= 0) for (let j = t + 1; j < T; j++) if (ip[j] === p) hi = j + 1;
        const len = (hi + 3) & ~3;
        ints[a.lens / 4 + r0 + t] = len;
        for (let j = 0; j < len; j++) mem[at + t * Tc + j] = j < hi && (j <= t || ip[j] === p) ? 0 : -Infinity;
      }
      at += T * Tc;
    }
  }

  /** h = x + Wo Attn(rope(RMSNorm_head(Wq,k,v RMSNorm(x)))), in place in a.x. */
  private attentionBlock(l: number, b: ResidentBatch, a: Activations): void {
    const { fk, d } = this;
    const k = fk.k, w = this.at[l];
    const { C, H, hd } = d;
    const { N, N4 } = a;
    const eps = this.config.rms_norm_eps;
    k.rmsnorm(a.x, a.ln, w.inputNorm * 4, a.rstd, N, C, eps); // ln1 = RMSNorm(x)
    k.pack4(a.ln, C * 4, N4, C, a.pk);
    k.gemm4(a.pk, 16 * C, 16, w.wq * 4, C * 4, a.q, C * 4, N4, C, C, 0); // q = Wq ln1
    k.gemm4(a.pk, 16 * C, 16, w.wk * 4, C * 4, a.k, C * 4, N4, C, C, 0); // k = Wk ln1
    k.gemm4(a.pk, 16 * C, 16, w.wv * 4, C * 4, a.v, C * 4, N4, C, C, 0); // v = Wv ln1
    if (this.config.qk_norm) {
      k.rmsnorm(a.q, a.q, w.qNorm * 4, a.rstd, N * H, hd, eps); // q = RMSNorm_head(q)
      k.rmsnorm(a.k, a.k, w.kNorm * 4, a.rstd, N * H, hd, eps); // k = RMSNorm_head(k)
    }
    fk.rope(a.q, a.pos, this.cos * 4, this.sin * 4, N, H, hd); // q = rope(q)
    fk.rope(a.k, a.pos, this.cos * 4, this.sin * 4, N, H, hd); // k = rope(k)
    const scale = 1 / Math.sqrt(hd);
    for (let i = 0; i < b.B; i++) {
      const r = b.rowStart[i] * C * 4;
      fk.attention(a.q + r, a.k + r, a.v + r, a.att + r, C, b.T[i], H, hd, a.biasAt[i], a.lens + b.rowStart[i] * 4, a.kt, a.S, a.O, scale);
    } // att = softmax(mask(q k^T / sqrt(hd))) v, per sequence
    k.pack4(a.att, C * 4, N4, C, a.pk);
    k.gemm4(a.pk, 16 * C, 16, w.wo * 4, C * 4, a.o, C * 4, N4, C, C, 0); // oOut = Wo att
    fk.add(a.x, a.o, N * C); // h = x + oOut
  }

  /** ln2 = RMSNorm(h); rlogits = Wr ln2; probs, top-k experts and gates (JS, router.ts); the dispatch. */
  private routerStep(l: number, a: Activations, sc: ResidentScratch, gatesV: Float32Array): void {
    const k = this.fk.k, w = this.at[l];
    const { C, E, K } = this.d;
    const { Ep } = this;
    const { N, N4, NK, mem, ints } = a;
    k.rmsnorm(a.x, a.ln, w.postNorm * 4, a.rstd, N, C, this.config.rms_norm_eps); // ln2 = RMSNorm(h)
    k.gemm(a.ln, C * 4, 4, w.router * 4, Ep * 4, a.rl, Ep * 4, N4, C, Ep, 0); // rlogits = Wr ln2
    const rl = a.rl / 4;
    const logits = Ep === E ? mem.subarray(rl, rl + N * E) : sc.logits;
    if (Ep !== E) for (let n = 0; n < N; n++) logits.set(mem.subarray(rl + n * Ep, rl + n * Ep + E), n * E);
    routerForward(sc.experts, gatesV, sc.probs, logits, N, E, K, this.config.norm_topk_prob); // probs, top-k experts, gates
    const saV = ints.subarray(a.sa / 4, a.sa / 4 + NK);
    moeDispatch(sc.expertStart, saV, sc.fill, sc.experts, NK, E); // slots of each expert's assignments
    // each expert's rows, padded to 4 with its last row, for the gather
    for (let e = 0, at = a.gidx / 4; e < E; e++) {
      const s0 = sc.expertStart[e], ne = sc.expertStart[e + 1] - s0;
      for (let j = 0; j < ne; j++) ints[at + j] = (saV[s0 + j] / K) | 0;
      for (let j = ne; j < up(ne, 4); j++) ints[at + j] = ints[at + ne - 1];
      at += up(ne, 4);
    }
  }

  /** Per expert on its rows: ye = W2_e(silu(W1_e xe) * W3_e xe); then x = h + sum_k gate_k * ye_k. */
  private expertsBlock(l: number, a: Activations, expertStart: Int32Array): void {
    const { fk } = this;
    const k = fk.k, w = this.at[l];
    const { C, E, K } = this.d;
    const { Fp } = this;
    for (let e = 0, at = a.gidx; e < E; e++) {
      const s0 = expertStart[e], ne = expertStart[e + 1] - s0, ne4 = up(ne, 4);
      if (ne === 0) continue;
      fk.gatherPack4(a.ln, C * 4, at, ne4, C, a.pk); // xe[slot] = ln2[row]
      k.gemm4(a.pk, 16 * C, 16, w.w1[e] * 4, Fp * 4, a.g, Fp * 4, ne4, C, Fp, 0); // g = W1_e xe
      k.gemm4(a.pk, 16 * C, 16, w.w3[e] * 4, Fp * 4, a.u, Fp * 4, ne4, C, Fp, 0); // u = W3_e xe
      k.swiglu(a.g, a.u, a.s, ne4 * Fp); // s = silu(g) * u
      k.pack4(a.s, Fp * 4, ne4, Fp, a.pk);
      k.gemm4(a.pk, 16 * Fp, 16, w.w2[e] * 4, C * 4, a.ye + s0 * C * 4, C * 4, ne4, Fp, C, 0); // ye = W2_e s
      at += ne4 * 4;
    }
    fk.combine(a.x, a.ye, a.gates, a.sa, a.NK, K, C); // out = h + sum_k gate_k * ye_k
  }
}
