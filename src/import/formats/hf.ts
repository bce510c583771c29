import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../../util/errors.js';
import { iota, resolveSample } from '../common.js';
import { decoderLayer } from '../layers.js';
import type { FormatResult, ImportContext } from '../options.js';
import { looksLikeProbs, routeFromScores, sortTopK, type Routed, type Scoring } from '../routing.js';
import { TensorFile, isFloatDtype, type TensorInfo } from '../tensor-file.js';
import { hfManifestMeta, hfSampleExtras, type HfBatchExtras } from '../hf-extras.js';

/**
 * Routing saved from a Hugging Face transformers model: by python/moescope_capture.py (a folder
 * with moescope_routing.json and one safetensors file or .npy folder per batch), or by hand from
 * `model(..., output_router_logits=True)`:
 *   save_file({"input_ids": ids, "attention_mask": mask,
 *              **{f"router_logits.{i}": t for i, t in enumerate(out.router_logits)}}, "batch0.safetensors")
 * Tensors per batch (B sequences of S tokens; router tensors [B*S, ...] as HF returns them, or [B, S, ...]):
 *   input_ids [B,S] | [S]; attention_mask [B,S] (0 = padding, dropped); mm_token_type_ids / image_mask [B,S];
 *   router_logits.{l} [B*S,E] (raw logits or already probabilities: detected, or --router-output);
 *   router_probs.{l} [B*S,E]; topk_ids.{l} + topk_weights.{l} [B*S,K] (DeepSeek-style gates).
 * `l` is the MoE ordinal (mapped by --moe-layers/--config) unless the manifest says the helper
 * wrote decoder layer indices.
 */
const MANIFEST = 'moescope_routing.json';
const ROUTER = /^(router_logits|router_probs|topk_ids|topk_weights)[._](\d+)$/;

interface Manifest {
  layer_index?: 'decoder' | 'moe';
  num_hidden_layers?: number;
  num_experts?: number;
  top_k?: number;
  router_scoring?: string;
  norm_topk_prob?: boolean;
  special_ids?: number[];
  image_token_id?: number;
  image_special_ids?: number[];
  model_type?: string;
  gates?: string;
  config?: Record<string, unknown>;
  batches?: ({ path: string; texts?: string[]; sources?: string[] } & HfBatchExtras)[];
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

export async function importHf(inputs: string[], ctx: ImportContext): Promise<FormatResult> {
  const { opts } = ctx;
  const batches: { path: string; texts?: string[]; sources?: string[]; manifest: Manifest | null; dir?: string; extras?: HfBatchExtras }[] = [];
  let manifest: Manifest | null = null;
  for (const input of inputs) {
    let st;
    try {
      st = statSync(input);
    } catch {
      throw new InputError(`${input}: no such file or folder`);
    }
    if (!st.isDirectory()) {
      batches.push({ path: input, manifest: null });
      continue;
    }
    const mpath = join(input, MANIFEST);
    let m: Manifest | null = null;
    if (existsSync(mpath)) {
      try {
        m = JSON.parse(readFileSync(mpath, 'utf8')) as Manifest;
      } catch {
        throw new InputError(`${mpath}: not valid JSON`);
      }
      if (typeof m !== 'object' || m === null) throw new InputError(`${mpath}: expected a JSON object`);
      if (manifest && JSON.stringify(manifest.config ?? null) !== JSON.stringify(m.config ?? null)) {
        throw new InputError(`${mpath}: captured from a different model than ${inputs[0]}`);
      }
      manifest = manifest ?? m;
    }
    const listed = m?.batches;
    if (listed) {
      for (const b of listed) {
        if (!b || typeof b.path !== 'string') throw new InputError(`${mpath}: batches entries need a "path"`);
        const p = join(input, b.path);
        if (!existsSync(p)) throw new InputError(`${mpath}: batch ${b.path} is missing`);
        batches.push({ path: p, texts: b.texts, sources: b.sources, manifest: m, dir: input, extras: b });
      }
    } else {
      const entries = readdirSync(input).sort();
      if (entries.some((f) => f.endsWith('.npy'))) batches.push({ path: input, manifest: m });
      for (const f of entries) {
        const p = join(input, f);
        if (f.endsWith('.safetensors')) batches.push({ path: p, manifest: m });
        else if (statSync(p).isDirectory() && readdirSync(p).some((g) => g.endsWith('.npy'))) batches.push({ path: p, manifest: m });
      }
      if (batches.length === 0) throw new InputError(`${input}: no ${MANIFEST}, .safetensors files or .npy folders`);
    }
  }

  const model = opts.model;
  const scoring = (opts.scoring ?? manifest?.router_scoring ?? model?.scoring ?? 'softmax') as Scoring;
  if (scoring !== 'softmax' && scoring !== 'sigmoid') throw new InputError(`router scoring ${JSON.stringify(scoring)}: only softmax and sigmoid are supported`);
  const normTopk = opts.normTopk ?? manifest?.norm_topk_prob ?? model?.normTopk ?? false;
  const K0 = opts.topK ?? manifest?.top_k ?? model?.topK;
  const E0 = opts.numExperts ?? manifest?.num_experts ?? model?.numExperts;
  if (E0 !== undefined) ctx.sink.setNumExperts(E0, 'import hf');
  const rules = { ...opts.rules };
  if (manifest) {
    if (!rules.specialIds && Array.isArray(manifest.special_ids)) rules.specialIds = new Set(manifest.special_ids);
    if (rules.imageTokenId === undefined && typeof manifest.image_token_id === 'number') rules.imageTokenId = manifest.image_token_id;
    if (!rules.imageSpecialIds && Array.isArray(manifest.image_special_ids)) rules.imageSpecialIds = new Set(manifest.image_special_ids);
  }
  const c2 = { ...ctx, opts: { ...opts, rules } };
  const decision: { probs: boolean | null; first: string } = { probs: opts.routerOutput === 'auto' ? null : opts.routerOutput === 'probs', first: '' };
  let sawWeights = false;
  let sawIdsOnly = false;
  let sawScores = false;

  for (const b of batches) {
    const batch = new Batch(b.path);
    try {
      const decoderIdx = b.manifest?.layer_index === 'decoder';
      const layers = new Map<number, Partial<Record<'router_logits' | 'router_probs' | 'topk_ids' | 'topk_weights', TensorInfo>>>();
      for (const [name, { info }] of batch.tensors) {
        const m = ROUTER.exec(name);
        if (!m) continue;
        const l = Number(m[2]);
        const e = layers.get(l) ?? {};
        e[m[1] as 'router_logits'] = info;
        layers.set(l, e);
      }
      if (layers.size === 0) throw new InputError(`${b.path}: no router tensors (router_logits.N, router_probs.N or topk_ids.N)`);
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
      const sorted = [...layers.keys()].sort((x, y) => x - y);
      // rows per sequence, the same for every router tensor
      let N = -1;
      let firstName = '';
      for (const l of sorted) {
        for (const info of Object.values(layers.get(l)!)) {
          const sh = info.shape;
          let n: number;
          if (sh.length === 2) n = sh[0];
          else if (sh.length === 3) {
            if (sh[0] !== B) throw new InputError(`${info.where}: shape [${sh.join(', ')}] but input_ids has batch ${B}`);
            n = sh[0] * sh[1];
          } else throw new InputError(`${info.where}: expected [tokens, experts] or [batch, seq, experts], got [${sh.join(', ')}]`);
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

      for (let s = 0; s < B; s++) {
        const where = `${b.path}${B > 1 ? ` [sequence ${s}]` : ''}`;
        // which routed rows are real tokens (padding dropped)
        let keep: number[] | null = null;
        let seqIds = ids ? ids.subarray(s * Sx, (s + 1) * Sx) : null;
        if (mask) {
          const m = mask.subarray(s * Sx, (s + 1) * Sx);
          if (Sx === S) {
            keep = [];
            for (let t = 0; t < S; t++) if (m[t]) keep.push(t);
            if (seqIds) seqIds = Int32Array.from(keep, (t) => seqIds![t]);
          } else if (m.some((v) => !v)) {
            throw new InputError(`${where}: attention_mask has padding but input_ids (${Sx}) and routed tokens (${S}) differ in length; capture expanded images without padding`);
          }
        }
        const T = keep ? keep.length : S;
        if (T === 0) continue;
        const pick = <A extends Int32Array | Float32Array>(a: A, w: number): A => {
          if (!keep) return a;
          const out = new (a.constructor as { new (n: number): A })(keep.length * w);
          keep.forEach((t, i) => out.set(a.subarray(t * w, t * w + w), i * w));
          return out;
        };
        const extras = b.extras && b.dir ? hfSampleExtras(where, b.dir, b.extras, s, Sx, Sx === S ? keep : null) : undefined;
        const sample = await ctx.sink.addSample(b.texts?.[s] ?? '', b.sources?.[s] ?? `${basename(b.path)}${B > 1 ? ` [${s}]` : ''}`, extras);
        if (extras?.tokens && extras.tokens.length !== T) throw new InputError(`${where}: ${extras.tokens.length} token strings but ${T} routed tokens`);
        const hints = { mmTokenTypeIds: mm ? pick(mm.subarray(s * S, (s + 1) * S), 1) : undefined, imageMask: im ? pick(im.subarray(s * S, (s + 1) * S), 1) : undefined };
        const tok = await resolveSample(c2, where, sample, T, seqIds, hints);
        const pos = iota(T);
        for (const l of sorted) {
          const t = layers.get(l)!;
          const layer = decoderIdx ? l : decoderLayer(opts.moeLayers, l, `${b.path}: layer ${l}`);
          const read = (info: TensorInfo) => {
            const w = info.shape[info.shape.length - 1];
            const data = info.shape.length === 3 ? batch.get(info.name)!.tf.readRows(info, s, s + 1) : batch.get(info.name)!.tf.readRows(info, s * S, (s + 1) * S);
            return { data: pick(data, w), w };
          };
          let routed: Routed;
          let scores: { data: Float32Array; w: number; info: TensorInfo; probs: boolean } | null = null;
          const sc = t.router_probs ?? t.router_logits;
          if (sc) {
            if (!isFloatDtype(sc.dtype)) throw new InputError(`${sc.where}: router scores must be floats, got ${sc.dtype}`);
            const r = read(sc);
            ctx.sink.setNumExperts(r.w, sc.where);
            let areProbs: boolean;
            if (t.router_probs) areProbs = true;
            else {
              if (decision.probs === null) {
                decision.probs = looksLikeProbs(r.data as Float32Array, T, r.w, scoring);
                decision.first = sc.where;
              }
              areProbs = decision.probs;
            }
            scores = { data: r.data as Float32Array, w: r.w, info: sc, probs: areProbs };
          }
          if (t.topk_ids) {
            if (isFloatDtype(t.topk_ids.dtype)) throw new InputError(`${t.topk_ids.where}: expert ids must be integers, got ${t.topk_ids.dtype}`);
            const r = read(t.topk_ids);
            const K = r.w;
            let weights: Float32Array | null = null;
            if (t.topk_weights) {
              const wr = read(t.topk_weights);
              if (wr.w !== K) throw new InputError(`${t.topk_weights.where}: ${wr.w} weights per token but topk_ids has ${K}`);
              weights = wr.data as Float32Array;
              sawWeights = true;
            } else sawIdsOnly = true;
            routed = sortTopK(t.topk_ids.where, r.data as Int32Array, weights, T, K, ctx.sink.numExperts);
            if (scores && opts.fullProbs) routed.probs = routeFromScores(scores.data, T, scores.w, 1, scoring, scores.probs, false, true).probs;
            await ctx.sink.add({ where: t.topk_ids.where, sample, layer, pos, token: tok.token, modality: tok.modality, routed, K });
          } else if (scores) {
            const K = K0;
            if (K === undefined) throw new InputError(`${scores.info.where}: top-k unknown: pass --top-k or --config (num_experts_per_tok)`);
            if (K > scores.w) throw new InputError(`${scores.info.where}: top-k ${K} exceeds the ${scores.w} experts`);
            routed = routeFromScores(scores.data, T, scores.w, K, scoring, scores.probs, normTopk, opts.fullProbs);
            sawScores = true;
            await ctx.sink.add({ where: scores.info.where, sample, layer, pos, token: tok.token, modality: tok.modality, routed, K });
          } else {
            throw new InputError(`${b.path}: layer ${l} has topk_weights but no topk_ids`);
          }
        }
        ctx.sink.endSample(sample, where);
      }
    } finally {
      batch.close();
    }
  }
  const config = manifest?.config ?? model?.config;
  return {
    router_scoring: scoring,
    gates: typeof manifest?.gates === 'string' ? manifest.gates : sawScores && !sawWeights && !sawIdsOnly
      ? `router probabilities${normTopk ? ' renormalised over the top-k' : ''}`
      : sawWeights && !sawIdsOnly ? 'the gate module\'s top-k weights' : 'mixed: router probabilities / gate weights / 1/K where only ids were saved',
    num_layers: opts.numLayers ?? manifest?.num_hidden_layers ?? model?.numLayers,
    model: config ? { path: model?.path ?? '', config } : null,
    extra: { ...hfManifestMeta(manifest), router_output: decision.probs === null ? (sawScores ? 'probs' : 'ids') : decision.probs ? 'probabilities (rows sum to 1: not re-normalised)' : `logits (${scoring} applied)` },
  };
}
