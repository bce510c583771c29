/**
 * The inference pass with weights and activations resident in WebAssembly memory (capture's hot path).
 * The same steps, kernels and summation orders as layerForward in efmoe.ts, so the same bits: the gemm
 * kernels of kernels/simd.wat and the RoPE, residual, gather, combine and attention kernels of
 * kernels/forward.wat. Weights are copied in once (transposed into the gemm's B layout); a layer is then
 * three WASM calls (attention_block, route, experts_block; the first and last over parameter blocks of heap
 * addresses), and JS computes only the router's N*E probabilities (softmax.ts: Math.exp, as in training).
 * Few, small JS functions also keep the JIT's work small (one large orchestrating function cost ~0.3 s of
 * TurboFan compile per worker thread, a fifth of its forward work at the benchmark's size).
 *
 * Shapes: N rows (N4 = N rounded up to the gemm's 4-row block), C hidden, H heads of hd, E experts,
 * K per token, F expert width (Fp: padded to 8 with zero weights, which add exact zeros), NK = N*K.
 * Needs C a multiple of 8 and hd of 4 (else null: callers use layerForward).
 */
import { dims, type ModelConfig } from './config.js';
import type { Params } from './params.js';
import type { RopeTable } from './kernels/rope.js';
import { softmaxForward } from './kernels/softmax.js';
import { createForwardKernels, type ForwardKernels } from './kernels/wasm.js';
import { ATTENTION_BLOCK, ATTENTION_WEIGHTS, EXPERTS_BLOCK, EXPERTS_WEIGHTS } from './kernels/forward-wasm.js';

const up = (n: number, m: number) => Math.ceil(n / m) * m;

/** Float offsets of one layer's weights in the heap; matrices transposed to [in][out]. */
interface LayerAt {
  inputNorm: number; postNorm: number; qNorm: number; kNorm: number; // [C], [C], [hd], [hd]
  wq: number; wk: number; wv: number; wo: number; // [C][C]
  router: number; // [C][Ep]
  w1: number[]; w3: number[]; // E x [C][Fp]
  w2: number[]; // E x [Fp][C]
  experts: number; // i32 [3][E]: the byte addresses of w1, w3, w2 (experts_block reads them)
  attentionWords: number; // i32 ATTENTION_WEIGHTS: attention_block's second parameter block
  expertsWords: number; // i32 EXPERTS_WEIGHTS: experts_block's second parameter block
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

/** JS-side buffer of the router step (from the workspace). */
export interface ResidentScratch {
  logits: Float32Array; // [N*E], when the router's gemm columns are padded
}

/** A batch's activations: byte addresses in the heap, and the heap's views (valid for this batch). */
interface Activations {
  N: number; N4: number; NK: number;
  x: number; ln: number; q: number; k: number; v: number; att: number; o: number; // [Nr][C]
  pk: number; rstd: number; rl: number; gates: number; sa: number; gidx: number; // packed A, [Nr*H], [Nr][Ep], [NK], i32 [NK], i32 [NK+4E]
  ye: number; g: number; u: number; s: number; pos: number; // [NK+4][C], [Nr][Fp] x3, i32 [N]
  bias: number; lens: number; kt: number; S: number; O: number; // attention: mask bias, i32 [N], scratch
  probs: number; experts: number; fill: number; // router: [N][E], i32 [NK], i32 [E]
  es: number; seqRow: number; seqT: number; biasAt: number; // i32: expertStart [E+1]; per sequence [B]: first row, length, mask bias address
  pa: number; pe: number; // i32 parameter blocks of attention_block and experts_block (the batch's words)
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
        experts: take(3 * E), attentionWords: take(ATTENTION_WEIGHTS.length), expertsWords: take(EXPERTS_WEIGHTS.length),
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
      const ints = k.heapInts();
      for (let e = 0; e < E; e++) {
        ints[a.experts + e] = a.w1[e] * 4;
        ints[a.experts + E + e] = a.w3[e] * 4;
        ints[a.experts + 2 * E + e] = a.w2[e] * 4;
      }
      const aw: Record<(typeof ATTENTION_WEIGHTS)[number], number> = {
        inputNorm: a.inputNorm, wq: a.wq, wk: a.wk, wv: a.wv, qNorm: a.qNorm, kNorm: a.kNorm, wo: a.wo, postNorm: a.postNorm, router: a.router,
      };
      ATTENTION_WEIGHTS.forEach((n, i) => (ints[a.attentionWords + i] = aw[n] * 4));
      const ew: Record<(typeof EXPERTS_WEIGHTS)[number], number> = { w1: a.experts, w3: a.experts + E, w2: a.experts + 2 * E };
      EXPERTS_WEIGHTS.forEach((n, i) => (ints[a.expertsWords + i] = ew[n] * 4));
    }
    const tab = this.config.max_position_embeddings * (hd >> 1);
    mem.set(rope.cos.subarray(0, tab), this.cos);
    mem.set(rope.sin.subarray(0, tab), this.sin);
    this.holds = params.flat;
  }

  /**
   * All layers over x [N,C] (the embedded rows; overwritten with the last layer's output when `keepX`).
   * Returns each layer's routing (fresh arrays). Throws WasmOutOfMemory before any work when the batch
   * does not fit.
   */
  run(x: Float32Array, b: ResidentBatch, keepX: boolean, wantProbs: boolean, scratch: ResidentScratch): ResidentLayerOut[] {
    const { d, fk } = this;
    const { L, C, E, K } = d;
    const { N } = b;
    const NK = N * K;
    const a = this.layout(b);
    const { mem, ints } = a;
    mem.fill(0, this.wEnd, a.end); // padded rows stay zero (finite) through every step
    mem.set(x.subarray(0, N * C), a.x / 4);
    ints.set(b.pos.subarray(0, N), a.pos / 4);
    ints.set(b.rowStart.subarray(0, b.B), a.seqRow / 4);
    ints.set(b.T, a.seqT / 4);
    this.maskBias(b, a);
    this.parameterBlocks(b, a);
    const gatesV = mem.subarray(a.gates / 4, a.gates / 4 + NK), probsV = mem.subarray(a.probs / 4, a.probs / 4 + N * E);
    const expertsV = ints.subarray(a.experts / 4, a.experts / 4 + NK);
    const out: ResidentLayerOut[] = [];
    for (let l = 0; l < L; l++) {
      const w = this.at[l];
      fk.attentionBlock(a.pa, w.attentionWords * 4); // h = x + Attn(RMSNorm(x)); ln2 = RMSNorm(h); rlogits = Wr ln2
      this.routerStep(a, scratch, probsV); // probs, top-k experts, gates; dispatch
      fk.expertsBlock(a.pe, w.expertsWords * 4); // x = h + sum_k gate_k * expert_k(ln2)
      out.push({ experts: expertsV.slice(), gates: gatesV.slice(), ...(wantProbs ? { probs: probsV.slice() } : {}) });
    }
    if (keepX) x.set(mem.subarray(a.x / 4, a.x / 4 + N * C));
    return out;
  }

  /** The batch's parameter blocks of attention_block and experts_block (forward.wat); the layers' are in the weights. */
  private parameterBlocks(b: ResidentBatch, a: Activations): void {
    const { C, H, hd, E, K } = this.d;
    const { mem, ints } = a;
    const att: Record<(typeof ATTENTION_BLOCK)[number], number> = {
      x: a.x, ln: a.ln, rstd: a.rstd, N: a.N, C, eps: 0, pk: a.pk, N4: a.N4, q: a.q, k: a.k, v: a.v,
      qkNorm: this.config.qk_norm ? 1 : 0, H, hd, pos: a.pos, cos: this.cos * 4, sin: this.sin * 4, B: b.B, rowStart: a.seqRow, T: a.seqT,
      biasAt: a.biasAt, lens: a.lens, kt: a.kt, S: a.S, O: a.O, scale: 0, att: a.att, o: a.o, Ep: this.Ep, rl: a.rl,
    };
    ATTENTION_BLOCK.forEach((n, i) => (ints[a.pa / 4 + i] = att[n]));
    mem[a.pa / 4 + ATTENTION_BLOCK.indexOf('eps')] = this.config.rms_norm_eps; // f32 words
    mem[a.pa / 4 + ATTENTION_BLOCK.indexOf('scale')] = 1 / Math.sqrt(hd);
    const ex: Record<(typeof EXPERTS_BLOCK)[number], number> = {
      E, es: a.es, at: a.gidx, ln: a.ln, C, pk: a.pk, Fp: this.Fp, g: a.g, u: a.u, s: a.s, ye: a.ye, x: a.x, gates: a.gates, sa: a.sa, NK: a.NK, K,
    };
    EXPERTS_BLOCK.forEach((n, i) => (ints[a.pe / 4 + i] = ex[n]));
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
      probs: take(N * E), experts: take(NK), fill: take(E),
      es: take(E + 1), seqRow: take(b.B), seqT: take(b.B), biasAt: take(b.B),
      pa: take(ATTENTION_BLOCK.length), pe: take(EXPERTS_BLOCK.length), end: 0,
      mem: new Float32Array(0), ints: new Int32Array(0),
    };
    a.end = next;
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
      ints[a.biasAt / 4 + i] = at * 4;
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

  /** probs = softmax(rlogits) (JS, softmax.ts); top-k experts and gates, the dispatch and each expert's rows (route). */
  private routerStep(a: Activations, sc: ResidentScratch, probsV: Float32Array): void {
    const { E, K } = this.d;
    const { Ep } = this;
    const { N, mem } = a;
    const rl = a.rl / 4;
    const logits = Ep === E ? mem.subarray(rl, rl + N * E) : sc.logits;
    if (Ep !== E) for (let n = 0; n < N; n++) logits.set(mem.subarray(rl + n * Ep, rl + n * Ep + E), n * E);
    softmaxForward(probsV, logits, N, E); // probs = softmax(logits), float32
    this.fk.route(a.probs, N, E, K, this.config.norm_topk_prob ? 1 : 0, a.experts, a.gates, a.es, a.fill, a.sa, a.gidx); // top-k experts, gates; dispatch
  }
}
