import { closeSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../../util/errors.js';
import { LIMITS } from '../../util/limits.js';
import { decode } from '../../model/safetensors.js';
import { flatInts } from '../common.js';
import { readJsonl } from '../lines.js';
import type { ReaderContext } from '../options.js';
import type { ImportRecord } from '../records.js';

/**
 * Megatron-LM's router trace (megatron/core/transformer/moe/router_tracer.py, `--moe-routing-trace-path
 * DIR`): DIR/router_trace_rank{R}.jsonl, one record per forward pass and MoE layer:
 *   {"step": 0, "stage": "pre_dispatch", "block": "decoder", "layer": 3, "rank": 0,
 *    "num_tokens": 128, "topk": 8, "top_indices": [[12, 45, ...], ...]}
 * `layer` comes from the router's module name `decoder.layers.N`: the layer index within the
 * model chunk of this rank, so with pipeline parallelism it is local to the stage (give
 * --pipeline-parallel P, and --pipeline-layers n0,n1,... for an uneven split; ranks in Megatron's
 * default order tp-cp-ep-dp-pp, so the stage is rank / (ranks / P)). Where the name does not
 * parse the tracer falls back to the module's `layer_number`, 1-based and global
 * (the inference path with --moe-enable-routing-replay): give --layer-base 1.
 * Tokens are Megatron's [sequence, batch] order flattened: token t is position t / B of sequence
 * t % B with B = --micro-batch. A forward pass ends when the step changes or a layer repeats.
 * top_indices come from routing_map.nonzero(): ascending expert id, not by gate (unranked); with
 * the logits sidecar (logits_rank{R}.bin, bfloat16, `logit_offset`/`logit_shape`) the experts are
 * ordered and weighted by the router's probabilities. The stages' records of the same forward
 * pass are one sample. MTP records (`"block": "mtp"`) are skipped.
 */
export async function* readMegatron(inputs: string[], ctx: ReaderContext): AsyncGenerator<ImportRecord> {
  const { opts } = ctx;
  const B = opts.microBatch;
  const files = expandInputs(inputs);
  const P = opts.pipeline?.stages ?? 1;
  const ranks = files.map((f, i) => rankOf(f, i));
  if (P > 1) {
    if (files.length % P !== 0) throw new InputError(`${files[0]}: ${files.length} rank files do not split over --pipeline-parallel ${P} stages`);
    if (new Set(ranks).size !== ranks.length) throw new InputError(`${files[0]}: two files have the same rank`);
    if (opts.pipeline?.layers && opts.pipeline.layers.length !== P) throw new InputError(`--pipeline-layers: ${opts.pipeline.layers.length} stages listed but --pipeline-parallel is ${P}`);
  }
  const perStage = files.length / P;
  const order = ranks.map((r, i) => ({ r, i })).sort((a, b) => a.r - b.r);
  const seenKeys = new Set<string>();
  let skippedMtp = 0;
  for (const { r: rank, i } of order) {
    const file = files[i];
    const stage = P > 1 ? Math.floor(order.findIndex((o) => o.r === rank) / perStage) : 0;
    // ranks of one stage hold different data (dp); without PP every rank file is its own data
    const dp = P > 1 ? order.findIndex((o) => o.r === rank) % perStage : order.findIndex((o) => o.r === rank);
    let group: { step: string; fwd: number; seen: Set<number>; tokens: number; keys: string[] } | null = null;
    let fwd = 0;
    let lastStep: string | null = null;
    const doneSteps = new Set<string>();
    let logits: { fd: number; path: string; size: number } | null = null;
    try {
      for await (const { where, obj } of readJsonl(file)) {
        const block = obj.block ?? 'decoder';
        if (block !== 'decoder') {
          skippedMtp++;
          continue;
        }
        const layer = obj.layer;
        if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer > LIMITS.layers) throw new InputError(`${where}: "layer" must be an integer in 0..${LIMITS.layers}`);
        if (obj.top_indices === undefined) throw new InputError(`${where}: missing "top_indices"`);
        const stepKey = JSON.stringify(obj.step ?? null);
        if (group && (stepKey !== group.step || group.seen.has(layer))) {
          if (P === 1) for (const k of group.keys) yield { kind: 'end', key: k, where: `${where} (step ${group.step})` };
          group = null;
        }
        if (!group) {
          if (stepKey !== lastStep) {
            if (doneSteps.has(stepKey)) throw new InputError(`${where}: step ${stepKey} appears again after other steps (records out of order?)`);
            if (lastStep !== null) doneSteps.add(lastStep);
            lastStep = stepKey;
            fwd = 0;
          } else fwd++;
        }
        const ti = flatInts(where, 'top_indices', obj.top_indices, [null, null]);
        const [N, K] = ti.shape;
        if (obj.num_tokens !== undefined && obj.num_tokens !== N) throw new InputError(`${where}: num_tokens is ${JSON.stringify(obj.num_tokens)} but top_indices has ${N} rows`);
        if (obj.topk !== undefined && obj.topk !== K && N > 0) throw new InputError(`${where}: topk is ${JSON.stringify(obj.topk)} but top_indices rows have ${K} entries`);
        if (N === 0) continue;
        if (N % B !== 0) throw new InputError(`${where}: ${N} tokens is not a multiple of --micro-batch ${B}`);
        const S = N / B;
        if (!group) {
          const keys: string[] = Array.from({ length: B }, (_, b): string => `${dp}:${stepKey}:${fwd}:${b}`);
          group = { step: stepKey, fwd, seen: new Set(), tokens: N, keys };
          for (let b = 0; b < B; b++) {
            const key = keys[b];
            if (seenKeys.has(key)) continue;
            if (stage > 0) throw new InputError(`${where}: stage ${stage} has step ${stepKey} forward pass ${fwd} that the first stage's rank file does not have`);
            seenKeys.add(key);
            const src = `${basename(file)} step ${stepKey}${fwd ? ` pass ${fwd}` : ''}${B > 1 ? ` sequence ${b}` : ''}`;
            yield { kind: 'sample', key, where, rows: S, ids: null, source: src };
          }
        } else if (group.tokens !== N) {
          throw new InputError(`${where}: layers disagree: layer ${layer} routed ${N} tokens but the other layers of this forward pass routed ${group.tokens}`);
        }
        group.seen.add(layer);

        let scores: Float32Array | null = null;
        let E = 0;
        if (obj.logit_offset !== undefined || obj.logit_shape !== undefined) {
          const shape = obj.logit_shape;
          if (!Array.isArray(shape) || shape.length !== 2 || shape[0] !== N || !Number.isInteger(shape[1]) || shape[1] < 1 || shape[1] > LIMITS.experts) {
            throw new InputError(`${where}: logit_shape ${JSON.stringify(shape)} is not [${N}, experts] with experts in 1..${LIMITS.experts}`);
          }
          E = shape[1] as number;
          if (!logits) {
            const path = join(dirname(file), `logits_rank${rank}.bin`);
            let fd: number;
            try {
              if (!statSync(path).isFile()) throw new Error('not a file');
              fd = openSync(path, 'r');
            } catch {
              throw new InputError(`${where}: record has logit_offset but ${path} is missing or not a file`);
            }
            logits = { fd, path, size: fstatSync(fd).size };
          }
          const off = obj.logit_offset;
          const bytes = N * E * 2;
          if (typeof off !== 'number' || !Number.isSafeInteger(off) || off < 0 || off + bytes > logits.size) {
            throw new InputError(`${where}: logit_offset ${JSON.stringify(off)} is not an offset with ${bytes} bytes of logits in ${logits.path} (${logits.size} bytes)`);
          }
          scores = readBf16(logits.fd, logits.path, off, N * E, where);
        }
        // split Megatron's [s, b] token order into B sequences
        for (let b = 0; b < B; b++) {
          const take = <T extends Int32Array | Float32Array>(a: T, w: number): T => {
            if (B === 1) return a;
            const out = new (a.constructor as { new (n: number): T })(S * w);
            for (let s = 0; s < S; s++) out.set(a.subarray((s * B + b) * w, (s * B + b) * w + w), s * w);
            return out;
          };
          yield {
            kind: 'layer', key: group.keys[b], where, layer, stage,
            layerIndex: P > 1 ? 'stage' : 'decoder',
            ids: { data: take(ti.data, K), K, weights: null, order: 'unranked' },
            scores: scores ? { data: take(scores, E), E } : undefined,
          };
        }
      }
      if (group && P === 1) for (const k of group.keys) yield { kind: 'end', key: k, where: `${file} (step ${group.step})` };
    } finally {
      if (logits) closeSync(logits.fd);
    }
  }
  if (skippedMtp) ctx.notes.add(`${skippedMtp} multi-token-prediction (block mtp) records skipped`);
  ctx.meta.pipeline = P > 1 ? { stages: P, layers: opts.pipeline?.layers ?? 'even split', rank_files: files.length } : undefined;
}

function rankOf(file: string, i: number): number {
  const m = /rank(\d+)/.exec(basename(file));
  return m ? Number(m[1]) : i;
}

/** router_trace_rank*.jsonl of a folder, in rank order; files as given. */
function expandInputs(inputs: string[]): string[] {
  const out: string[] = [];
  for (const p of inputs) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      throw new InputError(`${p}: no such file or folder`);
    }
    if (!isDir) {
      out.push(p);
      continue;
    }
    const files = readdirSync(p)
      .map((f) => ({ f, m: /^router_trace_rank(\d+)\.jsonl$/.exec(f) }))
      .filter((x) => x.m)
      .sort((a, b) => Number(a.m![1]) - Number(b.m![1]))
      .map((x) => join(p, x.f));
    if (files.length === 0) throw new InputError(`${p}: no router_trace_rank*.jsonl files in this folder`);
    out.push(...files);
  }
  return out;
}

function readBf16(fd: number, path: string, offset: number, n: number, where: string): Float32Array {
  const buf = Buffer.allocUnsafeSlow(n * 2);
  let done = 0;
  while (done < buf.length) {
    const k = readSync(fd, buf, done, buf.length - done, offset + done);
    if (k <= 0) throw new InputError(`${where}: ${path} ends before logit_offset ${offset} + ${n * 2} bytes (truncated?)`);
    done += k;
  }
  return decode(buf, 0, n * 2, 'BF16');
}
