import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../../util/errors.js';
import { flatInts, resolveSample } from '../common.js';
import { readJsonl } from '../lines.js';
import type { FormatResult, ImportContext } from '../options.js';
import { routeFromScores, sortTopK } from '../routing.js';

/**
 * Megatron-LM's router trace (`--moe-routing-trace-path DIR`): DIR/router_trace_rank{R}.jsonl, one
 * record per forward pass and MoE layer:
 *   {"step": 0, "stage": "pre_dispatch", "block": "decoder", "layer": 3, "rank": 0,
 *    "num_tokens": 128, "topk": 8, "top_indices": [[12, 45, ...], ...]}
 * `layer` is the decoder layer (from the module name decoder.layers.N), so dense layers are
 * already skipped. Tokens are Megatron's [sequence, batch] order flattened: token t is position
 * t / B of sequence t % B with B = --micro-batch. A forward pass ends when the step changes or a
 * layer repeats (gradient accumulation). top_indices come from the routing map in expert-id
 * order, not by gate; with the logits sidecar (logits_rank{R}.bin, bfloat16, `logit_offset`,
 * `logit_shape` in the record) the experts are ordered and weighted by the router's probabilities.
 * MTP records (`"block": "mtp"`) are skipped.
 */
export async function importMegatron(inputs: string[], ctx: ImportContext): Promise<FormatResult> {
  const { sink, opts } = ctx;
  const B = opts.microBatch;
  const scoring = (opts.scoring ?? opts.model?.scoring ?? 'softmax') as 'softmax' | 'sigmoid';
  let sawLogits = false;
  let sawNoLogits = false;
  let skippedMtp = 0;
  for (const file of expandInputs(inputs)) {
    let group: { step: unknown; samples: number[]; seen: Set<string>; tokens: number; where: string; tok: Map<number, { token: Int32Array; modality: Uint8Array }> } | null = null;
    const doneSteps = new Set<string>();
    const endGroup = () => {
      if (!group) return;
      for (const s of group.samples) sink.endSample(s, `${group.where} (step ${String(group.step)})`);
      group = null;
    };
    let logits: { fd: number; path: string } | null = null;
    try {
      for await (const { where, obj } of readJsonl(file)) {
        const block = obj.block ?? 'decoder';
        if (block !== 'decoder') {
          skippedMtp++;
          continue;
        }
        const layer = obj.layer;
        if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0) throw new InputError(`${where}: "layer" must be a non-negative integer`);
        if (obj.top_indices === undefined) throw new InputError(`${where}: missing "top_indices"`);
        const step = obj.step;
        const stepKey = JSON.stringify(step);
        const key = `${layer}`;
        if (group && (stepKey !== JSON.stringify(group.step) || group.seen.has(key))) {
          const changedStep = stepKey !== JSON.stringify(group.step);
          if (changedStep) doneSteps.add(JSON.stringify(group.step));
          endGroup();
        }
        if (!group && doneSteps.has(stepKey)) throw new InputError(`${where}: step ${stepKey} appears again after other steps (records out of order?)`);
        const ti = flatInts(where, 'top_indices', obj.top_indices, [null, null]);
        const [N, K] = ti.shape;
        if (obj.num_tokens !== undefined && obj.num_tokens !== N) throw new InputError(`${where}: num_tokens is ${obj.num_tokens} but top_indices has ${N} rows`);
        if (obj.topk !== undefined && obj.topk !== K && N > 0) throw new InputError(`${where}: topk is ${obj.topk} but top_indices rows have ${K} entries`);
        if (N === 0) continue;
        if (N % B !== 0) throw new InputError(`${where}: ${N} tokens is not a multiple of --micro-batch ${B}`);
        const S = N / B;
        if (!group) {
          const samples: number[] = [];
          for (let b = 0; b < B; b++) samples.push(await sink.addSample('', `${basename(file)} step ${stepKey}${B > 1 ? ` sequence ${b}` : ''}`));
          group = { step, samples, seen: new Set(), tokens: N, where, tok: new Map() };
        } else if (group.tokens !== N) {
          throw new InputError(`${where}: layers disagree: layer ${layer} routed ${N} tokens but the other layers of this forward pass routed ${group.tokens}`);
        }
        group.seen.add(key);

        // scores from the logits sidecar, when traced with them
        let weights: Float32Array | null = null;
        let probs: Float32Array | undefined;
        if (typeof obj.logit_offset === 'number' && Array.isArray(obj.logit_shape)) {
          const [n2, E] = obj.logit_shape as number[];
          if (n2 !== N || !Number.isInteger(E) || E < 1) throw new InputError(`${where}: logit_shape ${JSON.stringify(obj.logit_shape)} does not match ${N} tokens`);
          if (!logits) {
            const path = join(dirname(file), `logits_rank${obj.rank ?? /rank(\d+)/.exec(basename(file))?.[1] ?? 0}.bin`);
            if (!existsSync(path)) throw new InputError(`${where}: record has logit_offset but ${path} is missing`);
            logits = { fd: openSync(path, 'r'), path };
          }
          sink.setNumExperts(E, where);
          const scores = readBf16(logits.fd, logits.path, obj.logit_offset, N * E, where);
          const r = routeFromScores(scores, N, E, 1, scoring, false, false, true);
          probs = r.probs!;
          weights = new Float32Array(N * K);
          for (let t = 0; t < N; t++) {
            let sum = 0;
            for (let j = 0; j < K; j++) {
              const e = ti.data[t * K + j];
              if (!(e >= 0 && e < E)) throw new InputError(`${where}: token ${t}: expert id ${e} outside 0..${E - 1}`);
              sum += weights[t * K + j] = probs[t * E + e];
            }
            if (opts.normTopk ?? opts.model?.normTopk) for (let j = 0; j < K; j++) weights[t * K + j] /= sum || 1;
          }
          sawLogits = true;
        } else sawNoLogits = true;
        const routed = sortTopK(where, ti.data, weights, N, K, sink.numExperts);
        if (probs && opts.fullProbs) routed.probs = probs;

        // split Megatron's [s, b] token order into B sequences
        for (let b = 0; b < B; b++) {
          const sample = group.samples[b];
          const idx = (s: number) => s * B + b;
          const take = <T extends Int32Array | Float32Array>(a: T, w: number): T => {
            const out = new (a.constructor as { new (n: number): T })(S * w);
            for (let s = 0; s < S; s++) out.set(a.subarray(idx(s) * w, idx(s) * w + w), s * w);
            return out;
          };
          const sub = B === 1 ? routed : { experts: take(routed.experts, K), gates: take(routed.gates, K), probs: routed.probs ? take(routed.probs, probs!.length / N) : undefined };
          let tok = group.tok.get(sample);
          if (!tok) group.tok.set(sample, (tok = await resolveSample(ctx, where, sample, S, null)));
          const pos = new Int32Array(S);
          for (let s = 0; s < S; s++) pos[s] = s;
          await sink.add({ where, sample, layer, pos, token: tok.token, modality: tok.modality, routed: sub, K });
        }
      }
      endGroup();
    } finally {
      if (logits) closeSync(logits.fd);
    }
  }
  const notes: string[] = [];
  if (skippedMtp) notes.push(`${skippedMtp} multi-token-prediction (block mtp) records skipped`);
  if (sawNoLogits) notes.push('records without logits: experts kept in Megatron\'s expert-id order, gate 1/K; expert[1] is not the top-1 choice');
  return {
    router_scoring: sawLogits ? scoring : (opts.scoring ?? opts.model?.scoring ?? 'unknown'),
    gates: sawLogits && !sawNoLogits ? `router probabilities from the logits sidecar (${scoring}${(opts.normTopk ?? opts.model?.normTopk) ? ', renormalised over the top-k' : ''})` : 'uniform 1/K (top_indices only)',
    notes,
  };
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
  const buf = Buffer.alloc(n * 2);
  let done = 0;
  while (done < buf.length) {
    const k = readSync(fd, buf, done, buf.length - done, offset + done);
    if (k <= 0) throw new InputError(`${where}: ${path} ends before logit_offset ${offset} + ${n * 2} bytes (truncated?)`);
    done += k;
  }
  const out = new Float32Array(n);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) u[i] = buf.readUInt16LE(2 * i) << 16;
  return out;
}

