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
import { MODALITY_TEXT, type EncodedSequence } from './sequence.js';
import { type ModelConfig, dims } from './config.js';
import type { Params, LayerParams } from './params.js';
import { matmulForward, matmulForwardShared, matmulBackward } from './kernels/matmul.js';
import { rmsnormForward, rmsnormBackward } from './kernels/rmsnorm.js';
import { ropeTable, ropeForward, ropeBackward, type RopeTable } from './kernels/rope.js';
import { attentionForward, attentionBackward } from './kernels/attention.js';
import { routerForward, routerBackward } from './kernels/router.js';
import { moeDispatch, moeGatherForward, moeGatherBackward, expertsForward, expertsBackward, moeCombineForward, moeCombineBackward } from './moe.js';
import { embedForward, embedBackward } from './embedding.js';
import { type LmHeadActs, lmHeadForward, lmHeadBackward } from './lm-head.js';
import { routerStatsSums } from './router-stats.js';
import { loadBalanceForward, loadBalanceBackward, zLossForward, zLossBackward } from './losses.js';
import { ResidentForward } from './resident.js';
import { WasmOutOfMemory } from './kernels/wasm.js';

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
  gateSum: number[]; // per layer: sum over rows of the top-1 gate (router-stats.ts)
  entropySum: number[]; // per layer: sum over rows of the router entropy in bits
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
  rowIds: Int32Array; // [N] token id of each row, -1 for an image patch
  patches: Float32Array; // [Np, patchDim] the patch vectors, in row order
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
  const rowIds = buf.i('rowIds', N);
  const patchRows = buf.i('patchRows', Np);
  const patches = buf.f('patches', Np * patchDim);
  let p = 0, o = 0;
  for (let b = 0; b < B; b++) {
    const s = seqs[b];
    const r0 = rowStart[b];
    rowIds.set(s.ids, r0);
    patches.set(s.patches, o);
    o += s.patches.length;
    for (let t = 0; t < s.T; t++) {
      pos[r0 + t] = t;
      if (s.ids[t] < 0) patchRows[p++] = r0 + t;
    }
  }
  return { B, N, rowStart, pos, maxT, attOffset, patchRows, Np, rowIds, patches };
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
  fill: Int32Array; // [E] scratch of the dispatch
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
    expertStart: buf.i(tag + 'expertStart', E + 1), slotAssign: buf.i(tag + 'slotAssign', N * K), fill: buf.i(tag + 'fill', E),
    xe: buf.f(tag + 'xe', N * K * C),
    g: buf.f(tag + 'g', N * K * F), u: buf.f(tag + 'u', N * K * F), s: buf.f(tag + 's', N * K * F),
    ye: buf.f(tag + 'ye', N * K * C),
  };
}

// ------------------------------------------------------------------------------------------------
// forward pieces

/**
 * One block: h = xin + Attn(RMSNorm(xin)); xout = h + MoE(RMSNorm(h)). h and xout may alias xin
 * (inference runs in place). Fills `a` with what the backward pass needs.
 */
function layerForward(
  xin: Float32Array, h: Float32Array, xout: Float32Array, lp: LayerParams, a: LayerActs,
  seqs: EncodedSequence[], lay: Layout, rope: RopeTable, config: ModelConfig, d: ReturnType<typeof dims>,
  keepAtt: boolean, // training keeps every sequence's attention probs; inference keeps none
): void {
  const { C, H, hd, E, K, F } = d;
  const { N } = lay;
  const eps = config.rms_norm_eps;
  // attention
  rmsnormForward(a.ln1, a.rstd1, xin, lp.inputNorm, N, C, eps); // ln1 = RMSNorm(x)
  matmulForwardShared([a.qPre, a.kPre, a.v], a.ln1, [lp.wq, lp.wk, lp.wv], N, C, C); // q, k, v = Wq ln1, Wk ln1, Wv ln1
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
      a.attOut.subarray(r0, r1), keepAtt ? a.att.subarray(lay.attOffset[b], lay.attOffset[b + 1]) : null,
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
  const NK = N * K;
  moeDispatch(a.expertStart, a.slotAssign, a.fill, a.experts, NK, E); // slots of each expert's assignments
  moeGatherForward(a.xe, a.ln2, a.slotAssign, NK, K, C); // xe[slot] = ln2[row]
  expertsForward(a.ye, a.g, a.u, a.s, a.xe, lp, a.expertStart, E, C, F); // ye = W2_e(silu(W1_e xe) * W3_e xe)
  moeCombineForward(xout, h, a.ye, a.gates, a.slotAssign, N, NK, K, C); // out = h + sum_k gate_k * ye_k
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

export interface InferenceOptions {
  /**
   * The caller does not change the weights (params.flat) while it uses this workspace (capture): they are
   * copied into WASM memory once, not on every call.
   */
  fixedWeights?: boolean;
  /** false: run layerForward (the training pass's steps) instead of the resident WASM pass; tests compare them. */
  resident?: boolean;
}

/** Buffers for forwardInference, reused across calls (capture's hot path). One per model config. */
export class InferenceWorkspace {
  readonly buf = new Buffers();
  rope?: RopeTable; // built from config on first use
  ropeKey?: string;
  /** The resident WASM pass (resident.ts): undefined until first use, null where it cannot run. */
  private residentPass?: ResidentForward | null;
  constructor(readonly config: ModelConfig, readonly options: InferenceOptions = {}) {}

  resident(): ResidentForward | null {
    if (this.residentPass === undefined) this.residentPass = this.options.resident === false ? null : ResidentForward.create(this.config);
    return this.residentPass;
  }

  /** The batch does not fit in WASM memory: layerForward from now on. */
  dropResident(): void {
    this.residentPass = null;
  }
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
  embedForward(x, buf.f('patchOut', lay.Np * C), params, lay.rowIds, lay.patches, lay.patchRows, N, lay.Np, C, patchDim); // x = embed(ids, patches)
  let layers: RoutingLayer[] | null = null;
  const rf = ws.resident();
  if (rf !== null) {
    try {
      if (!(ws.options.fixedWeights && rf.holdsWeightsOf(params))) rf.upload(params, rope);
      const b = { N, B: lay.B, rowStart: lay.rowStart, pos: lay.pos, T: seqs.map((s) => s.T), imagePart: seqs.map((s) => s.imagePart) };
      const scratch = { logits: buf.f('rlogits', N * d.E) };
      layers = rf.run(x, b, opts.logits === true, opts.probs === true, scratch); // x = block_l(x) for every layer, in WASM memory
    } catch (e) {
      if (!(e instanceof WasmOutOfMemory)) throw e;
      ws.dropResident();
    }
  }
  if (layers === null) {
    const a = layerActs(buf, '', N, 0, d, false);
    layers = [];
    for (let l = 0; l < L; l++) {
      layerForward(x, x, x, params.layers[l], a, seqs, lay, rope, config, d, false);
      layers.push({
        experts: a.experts.slice(0, N * K),
        gates: a.gates.slice(0, N * K),
        ...(opts.probs ? { probs: a.probs.slice(0, N * d.E) } : {}),
      });
    }
  }
  const result: InferenceResult = { N, rowStart: lay.rowStart.slice(0, lay.B + 1), layers };
  if (opts.logits) {
    const xf = buf.f('lnf', N * C);
    rmsnormForward(xf, buf.f('rstdf', N), x, params.norm, N, C, config.rms_norm_eps); // xf = RMSNorm(x; norm) (all rows, unlike lmHeadForward)
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
  head?: LmHeadActs;
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
  embedForward(state.resid[0], buf.f('patchOut', lay.Np * C), params, lay.rowIds, lay.patches, lay.patchRows, N, lay.Np, C, patchDim); // x = embed(ids, patches)
  let auxRaw = 0, zRaw = 0;
  const gateSum: number[] = [], entropySum: number[] = [];
  for (let l = 0; l < L; l++) {
    const a = layerActs(buf, `L${l}.`, N, lay.attOffset[lay.B], d, true);
    const h = buf.f(`h${l}`, N * C);
    layerForward(state.resid[l], h, state.resid[l + 1], params.layers[l], a, seqs, lay, rope, config, d, true); // x = block_l(x)
    state.acts.push(a);
    state.hs.push(h);
    const f = new Float64Array(E);
    auxRaw += loadBalanceForward(f, a.probs, a.experts, N, E, K); // aux_l = E * sum_e f_e * P_e
    state.auxF.push(f);
    const lse = buf.f(`lse${l}`, N);
    zRaw += zLossForward(lse, a.rlogits, N, E); // z_l = mean_n logsumexp(rlogits)^2
    state.lse.push(lse);
    const rs = routerStatsSums(a.probs, a.gates, N, E, K); // how decided the router is (not part of the loss)
    gateSum.push(rs.gate);
    entropySum.push(rs.entropy);
  }
  const { rows, ids } = collectTargets(seqs, lay, buf);
  const Nt = rows.length;
  state.targets = ids;
  state.targetRows = rows;
  const head: LmHeadActs = (state.head = {
    lnf: buf.f('lnf', N * C), rstdf: buf.f('rstdf', N), lnfT: buf.f('lnfT', Nt * C), probsT: buf.f('probsT', Nt * V),
    logitsT: buf.f('logitsT', Nt * V), losses: buf.f('losses', Nt),
  });
  const ce = lmHeadForward(head, state.resid[L], params, rows, ids, N, Nt, C, V, config.rms_norm_eps); // ce = mean CE(lm_head RMSNorm(x))
  const aux = config.router_aux_loss_coef * auxRaw;
  const z = config.router_z_loss_coef * zRaw;
  return { loss: ce + aux + z, ce, aux, z, auxRaw, zRaw, targets: Nt, gateSum, entropySum }; // loss = ce + aux + z
}

/** Scratch of layerBackward, shared by all layers. */
interface LayerGradScratch {
  dh: Float32Array; dln: Float32Array; // [N,C]
  dye: Float32Array; dxe: Float32Array; // [NK,C]
  ds: Float32Array; dg: Float32Array; du: Float32Array; // [NK,F]
  dgates: Float32Array; // [NK]
  drl: Float32Array; dprobs: Float32Array; // [N,E]
  dq: Float32Array; dk: Float32Array; dv: Float32Array; dqPre: Float32Array; dkPre: Float32Array; dattOut: Float32Array; // [N,C]
}

/**
 * Undoes layerForward: on entry dx holds d loss / d xout; on exit d loss / d xin (in place). Also takes
 * this layer's aux and z terms (their gradients enter at the router logits). Accumulates into gp.
 */
function layerBackward(
  dx: Float32Array, gp: LayerParams, sc: LayerGradScratch, xin: Float32Array, h: Float32Array, lp: LayerParams, a: LayerActs,
  auxF: Float64Array, lse: Float32Array, seqs: EncodedSequence[], lay: Layout, rope: RopeTable, config: ModelConfig, d: ReturnType<typeof dims>,
): void {
  const { C, H, hd, E, K, F } = d;
  const { N } = lay;
  const NK = N * K;
  // MoE, last line first
  moeCombineBackward(sc.dh, sc.dye, sc.dgates, dx, a.ye, a.gates, a.slotAssign, NK, K, C); // undoes out = h + sum_k gate_k * ye_k
  expertsBackward(sc.dxe, sc.ds, sc.dg, sc.du, gp, sc.dye, a.xe, a.g, a.u, a.s, lp, a.expertStart, E, C, F); // undoes ye = W2_e(silu(W1_e xe) * W3_e xe)
  sc.dln.fill(0);
  moeGatherBackward(sc.dln, sc.dxe, a.slotAssign, NK, K, C); // undoes xe[slot] = ln2[row]
  sc.drl.fill(0);
  routerBackward(sc.drl, sc.dgates, a.probs, a.experts, N, E, K, config.norm_topk_prob); // undoes probs, top-k experts, gates
  loadBalanceBackward(sc.drl, sc.dprobs, config.router_aux_loss_coef, auxF, a.probs, N, E); // undoes aux_l (forwardTrain)
  zLossBackward(sc.drl, config.router_z_loss_coef, lse, a.probs, N, E); // undoes z_l (forwardTrain)
  matmulBackward(sc.dln, gp.router, null, sc.drl, a.ln2, lp.router, N, C, E); // undoes rlogits = Wr ln2
  rmsnormBackward(sc.dh, gp.postNorm, sc.dln, h, lp.postNorm, a.rstd2, N, C); // undoes ln2 = RMSNorm(h)
  // attention
  dx.set(sc.dh); // undoes h = x + oOut (w.r.t. x)
  sc.dattOut.fill(0);
  matmulBackward(sc.dattOut, gp.wo, null, sc.dh, a.attOut, lp.wo, N, C, C); // undoes oOut = Wo attOut
  sc.dq.fill(0);
  sc.dk.fill(0);
  sc.dv.fill(0);
  for (let b = 0; b < lay.B; b++) {
    const r0 = lay.rowStart[b] * C, r1 = lay.rowStart[b + 1] * C, T = seqs[b].T;
    attentionBackward(
      sc.dq.subarray(r0, r1), sc.dk.subarray(r0, r1), sc.dv.subarray(r0, r1), sc.dattOut.subarray(r0, r1),
      a.q.subarray(r0, r1), a.k.subarray(r0, r1), a.v.subarray(r0, r1),
      a.att.subarray(lay.attOffset[b], lay.attOffset[b + 1]), seqs[b].imagePart, T, H, hd,
    ); // undoes attOut = softmax(mask(q k^T / sqrt(hd))) v, per sequence
  }
  ropeBackward(sc.dq, sc.dq, lay.pos, rope, N, H, hd); // undoes q = rope(q)
  ropeBackward(sc.dk, sc.dk, lay.pos, rope, N, H, hd); // undoes k = rope(k)
  let dqIn = sc.dq, dkIn = sc.dk;
  if (config.qk_norm) {
    sc.dqPre.fill(0);
    sc.dkPre.fill(0);
    rmsnormBackward(sc.dqPre, gp.qNorm, sc.dq, a.qPre, lp.qNorm, a.qRstd, N * H, hd); // undoes q = RMSNorm_head(q)
    rmsnormBackward(sc.dkPre, gp.kNorm, sc.dk, a.kPre, lp.kNorm, a.kRstd, N * H, hd); // undoes k = RMSNorm_head(k)
    dqIn = sc.dqPre;
    dkIn = sc.dkPre;
  }
  sc.dln.fill(0);
  matmulBackward(sc.dln, gp.wq, null, dqIn, a.ln1, lp.wq, N, C, C); // undoes q = Wq ln1
  matmulBackward(sc.dln, gp.wk, null, dkIn, a.ln1, lp.wk, N, C, C); // undoes k = Wk ln1
  matmulBackward(sc.dln, gp.wv, null, sc.dv, a.ln1, lp.wv, N, C, C); // undoes v = Wv ln1
  rmsnormBackward(dx, gp.inputNorm, sc.dln, xin, lp.inputNorm, a.rstd1, N, C); // undoes ln1 = RMSNorm(x)
}

export function backwardTrain(model: EfmoeModel, seqs: EncodedSequence[], state: TrainState, grads: Params): void {
  const { config, params } = model;
  const lay = state.lay;
  if (!lay || !state.head || state.acts.length !== config.num_hidden_layers) throw new Error('backwardTrain: call forwardTrain first');
  const d = dims(config);
  const { L, C, E, K, F, V, patchDim } = d;
  const { N } = lay;
  const buf = state.buf;
  const NK = N * K;
  const Nt = state.targets!.length;
  const dx = buf.f('dresid', N * C);
  lmHeadBackward(
    dx, grads, { dlosses: buf.f('dlosses', Nt), dlogitsT: buf.f('dlogitsT', Nt * V), dlnfT: buf.f('dlnfT', Nt * C), dlnf: buf.f('dlnf', N * C) },
    state.head, state.resid[L], params, state.targetRows!, state.targets!, N, Nt, C, V,
  ); // undoes ce = mean CE(lm_head RMSNorm(x))
  const sc: LayerGradScratch = {
    dh: buf.f('dh', N * C), dln: buf.f('dln', N * C), dye: buf.f('dye', NK * C), dxe: buf.f('dxe', NK * C),
    ds: buf.f('ds', NK * F), dg: buf.f('dg', NK * F), du: buf.f('du', NK * F), dgates: buf.f('dgates', NK),
    drl: buf.f('drlogits', N * E), dprobs: buf.f('dprobs', N * E),
    dq: buf.f('dq', N * C), dk: buf.f('dk', N * C), dv: buf.f('dv', N * C), dqPre: buf.f('dqPre', N * C), dkPre: buf.f('dkPre', N * C), dattOut: buf.f('dattOut', N * C),
  };
  for (let l = L - 1; l >= 0; l--) {
    layerBackward(dx, grads.layers[l], sc, state.resid[l], state.hs[l], params.layers[l], state.acts[l], state.auxF[l], state.lse[l], seqs, lay, state.rope!, config, d); // undoes x = block_l(x)
  }
  embedBackward(grads, buf.f('dpatchOut', lay.Np * C), dx, params, lay.rowIds, lay.patches, lay.patchRows, N, lay.Np, C, patchDim); // undoes x = embed(ids, patches)
}
