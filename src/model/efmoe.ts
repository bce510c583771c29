/**
 * The efmoe model (SPEC §1): forward pass for routing capture, and forward + backward for training,
 * llm.c style over flat Float32Arrays (kernels in ./kernels). Pure TypeScript, no Node imports.
 *
 * A batch is a list of EncodedSequence of different lengths, run WITHOUT padding: all positions are
 * concatenated into N rows (sequence b owns rows rowStart[b] .. rowStart[b+1]-1, position t of it is row
 * rowStart[b] + t). Row-wise ops run over all N rows at once; attention runs per sequence; each expert
 * runs only on the rows routed to it (rows gathered per expert, results scattered back with their gate).
 *
 * API (stable; the capture, the benchmark and the trainer code against it):
 *
 *   forwardInference(model, seqs, opts?, ws?) -> InferenceResult
 *     model = { config, params } (a Checkpoint works); opts.probs: also return the router distribution;
 *     opts.logits: also return the LM logits [N, V]. Returns { N, rowStart: Int32Array[B+1], layers: per
 *     layer { experts: Int32Array[N*K] (descending gate), gates: Float32Array[N*K], probs?: Float32Array[N*E] },
 *     logits?: Float32Array[N*V] }. The returned arrays are fresh (the caller may keep them); activation
 *     buffers live in an InferenceWorkspace, reused across calls (pass one, or a per-model one is cached).
 *
 *   createTrainState(config, maxRows) -> TrainState     saved activations (grows if a batch has more rows)
 *   forwardTrain(model, seqs, state) -> TrainLoss        loss = ce + aux + z, where
 *       ce  = mean next-token cross-entropy over targets (position t predicts ids[t+1] when t+1 is a text
 *             token or the last position, the <eos>; image and other positions are not targets),
 *       aux = router_aux_loss_coef * sum_layers E * sum_e f_e * P_e   (f_e: share of the layer's N*K top-k
 *             assignments that go to e, a constant; P_e: mean router prob of e over the N rows),
 *       z   = router_z_loss_coef * sum_layers mean_rows(logsumexp(router logits)^2);
 *     also auxRaw / zRaw (the sums without their coefficients) and targets (the number of CE targets).
 *   backwardTrain(model, seqs, state, grads)             ACCUMULATES d loss / d params into grads
 *       (grads = createParams(config): same layout, grads.flat one Float32Array; zero it between steps).
 *       Must follow forwardTrain on the same seqs and state.
 *
 * Bad input: a sequence longer than max_position_embeddings or a token id outside the vocabulary is an
 * InputError. The router losses are in losses.ts. The independent reference is scripts/torch_efmoe.py
 * (fixtures: scripts/make-model-fixture.py -> test/fixtures/efmoe-*, checked by test/model/).
 */
import { InputError } from '../util/errors.js';
import { MODALITY_TEXT, type EncodedSequence } from '../data/sample.js';
import { type ModelConfig, dims } from './config.js';
import type { Params, LayerParams } from './params.js';
import { matmulForward, matmulBackward } from './kernels/matmul.js';
import { rmsnormForward, rmsnormBackward } from './kernels/rmsnorm.js';
import { ropeTable, ropeForward, ropeBackward, type RopeTable } from './kernels/rope.js';
import { attentionForward, attentionBackward } from './kernels/attention.js';
import { swigluForward, swigluBackward } from './kernels/swiglu.js';
import { softmaxForward, crossEntropyForward, crossEntropySoftmaxBackward } from './kernels/softmax.js';
import { routerForward, routerBackward } from './kernels/router.js';
import { loadBalanceForward, loadBalanceBackward, zLossForward, zLossBackward } from './losses.js';

export interface EfmoeModel {
  config: ModelConfig;
  params: Params;
}

export interface RoutingLayer {
  experts: Int32Array; // [N*K], by descending gate
  gates: Float32Array; // [N*K]
  probs?: Float32Array; // [N*E]
}

export interface InferenceResult {
  N: number;
  rowStart: Int32Array; // [B+1]
  layers: RoutingLayer[];
  logits?: Float32Array; // [N*V]
}

export interface TrainLoss {
  loss: number;
  ce: number;
  aux: number;
  z: number;
  auxRaw: number;
  zRaw: number;
  targets: number;
}

// ------------------------------------------------------------------------------------------------
// growable buffers: a workspace keeps the largest size it has seen, so steady batches never allocate

class Buffers {
  private f32 = new Map<string, Float32Array>();
  private i32 = new Map<string, Int32Array>();
  f(name: string, n: number): Float32Array {
    let b = this.f32.get(name);
    if (!b || b.length < n) {
      b = new Float32Array(Math.max(n, Math.ceil((b?.length ?? 0) * 1.25)));
      this.f32.set(name, b);
    }
    return b.length === n ? b : b.subarray(0, n);
  }
  i(name: string, n: number): Int32Array {
    let b = this.i32.get(name);
    if (!b || b.length < n) {
      b = new Int32Array(Math.max(n, Math.ceil((b?.length ?? 0) * 1.25)));
      this.i32.set(name, b);
    }
    return b.length === n ? b : b.subarray(0, n);
  }
}

// ------------------------------------------------------------------------------------------------
// batch layout: rows, positions, and where the image patches go

interface Layout {
  B: number;
  N: number;
  rowStart: Int32Array; // [B+1]
  pos: Int32Array; // [N] position of each row within its sequence
  maxT: number;
  attOffset: Int32Array; // [B+1] offset of each sequence's [H,T,T] attention probs
  patchRows: Int32Array; // [Np] row of each image patch, in order
  Np: number;
}

function layoutBatch(config: ModelConfig, seqs: EncodedSequence[], buf: Buffers): Layout {
  const { V, H, patchDim } = dims(config);
  const B = seqs.length;
  const rowStart = buf.i('rowStart', B + 1);
  const attOffset = buf.i('attOffset', B + 1);
  let N = 0, maxT = 0, Np = 0, att = 0;
  for (let b = 0; b < B; b++) {
    const s = seqs[b];
    if (s.T < 1 || s.ids.length !== s.T || s.imagePart.length !== s.T) throw new Error(`sequence ${b}: inconsistent lengths`);
    if (s.T > config.max_position_embeddings) {
      throw new InputError(`sequence ${b}: ${s.T} positions exceed max_position_embeddings ${config.max_position_embeddings}`);
    }
    rowStart[b] = N;
    attOffset[b] = att;
    N += s.T;
    att += H * s.T * s.T;
    if (s.T > maxT) maxT = s.T;
    let np = 0;
    for (let t = 0; t < s.T; t++) {
      const id = s.ids[t];
      if (id < 0) np++;
      else if (id >= V) throw new InputError(`sequence ${b}: token id ${id} at position ${t} is outside the vocabulary of ${V}`);
    }
    if (s.patches.length !== np * patchDim) throw new Error(`sequence ${b}: ${np} patch positions but ${s.patches.length / patchDim} patch vectors`);
    Np += np;
  }
  rowStart[B] = N;
  attOffset[B] = att;
  const pos = buf.i('pos', N);
  const patchRows = buf.i('patchRows', Np);
  let p = 0;
  for (let b = 0; b < B; b++) {
    const s = seqs[b];
    const r0 = rowStart[b];
    for (let t = 0; t < s.T; t++) {
      pos[r0 + t] = t;
      if (s.ids[t] < 0) patchRows[p++] = r0 + t;
    }
  }
  return { B, N, rowStart, pos, maxT, attOffset, patchRows, Np };
}

// ------------------------------------------------------------------------------------------------
// the activations of one layer; inference reuses one set for all layers, training keeps one per layer

interface LayerActs {
  ln1: Float32Array; rstd1: Float32Array; // [N,C], [N]
  qPre: Float32Array; kPre: Float32Array; // [N,C] q, k before QK-norm (= q, k when not saved)
  qRstd: Float32Array; kRstd: Float32Array; // [N*H]
  q: Float32Array; k: Float32Array; v: Float32Array; // [N,C] after QK-norm and RoPE
  att: Float32Array; // [sum_b H*T_b^2]
  attOut: Float32Array; // [N,C]
  oOut: Float32Array; // [N,C] o_proj output
  ln2: Float32Array; rstd2: Float32Array; // [N,C], [N]
  rlogits: Float32Array; probs: Float32Array; // [N,E]
  experts: Int32Array; gates: Float32Array; // [N*K]
  expertStart: Int32Array; // [E+1] assignments of expert e are sorted slots expertStart[e]..expertStart[e+1]-1
  slotAssign: Int32Array; // [N*K] sorted slot -> assignment index n*K+k
  xe: Float32Array; // [N*K,C] rows gathered per expert
  g: Float32Array; u: Float32Array; s: Float32Array; // [N*K,F]
  ye: Float32Array; // [N*K,C] expert outputs (before the gate)
}

function layerActs(buf: Buffers, tag: string, N: number, attSize: number, d: ReturnType<typeof dims>, separateQK: boolean): LayerActs {
  const { C, H, E, K, F } = d;
  const q = buf.f(tag + 'q', N * C), k = buf.f(tag + 'k', N * C);
  return {
    ln1: buf.f(tag + 'ln1', N * C), rstd1: buf.f(tag + 'rstd1', N),
    qPre: separateQK ? buf.f(tag + 'qPre', N * C) : q, kPre: separateQK ? buf.f(tag + 'kPre', N * C) : k,
    qRstd: buf.f(tag + 'qRstd', N * H), kRstd: buf.f(tag + 'kRstd', N * H),
    q, k, v: buf.f(tag + 'v', N * C),
    att: buf.f(tag + 'att', attSize),
    attOut: buf.f(tag + 'attOut', N * C), oOut: buf.f(tag + 'oOut', N * C),
    ln2: buf.f(tag + 'ln2', N * C), rstd2: buf.f(tag + 'rstd2', N),
    rlogits: buf.f(tag + 'rlogits', N * E), probs: buf.f(tag + 'probs', N * E),
    experts: buf.i(tag + 'experts', N * K), gates: buf.f(tag + 'gates', N * K),
    expertStart: buf.i(tag + 'expertStart', E + 1), slotAssign: buf.i(tag + 'slotAssign', N * K),
    xe: buf.f(tag + 'xe', N * K * C),
    g: buf.f(tag + 'g', N * K * F), u: buf.f(tag + 'u', N * K * F), s: buf.f(tag + 's', N * K * F),
    ye: buf.f(tag + 'ye', N * K * C),
  };
}

// ------------------------------------------------------------------------------------------------
// forward pieces

/** x[row] = embed_tokens[id] for text rows, patch_embed(patch) for image rows. */
function embedForward(x: Float32Array, p: Params, seqs: EncodedSequence[], lay: Layout, C: number, patchDim: number, buf: Buffers): void {
  for (let b = 0; b < lay.B; b++) {
    const s = seqs[b];
    const r0 = lay.rowStart[b];
    for (let t = 0; t < s.T; t++) {
      const id = s.ids[t];
      if (id >= 0) x.set(p.embedTokens.subarray(id * C, id * C + C), (r0 + t) * C); // x = embed_tokens[id]
    }
  }
  if (lay.Np === 0) return;
  const patches = buf.f('patches', lay.Np * patchDim);
  let o = 0;
  for (const s of seqs) {
    patches.set(s.patches, o);
    o += s.patches.length;
  }
  const pe = buf.f('patchOut', lay.Np * C);
  matmulForward(pe, patches, p.patchW, p.patchB, lay.Np, patchDim, C); // pe = patch_embed.weight @ patch + bias
  for (let i = 0; i < lay.Np; i++) x.set(pe.subarray(i * C, i * C + C), lay.patchRows[i] * C);
}

/**
 * One block: h = xin + Attn(RMSNorm(xin)); xout = h + MoE(RMSNorm(h)). h and xout may alias xin
 * (inference runs in place). Fills `a` with what the backward pass needs.
 */
function layerForward(
  xin: Float32Array, h: Float32Array, xout: Float32Array, lp: LayerParams, a: LayerActs,
  seqs: EncodedSequence[], lay: Layout, rope: RopeTable, config: ModelConfig, d: ReturnType<typeof dims>,
  keepAtt: boolean, // training keeps every sequence's attention probs; inference reuses one [H,maxT,maxT] buffer
): void {
  const { C, H, hd, E, K, F } = d;
  const { N } = lay;
  const eps = config.rms_norm_eps;
  // attention
  rmsnormForward(a.ln1, a.rstd1, xin, lp.inputNorm, N, C, eps); // ln1 = RMSNorm(x)
  matmulForward(a.qPre, a.ln1, lp.wq, null, N, C, C); // q = Wq ln1
  matmulForward(a.kPre, a.ln1, lp.wk, null, N, C, C); // k = Wk ln1
  matmulForward(a.v, a.ln1, lp.wv, null, N, C, C); // v = Wv ln1
  if (config.qk_norm) {
    rmsnormForward(a.q, a.qRstd, a.qPre, lp.qNorm, N * H, hd, eps); // q = RMSNorm_head(q)
    rmsnormForward(a.k, a.kRstd, a.kPre, lp.kNorm, N * H, hd, eps); // k = RMSNorm_head(k)
  } else if (a.q !== a.qPre) {
    a.q.set(a.qPre);
    a.k.set(a.kPre);
  }
  ropeForward(a.q, a.q, lay.pos, rope, N, H, hd); // q = rope(q)
  ropeForward(a.k, a.k, lay.pos, rope, N, H, hd); // k = rope(k)
  for (let b = 0; b < lay.B; b++) {
    const r0 = lay.rowStart[b] * C, r1 = lay.rowStart[b + 1] * C, T = seqs[b].T;
    attentionForward(
      a.attOut.subarray(r0, r1), keepAtt ? a.att.subarray(lay.attOffset[b], lay.attOffset[b + 1]) : a.att,
      a.q.subarray(r0, r1), a.k.subarray(r0, r1), a.v.subarray(r0, r1), seqs[b].imagePart, T, H, hd,
    ); // attOut = softmax(mask(q k^T / sqrt(hd))) v, per sequence
  }
  matmulForward(a.oOut, a.attOut, lp.wo, null, N, C, C); // oOut = Wo attOut
  const oOut = a.oOut;
  for (let i = 0; i < N * C; i++) h[i] = xin[i] + oOut[i]; // h = x + oOut
  // MoE
  rmsnormForward(a.ln2, a.rstd2, h, lp.postNorm, N, C, eps); // ln2 = RMSNorm(h)
  matmulForward(a.rlogits, a.ln2, lp.router, null, N, C, E); // rlogits = Wr ln2
  routerForward(a.experts, a.gates, a.probs, a.rlogits, N, E, K, config.norm_topk_prob); // probs, top-k experts, gates
  // dispatch: counting sort of the N*K assignments by expert, rows gathered contiguously per expert
  const start = a.expertStart;
  start.fill(0);
  const NK = N * K;
  for (let j = 0; j < NK; j++) start[a.experts[j] + 1]++;
  for (let e = 0; e < E; e++) start[e + 1] += start[e];
  const fill = new Int32Array(E); // E ints per layer: negligible next to the matmuls
  const xeAll = a.xe, ln2 = a.ln2;
  for (let j = 0; j < NK; j++) {
    const e = a.experts[j];
    const slot = start[e] + fill[e]++;
    a.slotAssign[slot] = j;
    const src = ((j / K) | 0) * C, dst = slot * C;
    for (let i = 0; i < C; i++) xeAll[dst + i] = ln2[src + i]; // xe[slot] = ln2[row]
  }
  for (let e = 0; e < E; e++) {
    const s0 = start[e], ne = start[e + 1] - s0;
    if (ne === 0) continue;
    const xe = a.xe.subarray(s0 * C, (s0 + ne) * C);
    const g = a.g.subarray(s0 * F, (s0 + ne) * F), u = a.u.subarray(s0 * F, (s0 + ne) * F), sw = a.s.subarray(s0 * F, (s0 + ne) * F);
    matmulForward(g, xe, lp.w1[e], null, ne, C, F); // g = W1_e xe
    matmulForward(u, xe, lp.w3[e], null, ne, C, F); // u = W3_e xe
    swigluForward(sw, g, u, ne, F); // s = silu(g) * u
    matmulForward(a.ye.subarray(s0 * C, (s0 + ne) * C), sw, lp.w2[e], null, ne, F, C); // ye = W2_e s
  }
  const ye = a.ye;
  if (xout !== h) xout.set(h.subarray(0, N * C));
  for (let slot = 0; slot < NK; slot++) {
    const j = a.slotAssign[slot];
    const gate = a.gates[j];
    const xo = ((j / K) | 0) * C, yo = slot * C;
    for (let i = 0; i < C; i++) xout[xo + i] += gate * ye[yo + i]; // out = h + sum_k gate_k * ye_k
  }
}

function ropeFor(config: ModelConfig, cache: { rope?: RopeTable; ropeKey?: string }): RopeTable {
  const { hd } = dims(config);
  const key = `${config.max_position_embeddings}/${hd}/${config.rope_theta}`;
  if (!cache.rope || cache.ropeKey !== key) {
    cache.rope = ropeTable(config.max_position_embeddings, hd, config.rope_theta);
    cache.ropeKey = key;
  }
  return cache.rope;
}

// ------------------------------------------------------------------------------------------------
// inference

/** Buffers for forwardInference, reused across calls (capture's hot path). One per model config. */
export class InferenceWorkspace {
  readonly buf = new Buffers();
  rope?: RopeTable; // built from config on first use
  ropeKey?: string;
  constructor(readonly config: ModelConfig) {}
}

const workspaces = new WeakMap<object, InferenceWorkspace>();

export function forwardInference(
  model: EfmoeModel,
  seqs: EncodedSequence[],
  opts: { probs?: boolean; logits?: boolean } = {},
  ws?: InferenceWorkspace,
): InferenceResult {
  const { config, params } = model;
  if (!ws) {
    ws = workspaces.get(params);
    if (!ws || ws.config !== config) workspaces.set(params, (ws = new InferenceWorkspace(config)));
  }
  if (seqs.length === 0) return { N: 0, rowStart: new Int32Array(1), layers: [], ...(opts.logits ? { logits: new Float32Array(0) } : {}) };
  const d = dims(config);
  const { L, C, V, K, patchDim } = d;
  const buf = ws.buf;
  const lay = layoutBatch(config, seqs, buf);
  const { N } = lay;
  const rope = ropeFor(config, ws);
  const x = buf.f('x', N * C);
  embedForward(x, params, seqs, lay, C, patchDim, buf);
  const a = layerActs(buf, '', N, d.H * lay.maxT * lay.maxT, d, false);
  const layers: RoutingLayer[] = [];
  for (let l = 0; l < L; l++) {
    layerForward(x, x, x, params.layers[l], a, seqs, lay, rope, config, d, false);
    layers.push({
      experts: a.experts.slice(0, N * K),
      gates: a.gates.slice(0, N * K),
      ...(opts.probs ? { probs: a.probs.slice(0, N * d.E) } : {}),
    });
  }
  const result: InferenceResult = { N, rowStart: lay.rowStart.slice(0, lay.B + 1), layers };
  if (opts.logits) {
    const xf = buf.f('lnf', N * C);
    rmsnormForward(xf, buf.f('rstdf', N), x, params.norm, N, C, config.rms_norm_eps); // xf = RMSNorm(x; norm)
    const logits = new Float32Array(N * V);
    matmulForward(logits, xf, params.lmHead, null, N, C, V); // logits = lm_head xf
    result.logits = logits;
  }
  return result;
}

// ------------------------------------------------------------------------------------------------
// training

/** Saved activations of forwardTrain and scratch for backwardTrain; buffers grow with the batch. */
export class TrainState {
  readonly buf = new Buffers();
  rope?: RopeTable;
  ropeKey?: string;
  // set by forwardTrain, read by backwardTrain
  lay?: Layout;
  acts: LayerActs[] = [];
  resid: Float32Array[] = []; // L+1 residual streams [N,C]: resid[0] embeddings, resid[l+1] layer l output
  hs: Float32Array[] = []; // L mid-block residuals [N,C]
  lse: Float32Array[] = []; // L router logsumexp per row [N]
  auxF: Float64Array[] = []; // L f_e of the aux loss [E]
  targets?: Int32Array; // [Nt] target ids of the target rows
  targetRows?: Int32Array; // [Nt] row of each target
  lnf?: Float32Array; rstdf?: Float32Array;
  lnfT?: Float32Array; probsT?: Float32Array; // [Nt,C], [Nt,V]
  constructor(readonly config: ModelConfig, readonly maxRows: number) {}
}

export function createTrainState(config: ModelConfig, maxRows: number): TrainState {
  return new TrainState(config, maxRows);
}

/** The next-token targets (SPEC §1 Training): rows whose next position is a text token or the final <eos>. */
function collectTargets(seqs: EncodedSequence[], lay: Layout, buf: Buffers): { rows: Int32Array; ids: Int32Array } {
  let nt = 0;
  const isTarget = (s: EncodedSequence, t: number) => t + 1 < s.T && s.ids[t + 1] >= 0 && (s.modality[t + 1] === MODALITY_TEXT || t + 1 === s.T - 1);
  for (const s of seqs) for (let t = 0; t < s.T; t++) if (isTarget(s, t)) nt++;
  const rows = buf.i('targetRows', nt), ids = buf.i('targetIds', nt);
  let i = 0;
  for (let b = 0; b < lay.B; b++) {
    const s = seqs[b];
    for (let t = 0; t < s.T; t++) {
      if (!isTarget(s, t)) continue;
      rows[i] = lay.rowStart[b] + t;
      ids[i++] = s.ids[t + 1];
    }
  }
  return { rows, ids };
}

export function forwardTrain(model: EfmoeModel, seqs: EncodedSequence[], state: TrainState): TrainLoss {
  const { config, params } = model;
  const d = dims(config);
  const { L, C, E, K, V, patchDim } = d;
  const buf = state.buf;
  const lay = layoutBatch(config, seqs, buf);
  const { N } = lay;
  state.lay = lay;
  const rope = ropeFor(config, state);
  state.resid = [];
  state.hs = [];
  state.acts = [];
  state.lse = [];
  state.auxF = [];
  for (let l = 0; l <= L; l++) state.resid.push(buf.f(`resid${l}`, N * C));
  embedForward(state.resid[0], params, seqs, lay, C, patchDim, buf);
  let auxRaw = 0, zRaw = 0;
  for (let l = 0; l < L; l++) {
    const a = layerActs(buf, `L${l}.`, N, lay.attOffset[lay.B], d, true);
    const h = buf.f(`h${l}`, N * C);
    layerForward(state.resid[l], h, state.resid[l + 1], params.layers[l], a, seqs, lay, rope, config, d, true);
    state.acts.push(a);
    state.hs.push(h);
    const f = new Float64Array(E);
    auxRaw += loadBalanceForward(f, a.probs, a.experts, N, E, K); // E * sum_e f_e * P_e
    state.auxF.push(f);
    const lse = buf.f(`lse${l}`, N);
    zRaw += zLossForward(lse, a.rlogits, N, E); // mean_n logsumexp(rlogits)^2
    state.lse.push(lse);
  }
  // LM head on the target rows only
  const { rows, ids } = collectTargets(seqs, lay, buf);
  const Nt = rows.length;
  state.targets = ids;
  state.targetRows = rows;
  const lnf = (state.lnf = buf.f('lnf', N * C));
  const rstdf = (state.rstdf = buf.f('rstdf', N));
  rmsnormForward(lnf, rstdf, state.resid[L], params.norm, N, C, config.rms_norm_eps); // lnf = RMSNorm(x; norm)
  const lnfT = (state.lnfT = buf.f('lnfT', Nt * C));
  for (let i = 0; i < Nt; i++) lnfT.set(lnf.subarray(rows[i] * C, rows[i] * C + C), i * C); // lnfT = lnf[target rows]
  const logits = buf.f('logitsT', Nt * V);
  matmulForward(logits, lnfT, params.lmHead, null, Nt, C, V); // logits = lm_head lnfT
  const probsT = (state.probsT = buf.f('probsT', Nt * V));
  softmaxForward(probsT, logits, Nt, V); // probs = softmax(logits)
  const losses = buf.f('losses', Nt);
  crossEntropyForward(losses, probsT, ids, Nt, V); // losses = -log probs[target]
  let ce = 0;
  for (let i = 0; i < Nt; i++) ce += losses[i];
  ce = Nt > 0 ? ce / Nt : 0; // ce = mean(losses)
  const aux = config.router_aux_loss_coef * auxRaw;
  const z = config.router_z_loss_coef * zRaw;
  return { loss: ce + aux + z, ce, aux, z, auxRaw, zRaw, targets: Nt };
}

export function backwardTrain(model: EfmoeModel, seqs: EncodedSequence[], state: TrainState, grads: Params): void {
  const { config, params } = model;
  const lay = state.lay;
  if (!lay || state.acts.length !== config.num_hidden_layers) throw new Error('backwardTrain: call forwardTrain first');
  const d = dims(config);
  const { L, C, H, hd, E, K, F, V, patchDim } = d;
  const { N } = lay;
  const buf = state.buf;
  const rope = state.rope!;
  const NK = N * K;
  // --- loss head: undoes ce = mean(-log softmax(lm_head RMSNorm(x))[target])
  const Nt = state.targets!.length;
  const rows = state.targetRows!;
  const dresid = buf.f('dresid', N * C);
  dresid.fill(0);
  if (Nt > 0) {
    const dlosses = buf.f('dlosses', Nt);
    dlosses.fill(1 / Nt); // undoes ce = mean(losses)
    const dlogits = buf.f('dlogitsT', Nt * V);
    dlogits.fill(0);
    crossEntropySoftmaxBackward(dlogits, dlosses, state.probsT!, state.targets!, Nt, V); // undoes losses = -log softmax(logits)[t]
    const dlnfT = buf.f('dlnfT', Nt * C);
    dlnfT.fill(0);
    matmulBackward(dlnfT, grads.lmHead, null, dlogits, state.lnfT!, params.lmHead, Nt, C, V); // undoes logits = lm_head lnfT
    const dlnf = buf.f('dlnf', N * C);
    dlnf.fill(0);
    for (let i = 0; i < Nt; i++) {
      const r = rows[i] * C, o = i * C;
      for (let c = 0; c < C; c++) dlnf[r + c] += dlnfT[o + c]; // undoes lnfT = lnf[target rows]
    }
    rmsnormBackward(dresid, grads.norm, dlnf, state.resid[L], params.norm, state.rstdf!, N, C); // undoes lnf = RMSNorm(x; norm)
  }
  // --- layers, last to first; dresid holds d loss / d (layer output)
  const dh = buf.f('dh', N * C);
  const dln = buf.f('dln', N * C);
  const dye = buf.f('dye', NK * C);
  const ds = buf.f('ds', NK * F), dg = buf.f('dg', NK * F), du = buf.f('du', NK * F);
  const dxe = buf.f('dxe', NK * C);
  const dgates = buf.f('dgates', NK);
  const drl = buf.f('drlogits', N * E);
  const dprobs = buf.f('dprobs', N * E);
  const dq = buf.f('dq', N * C), dk = buf.f('dk', N * C), dv = buf.f('dv', N * C);
  const dqPre = buf.f('dqPre', N * C), dkPre = buf.f('dkPre', N * C);
  const dattOut = buf.f('dattOut', N * C);
  for (let l = L - 1; l >= 0; l--) {
    const a = state.acts[l], lp = params.layers[l], gp = grads.layers[l];
    const h = state.hs[l], xin = state.resid[l];
    // MoE: undoes out = h + sum_k gate_k * ye_k
    dh.set(dresid); // (w.r.t. h)
    const ye = a.ye;
    for (let slot = 0; slot < NK; slot++) {
      const j = a.slotAssign[slot];
      const xo = ((j / K) | 0) * C, yo = slot * C;
      const gate = a.gates[j];
      let dot = 0;
      for (let i = 0; i < C; i++) {
        dot += dresid[xo + i] * ye[yo + i];
        dye[yo + i] = gate * dresid[xo + i]; // (w.r.t. ye)
      }
      dgates[j] = dot; // (w.r.t. gate)
    }
    ds.fill(0);
    dg.fill(0);
    du.fill(0);
    dxe.fill(0);
    for (let e = 0; e < E; e++) {
      const s0 = a.expertStart[e], ne = a.expertStart[e + 1] - s0;
      if (ne === 0) continue;
      const fC = [s0 * C, (s0 + ne) * C] as const, fF = [s0 * F, (s0 + ne) * F] as const;
      matmulBackward(ds.subarray(...fF), gp.w2[e], null, dye.subarray(...fC), a.s.subarray(...fF), lp.w2[e], ne, F, C); // undoes ye = W2_e s
      swigluBackward(dg.subarray(...fF), du.subarray(...fF), ds.subarray(...fF), a.g.subarray(...fF), a.u.subarray(...fF), ne, F); // undoes s = silu(g) * u
      matmulBackward(dxe.subarray(...fC), gp.w3[e], null, du.subarray(...fF), a.xe.subarray(...fC), lp.w3[e], ne, C, F); // undoes u = W3_e xe
      matmulBackward(dxe.subarray(...fC), gp.w1[e], null, dg.subarray(...fF), a.xe.subarray(...fC), lp.w1[e], ne, C, F); // undoes g = W1_e xe
    }
    dln.fill(0);
    for (let slot = 0; slot < NK; slot++) {
      const xo = ((a.slotAssign[slot] / K) | 0) * C, yo = slot * C;
      for (let i = 0; i < C; i++) dln[xo + i] += dxe[yo + i]; // undoes xe[slot] = ln2[row]
    }
    drl.fill(0);
    routerBackward(drl, dgates, a.probs, a.experts, N, E, K, config.norm_topk_prob); // undoes gates = topk(softmax(rlogits))
    loadBalanceBackward(drl, dprobs, config.router_aux_loss_coef, state.auxF[l], a.probs, N, E); // undoes aux
    zLossBackward(drl, config.router_z_loss_coef, state.lse[l], a.probs, N, E); // undoes z
    matmulBackward(dln, gp.router, null, drl, a.ln2, lp.router, N, C, E); // undoes rlogits = Wr ln2
    rmsnormBackward(dh, gp.postNorm, dln, h, lp.postNorm, a.rstd2, N, C); // undoes ln2 = RMSNorm(h)
    // attention: undoes h = x + oOut
    dresid.set(dh); // (w.r.t. x)
    dattOut.fill(0);
    matmulBackward(dattOut, gp.wo, null, dh, a.attOut, lp.wo, N, C, C); // undoes oOut = Wo attOut
    dq.fill(0);
    dk.fill(0);
    dv.fill(0);
    for (let b = 0; b < lay.B; b++) {
      const r0 = lay.rowStart[b] * C, r1 = lay.rowStart[b + 1] * C, T = seqs[b].T;
      attentionBackward(
        dq.subarray(r0, r1), dk.subarray(r0, r1), dv.subarray(r0, r1), dattOut.subarray(r0, r1),
        a.q.subarray(r0, r1), a.k.subarray(r0, r1), a.v.subarray(r0, r1),
        a.att.subarray(lay.attOffset[b], lay.attOffset[b + 1]), seqs[b].imagePart, T, H, hd,
      ); // undoes attOut = attention(q, k, v), per sequence
    }
    ropeBackward(dq, dq, lay.pos, rope, N, H, hd); // undoes q = rope(q)
    ropeBackward(dk, dk, lay.pos, rope, N, H, hd); // undoes k = rope(k)
    let dqIn = dq, dkIn = dk;
    if (config.qk_norm) {
      dqPre.fill(0);
      dkPre.fill(0);
      rmsnormBackward(dqPre, gp.qNorm, dq, a.qPre, lp.qNorm, a.qRstd, N * H, hd); // undoes q = RMSNorm_head(q)
      rmsnormBackward(dkPre, gp.kNorm, dk, a.kPre, lp.kNorm, a.kRstd, N * H, hd); // undoes k = RMSNorm_head(k)
      dqIn = dqPre;
      dkIn = dkPre;
    }
    dln.fill(0);
    matmulBackward(dln, gp.wq, null, dqIn, a.ln1, lp.wq, N, C, C); // undoes q = Wq ln1
    matmulBackward(dln, gp.wk, null, dkIn, a.ln1, lp.wk, N, C, C); // undoes k = Wk ln1
    matmulBackward(dln, gp.wv, null, dv, a.ln1, lp.wv, N, C, C); // undoes v = Wv ln1
    rmsnormBackward(dresid, gp.inputNorm, dln, xin, lp.inputNorm, a.rstd1, N, C); // undoes ln1 = RMSNorm(x)
  }
  // --- embeddings
  for (let b = 0; b < lay.B; b++) {
    const s = seqs[b];
    const r0 = lay.rowStart[b];
    for (let t = 0; t < s.T; t++) {
      const id = s.ids[t];
      if (id < 0) continue;
      const ro = (r0 + t) * C, eo = id * C;
      for (let c = 0; c < C; c++) grads.embedTokens[eo + c] += dresid[ro + c]; // undoes x = embed_tokens[id]
    }
  }
  if (lay.Np > 0) {
    const dpe = buf.f('dpatchOut', lay.Np * C);
    for (let i = 0; i < lay.Np; i++) dpe.set(dresid.subarray(lay.patchRows[i] * C, lay.patchRows[i] * C + C), i * C);
    matmulBackward(null, grads.patchW, grads.patchB, dpe, buf.f('patches', lay.Np * patchDim), params.patchW, lay.Np, patchDim, C); // undoes pe = patch_embed(patch)
  }
}
