import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../../util/errors.js';
import { LIMITS, checkInt } from '../../util/limits.js';
import { routingFromConfig } from '../layers.js';
import type { ReaderContext } from '../options.js';
import type { ImportRecord } from '../records.js';
import { hfManifestMeta, hfSampleExtras, type HfBatchExtras } from '../hf-extras.js';
import { TensorFile, isFloatDtype, type TensorInfo } from '../tensor-file.js';

/**
 * Routing saved from a Hugging Face transformers model: by python/moescope_capture.py (a folder
 * with moescope_routing.json and one safetensors file or .npy folder per batch), or by hand from
 * `model(..., output_router_logits=True)`:
 *   save_file({"input_ids": ids, "attention_mask": mask,
 *              **{f"router_logits.{i}": t for i, t in enumerate(out.router_logits)}}, "batch0.safetensors")
 * Tensors per batch (B sequences of S tokens; router tensors [B*S, ...] as HF returns them, or [B, S, ...]):
 *   input_ids [B,S] | [S]; attention_mask [B,S] (0 = padding, dropped); mm_token_type_ids / image_mask [B,S];
 *   router_logits.{l} [B*S,E] (raw logits or already probabilities: detected, or --router-output);
 *   router_probs.{l} [B*S,E]; topk_ids.{l} + topk_weights.{l} [B*S,K] (the experts and weights the
 *   block used, as the helper records them); e_score_correction_bias.{l} [E] (biased routers).
 * `l` is the MoE ordinal (mapped by --moe-layers/--config) unless the manifest says the helper
 * wrote decoder layer indices (`"layer_index": "decoder"`).
 */
const MANIFEST = 'moescope_routing.json';
const ROUTER = /^(router_logits|router_probs|topk_ids|topk_weights|e_score_correction_bias)[._](\d+)$/;
type Kind = 'router_logits' | 'router_probs' | 'topk_ids' | 'topk_weights' | 'e_score_correction_bias';

interface Manifest {
  layer_index?: 'decoder' | 'moe';
  config?: Record<string, unknown>;
  batches?: ({ path: string; texts?: string[]; sources?: string[]; domains?: string[] } & HfBatchExtras)[];
  [k: string]: unknown;
}

/** One batch: named tensors from a safetensors file or a folder of .npy files. */
class Batch {
  readonly tensors = new Map<string, { tf: TensorFile; info: TensorInfo }>();
  private readonly files: TensorFile[] = [];
  constructor(readonly path: string) {
    if (statSync(path).isDirectory()) {
      const npys = readdirSync(path).filter((f) => f.endsWith('.npy')).sort();
      if (npys.length === 0) throw new InputError(`${path}: no .npy files in this batch folder`);
      for (const f of npys) {
        const tf = TensorFile.npy(join(path, f), f.slice(0, -4));
        this.files.push(tf);
        this.tensors.set(f.slice(0, -4), { tf, info: tf.get(f.slice(0, -4))! });
      }
    } else {
      const tf = TensorFile.safetensors(path);
      this.files.push(tf);
      for (const [name, info] of tf.tensors) this.tensors.set(name, { tf, info });
    }
  }
  get(name: string) {
    return this.tensors.get(name);
  }
  close() {
    for (const f of this.files) f.close();
  }
}

/** The manifest, checked: every number a count in range, lists of integers. */
function readManifest(path: string): Manifest {
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new InputError(`${path}: not valid JSON`);
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new InputError(`${path}: expected a JSON object`);
  const o = m as Record<string, unknown>;
  const int = (k: string, min: number, max: number) => (o[k] === undefined ? undefined : checkInt(`${path}: ${k}`, o[k], min, max));
  int('num_hidden_layers', 1, LIMITS.layers);
  int('num_experts', 1, LIMITS.experts);
  int('top_k', 1, LIMITS.topK);
  int('image_token_id', -(2 ** 31), 2 ** 31 - 1);
  for (const k of ['special_ids', 'image_special_ids']) {
    if (o[k] !== undefined && (!Array.isArray(o[k]) || !(o[k] as unknown[]).every((x) => Number.isSafeInteger(x)))) throw new InputError(`${path}: ${k} must be a list of integers`);
  }
  if (o.layer_index !== undefined && o.layer_index !== 'decoder' && o.layer_index !== 'moe') throw new InputError(`${path}: layer_index must be "decoder" or "moe"`);
  if (o.router_scoring !== undefined && o.router_scoring !== 'softmax' && o.router_scoring !== 'sigmoid') throw new InputError(`${path}: router_scoring ${JSON.stringify(o.router_scoring)} is not softmax or sigmoid`);
  if (o.norm_topk_prob !== undefined && typeof o.norm_topk_prob !== 'boolean') throw new InputError(`${path}: norm_topk_prob must be true or false`);
  if (o.config !== undefined && (typeof o.config !== 'object' || o.config === null || Array.isArray(o.config))) throw new InputError(`${path}: config must be an object`);
  if (o.batches !== undefined && !Array.isArray(o.batches)) throw new InputError(`${path}: batches must be a list`);
  return o as Manifest;
}

export async function* readHf(inputs: string[], ctx: ReaderContext): AsyncGenerator<ImportRecord> {
  const { opts } = ctx;
  const batches: HfBatchEntry[] = [];
  let manifest: Manifest | null = null;
  let mpath0 = '';
  for (const input of inputs) {
    let st;
    try {
      st = statSync(input);
    } catch {
      throw new InputError(`${input}: no such file or folder`);
    }
    if (!st.isDirectory()) {
      if (!st.isFile()) throw new InputError(`${input}: not a regular file`);
      batches.push({ path: input, manifest: null });
      continue;
    }
    const mpath = join(input, MANIFEST);
    let m: Manifest | null = null;
    if (existsSync(mpath)) {
      m = readManifest(mpath);
      if (manifest && JSON.stringify(manifest.config ?? null) !== JSON.stringify(m.config ?? null)) {
        throw new InputError(`${mpath}: captured from a different model than ${inputs[0]}`);
      }
      if (!manifest) mpath0 = mpath;
      manifest = manifest ?? m;
    }
    const listed = m?.batches;
    if (listed) {
      for (const b of listed) {
        if (!b || typeof b.path !== 'string' || b.path.includes('..')) throw new InputError(`${mpath}: batches entries need a "path" inside the folder`);
        const p = join(input, b.path);
        if (!existsSync(p)) throw new InputError(`${mpath}: batch ${b.path} is missing`);
        batches.push({ path: p, texts: b.texts, sources: b.sources, domains: b.domains, manifest: m, dir: input, extras: b });
      }
    } else {
      const before = batches.length;
      const entries = readdirSync(input).sort();
      if (entries.some((f) => f.endsWith('.npy'))) batches.push({ path: input, manifest: m });
      for (const f of entries) {
        const p = join(input, f);
        if (f.endsWith('.safetensors')) batches.push({ path: p, manifest: m });
        else if (statSync(p).isDirectory() && readdirSync(p).some((g) => g.endsWith('.npy'))) batches.push({ path: p, manifest: m });
      }
      if (batches.length === before) throw new InputError(`${input}: no ${MANIFEST}, .safetensors files or .npy folders`);
    }
  }

  // what the manifest says fills in what the flags and --config did not
  if (manifest) {
    const mc = manifest.config ? routingFromConfig(manifest.config, `${mpath0}: config`) : null;
    const rule = mc?.rule;
    if (rule) {
      if (typeof manifest.router_scoring === 'string') rule.scoring = manifest.router_scoring as 'softmax' | 'sigmoid';
      if (typeof manifest.norm_topk_prob === 'boolean') rule.normTopk = manifest.norm_topk_prob;
      ctx.rule = rule;
    } else if (manifest.router_scoring !== undefined || manifest.norm_topk_prob !== undefined) {
      ctx.rule = { family: String(manifest.model_type ?? 'unknown'), scoring: (manifest.router_scoring as 'softmax' | 'sigmoid') ?? 'softmax', normTopk: manifest.norm_topk_prob === true, biased: false, nGroup: 1, topkGroup: 1, groupScore: 'max', scalingFactor: 1 };
    }
    if (opts.topK === undefined && typeof manifest.top_k === 'number') opts.topK = manifest.top_k;
    if (opts.numExperts === undefined && typeof manifest.num_experts === 'number') opts.numExperts = manifest.num_experts;
    ctx.numLayers = (manifest.num_hidden_layers as number | undefined) ?? mc?.numLayers;
    if (!opts.moeLayers && !opts.model && mc?.moeLayers && mc.moeLayers.length !== mc.numLayers) opts.moeLayers = mc.moeLayers;
    const r = opts.rules;
    if (!r.specialIds && Array.isArray(manifest.special_ids)) r.specialIds = new Set(manifest.special_ids as number[]);
    if (r.imageTokenId === undefined && typeof manifest.image_token_id === 'number') r.imageTokenId = manifest.image_token_id;
    if (!r.imageSpecialIds && Array.isArray(manifest.image_special_ids)) r.imageSpecialIds = new Set(manifest.image_special_ids as number[]);
    if (manifest.config && !opts.model) ctx.meta.model = { path: '', config: manifest.config };
    // what the helper knows of the block it hooked (family, what it recorded, whether gates are the router's)
    Object.assign(ctx.meta, hfManifestMeta(manifest as Record<string, unknown>));
    if (typeof manifest.gates === 'string') ctx.meta.gates = manifest.gates;
  }

  let n = 0;
  for (const b of batches) {
    const batch = new Batch(b.path);
    try {
      yield* batchRecords(b, batch, ctx, () => n++);
    } finally {
      batch.close();
    }
  }
}

/** A batch file with what the manifest lists for it (python/moescope_capture.py). */
interface HfBatchEntry {
  path: string;
  texts?: string[];
  sources?: string[];
  domains?: string[];
  manifest: Manifest | null;
  dir?: string; // the capture folder, for the batch's images
  extras?: HfBatchExtras;
}

function* batchRecords(b: HfBatchEntry, batch: Batch, ctx: ReaderContext, nextKey: () => number): Generator<ImportRecord> {
  const layerIndex = b.manifest?.layer_index === 'decoder' ? 'decoder' : 'moe';
  const layers = new Map<number, Partial<Record<Kind, TensorInfo>>>();
  for (const [name, { info }] of batch.tensors) {
    const m = ROUTER.exec(name);
    if (!m) continue;
    const l = Number(m[2]);
    if (l > LIMITS.layers) throw new InputError(`${info.where}: layer ${l} is outside 0..${LIMITS.layers}`);
    const e = layers.get(l) ?? {};
    e[m[1] as Kind] = info;
    layers.set(l, e);
  }
  const idsT = batch.get('input_ids');
  const maskT = batch.get('attention_mask');
  const mmT = batch.get('mm_token_type_ids');
  const imT = batch.get('image_mask');
  // batch geometry from input_ids: [B, S] or [S]
  let B = 1;
  let Sids = -1;
  if (idsT) {
    const sh = idsT.info.shape;
    if (sh.length === 2) [B, Sids] = sh;
    else if (sh.length === 1) Sids = sh[0];
    else throw new InputError(`${idsT.info.where}: input_ids must be [batch, seq] or [seq], got [${sh.join(', ')}]`);
    if (isFloatDtype(idsT.info.dtype)) throw new InputError(`${idsT.info.where}: input_ids must be integers, got ${idsT.info.dtype}`);
  }
  const sorted = [...layers.keys()].sort((x, y) => x - y).filter((l) => {
    const t = layers.get(l)!;
    return t.router_logits || t.router_probs || t.topk_ids || t.topk_weights;
  });
  if (sorted.length === 0) throw new InputError(`${b.path}: no router tensors (router_logits.N, router_probs.N or topk_ids.N)`);
  // rows per sequence, the same for every router tensor
  let N = -1;
  let firstName = '';
  for (const l of sorted) {
    for (const [kind, info] of Object.entries(layers.get(l)!)) {
      if (kind === 'e_score_correction_bias') continue;
      const sh = info.shape;
      let n: number;
      if (sh.length === 2) n = sh[0];
      else if (sh.length === 3) {
        if (sh[0] !== B) throw new InputError(`${info.where}: shape [${sh.join(', ')}] but input_ids has batch ${B}`);
        n = sh[0] * sh[1];
      } else throw new InputError(`${info.where}: expected [tokens, experts] or [batch, seq, experts], got [${sh.join(', ')}]`);
      if (sh[sh.length - 1] < 1 || sh[sh.length - 1] > LIMITS.experts) throw new InputError(`${info.where}: last axis ${sh[sh.length - 1]} is outside 1..${LIMITS.experts}`);
      if (N < 0) {
        N = n;
        firstName = info.name;
      } else if (n !== N) throw new InputError(`${info.where}: layers disagree: ${n} routed tokens but ${firstName} has ${N}`);
    }
  }
  if (N % B !== 0) throw new InputError(`${b.path}: ${N} routed tokens do not split into ${B} sequences`);
  const S = N / B;
  const ids = idsT ? (idsT.tf.readAll(idsT.info) as Int32Array) : null;
  const mask = maskT ? (maskT.tf.readAll(maskT.info) as Int32Array) : null;
  if (mask && ids && mask.length !== ids.length) throw new InputError(`${maskT!.info.where}: ${mask.length} values but input_ids has ${ids.length}`);
  const mm = mmT ? (mmT.tf.readAll(mmT.info) as Int32Array) : null;
  const im = imT ? (imT.tf.readAll(imT.info) as Int32Array) : null;
  const Sx = Sids >= 0 ? Sids : S;
  for (const [t, name] of [[mm, 'mm_token_type_ids'], [im, 'image_mask']] as const) {
    if (t && t.length !== B * S) throw new InputError(`${b.path}: tensor ${name}: ${t.length} values but there are ${B}x${S} routed tokens`);
  }
  const biasOf = (l: number): Float32Array | null => {
    const info = layers.get(l)?.e_score_correction_bias;
    if (!info) return null;
    if (!isFloatDtype(info.dtype) || info.shape.length !== 1) throw new InputError(`${info.where}: e_score_correction_bias must be a 1-d float tensor`);
    return batch.get(info.name)!.tf.readAll(info) as Float32Array;
  };

  for (let s = 0; s < B; s++) {
    const where = `${b.path}${B > 1 ? ` [sequence ${s}]` : ''}`;
    // which routed rows are real tokens (padding dropped)
    let keep: Int32Array | null = null;
    let seqIds = ids ? ids.subarray(s * Sx, (s + 1) * Sx) : null;
    if (mask) {
      const m = mask.subarray(s * Sx, (s + 1) * Sx);
      if (Sx === S) {
        const k: number[] = [];
        for (let t = 0; t < S; t++) if (m[t]) k.push(t);
        if (k.length < S) keep = Int32Array.from(k);
        if (keep && seqIds) seqIds = Int32Array.from(keep, (t) => seqIds![t]);
      } else if (m.some((v) => !v)) {
        throw new InputError(`${where}: attention_mask has padding but input_ids (${Sx}) and routed tokens (${S}) differ in length; capture expanded images without padding`);
      }
    }
    const T = keep ? keep.length : S;
    if (T === 0) continue;
    const pick = <A extends Int32Array | Float32Array>(a: A, w: number): A => {
      if (!keep) return a;
      const out = new (a.constructor as { new (n: number): A })(keep.length * w);
      for (let i = 0; i < keep.length; i++) out.set(a.subarray(keep[i] * w, keep[i] * w + w), i * w);
      return out;
    };
    const key = `${nextKey()}`;
    const hints = { mmTokenTypeIds: mm ? pick(mm.subarray(s * S, (s + 1) * S), 1) : undefined, imageMask: im ? pick(im.subarray(s * S, (s + 1) * S), 1) : undefined };
    const extras = b.extras && b.dir ? hfSampleExtras(where, b.dir, b.extras, s, Sx, Sx === S && keep ? Array.from(keep) : null) : undefined;
    if (extras?.tokens && extras.tokens.length !== T) throw new InputError(`${where}: ${extras.tokens.length} token strings but ${T} routed tokens`);
    yield { kind: 'sample', key, where, rows: T, ids: seqIds, hints, text: b.texts?.[s] ?? '', source: b.sources?.[s] ?? `${basename(b.path)}${B > 1 ? ` [${s}]` : ''}`, domain: b.domains?.[s] ?? null, extras };
    for (const l of sorted) {
      const t = layers.get(l)!;
      const read = (info: TensorInfo, into?: (bytes: number) => ArrayBuffer | null) => {
        const w = info.shape[info.shape.length - 1];
        const tf = batch.get(info.name)!.tf;
        const lend = keep ? undefined : into; // picked rows are a copy: nothing to read in place
        const data = info.shape.length === 3 ? tf.readRows(info, s, s + 1, lend) : tf.readRows(info, s * S, (s + 1) * S, lend);
        return { data: pick(data, w), w };
      };
      const sc = t.router_probs ?? t.router_logits;
      let scores: { data: Float32Array; E: number; probs?: boolean; bias?: Float32Array | null } | undefined;
      if (sc) {
        if (!isFloatDtype(sc.dtype)) throw new InputError(`${sc.where}: router scores must be floats, got ${sc.dtype}`);
        // the scores go to the routing workers unless they only ride along with the block's choice (topk_ids)
        const r = read(sc, t.topk_ids ? undefined : ctx.scoreBuffer);
        scores = { data: r.data as Float32Array, E: r.w, probs: t.router_probs ? true : undefined, bias: biasOf(l) };
      }
      if (t.topk_ids) {
        if (isFloatDtype(t.topk_ids.dtype)) throw new InputError(`${t.topk_ids.where}: expert ids must be integers, got ${t.topk_ids.dtype}`);
        const r = read(t.topk_ids);
        let weights: Float32Array | null = null;
        if (t.topk_weights) {
          const wr = read(t.topk_weights);
          if (wr.w !== r.w) throw new InputError(`${t.topk_weights.where}: ${wr.w} weights per token but topk_ids has ${r.w}`);
          weights = wr.data as Float32Array;
        }
        // with weights the helper's ids are ordered by them; without, the slot order is the block's topk output
        yield { kind: 'layer', key, where: t.topk_ids.where, layer: l, layerIndex, ids: { data: r.data as Int32Array, K: r.w, weights, order: 'unranked' }, scores: ctx.opts.fullProbs ? scores : undefined };
      } else if (scores) {
        yield { kind: 'layer', key, where: sc!.where, layer: l, layerIndex, scores };
      } else {
        throw new InputError(`${b.path}: layer ${l} has topk_weights but no topk_ids`);
      }
    }
    yield { kind: 'end', key, where };
  }
}
