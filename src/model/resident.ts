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
   * does not fit.
   */
  run(x: Float32Array, b: ResidentBatch, keepX: boolean, wantProbs: boolean, scratch: { experts: Int32Array; probs: Float32Array; expertStart: Int32Array; fill: Int32Array; logits: Float32Array }): ResidentLayerOut[] {
    const { fk, d, Ep, Fp } = this;
    const k = fk.k;
    const { L, C, H, hd, E, K } = d;
    const { N } = b;
    const NK = N * K, N4 = up(N, 4), Nr = N4 + 4;
    const eps = this.config.rms_norm_eps;
    // activations after the weights (float offsets); each leaves slack for padded rows
    let next = this.wEnd;
    const take = (n: number) => {
      const o = next;
      next += up(n, 4);
      return o;
    };
    let maxT = 0, biasN = 0;
    for (let i = 0; i < b.B; i++) {
      maxT = Math.max(maxT, b.T[i]);
      biasN += b.T[i] * up(b.T[i], 8);
    }
    const x0 = take(Nr * C), ln = take(Nr * C), q = take(Nr * C), kk = take(Nr * C), v = take(Nr * C), att = take(Nr * C), o = take(Nr * C);
    const pk = take(Nr * Math.max(C, Fp)), rstd = take(Nr * H), rl = take(Nr * Ep), gates = take(NK), sa = take(NK), gidx = take(NK + 4 * E);
    const ye = take((NK + 4) * C), g = take(Nr * Fp), u = take(Nr * Fp), s = take(Nr * Fp), pos = take(N);
    const bias = take(biasN), lens = take(N), kt = take(hd * up(maxT, 8)), S = take(up(maxT, 4) * up(maxT, 8)), O = take(up(maxT, 4) * up(hd, 8));
    const mem = k.heap(next);
    const ints = k.heapInts();
    mem.fill(0, this.wEnd, next); // padded rows stay zero (finite) through every step
    mem.set(x.subarray(0, N * C), x0);
    ints.set(b.pos.subarray(0, N), pos);
    // the attention mask as an additive bias, per sequence (the same for every layer and head): row t sees
    // s <= t and its own image part; lens[t] covers its visible keys, rounded up to 4 lanes
    const biasAt: number[] = [];
    for (let i = 0, at = bias; i < b.B; i++) {
      const T = b.T[i], Tc = up(T, 8), ip = b.imagePart[i], r0 = b.rowStart[i];
      biasAt.push(at);
      for (let t = 0; t < T; t++) {
        let hi = t + 1;
        const p = ip[t];
        if (p >= 0) for (let j = t + 1; j < T; j++) if (ip[j] === p) hi = j + 1;
        const len = (hi + 3) & ~3;
        ints[lens + r0 + t] = len;
        for (let j = 0; j < len; j++) mem[at + t * Tc + j] = j < hi && (j <= t || ip[j] === p) ? 0 : -Infinity;
      }
      at += T * Tc;
    }
    const gatesV = mem.subarray(gates, gates + NK), saV = ints.subarray(sa, sa + NK);
    const logits = Ep === E ? mem.subarray(rl, rl + N * E) : scratch.logits;
    const { experts, probs, expertStart, fill } = scratch;
    const B4 = (f: number) => f * 4; // float offset -> byte address
    const scale = 1 / Math.sqrt(hd);
    const out: ResidentLayerOut[] = [];
    for (let l = 0; l < L; l++) {
      const w = this.at[l];
      // attention
      k.rmsnorm(B4(x0), B4(ln), B4(w.inputNorm), B4(rstd), N, C, eps); // ln1 = RMSNorm(x)
      k.pack4(B4(ln), C * 4, N4, C, B4(pk));
      k.gemm4(B4(pk), 16 * C, 16, B4(w.wq), C * 4, B4(q), C * 4, N4, C, C, 0); // q = Wq ln1
      k.gemm4(B4(pk), 16 * C, 16, B4(w.wk), C * 4, B4(kk), C * 4, N4, C, C, 0); // k = Wk ln1
      k.gemm4(B4(pk), 16 * C, 16, B4(w.wv), C * 4, B4(v), C * 4, N4, C, C, 0); // v = Wv ln1
      if (this.config.qk_norm) {
        k.rmsnorm(B4(q), B4(q), B4(w.qNorm), B4(rstd), N * H, hd, eps); // q = RMSNorm_head(q)
        k.rmsnorm(B4(kk), B4(kk), B4(w.kNorm), B4(rstd), N * H, hd, eps); // k = RMSNorm_head(k)
      }
      fk.rope(B4(q), B4(pos), B4(this.cos), B4(this.sin), N, H, hd); // q = rope(q)
      fk.rope(B4(kk), B4(pos), B4(this.cos), B4(this.sin), N, H, hd); // k = rope(k)
      for (let i = 0; i < b.B; i++) {
        const r = b.rowStart[i] * C;
        fk.attention(B4(q + r), B4(kk + r), B4(v + r), B4(att + r), C, b.T[i], H, hd, B4(biasAt[i]), B4(lens + b.rowStart[i]), B4(kt), B4(S), B4(O), scale);
      } // att = softmax(mask(q k^T / sqrt(hd))) v, per sequence
      k.pack4(B4(att), C * 4, N4, C, B4(pk));
      k.gemm4(B4(pk), 16 * C, 16, B4(w.wo), C * 4, B4(o), C * 4, N4, C, C, 0); // oOut = Wo att
      fk.add(B4(x0), B4(o), N * C); // h = x + oOut
      // MoE
      k.rmsnorm(B4(x0), B4(ln), B4(w.postNorm), B4(rstd), N, C, eps); // ln2 = RMSNorm(h)
      k.gemm(B4(ln), C * 4, 4, B4(w.router), Ep * 4, B4(rl), Ep * 4, N4, C, Ep, 0); // rlogits = Wr ln2
      if (Ep !== E) for (let n = 0; n < N; n++) logits.set(mem.subarray(rl + n * Ep, rl + n * Ep + E), n * E);
      routerForward(experts, gatesV, probs, logits, N, E, K, this.config.norm_topk_prob); // probs, top-k experts, gates
      moeDispatch(expertStart, saV, fill, experts, NK, E); // slots of each expert's assignments
      // each expert's rows, padded to 4 with its last row, for the gather
      for (let e = 0, at = gidx; e < E; e++) {
        const s0 = expertStart[e], ne = expertStart[e + 1] - s0;
        for (let j = 0; j < ne; j++) ints[at + j] = (saV[s0 + j] / K) | 0;
        for (let j = ne; j < up(ne, 4); j++) ints[at + j] = ints[at + ne - 1];
        at += up(ne, 4);
      }
      for (let e = 0, at = gidx; e < E; e++) {
        const s0 = expertStart[e], ne = expertStart[e + 1] - s0, ne4 = up(ne, 4);
        if (ne === 0) continue;
        fk.gatherPack4(B4(ln), C * 4, B4(at), ne4, C, B4(pk)); // xe[slot] = ln2[row]
        k.gemm4(B4(pk), 16 * C, 16, B4(w.w1[e]), Fp * 4, B4(g), Fp * 4, ne4, C, Fp, 0); // g = W1_e xe
        k.gemm4(B4(pk), 16 * C, 16, B4(w.w3[e]), Fp * 4, B4(u), Fp * 4, ne4, C, Fp, 0); // u = W3_e xe
        k.swiglu(B4(g), B4(u), B4(s), ne4 * Fp); // s = silu(g) * u
        k.pack4(B4(s), Fp * 4, ne4, Fp, B4(pk));
        k.gemm4(B4(pk), 16 * Fp, 16, B4(w.w2[e]), C * 4, B4(ye + s0 * C), C * 4, ne4, Fp, C, 0); // ye = W2_e s
        at += ne4;
      }
      fk.combine(B4(x0), B4(ye), B4(gates), B4(sa), NK, K, C); // out = h + sum_k gate_k * ye_k
      out.push({ experts: experts.slice(0, NK), gates: gatesV.slice(0, NK), ...(wantProbs ? { probs: probs.slice(0, N * E) } : {}) });
    }
    if (keepX) x.set(mem.subarray(x0, x0 + N * C));
    return out;
  }
}
