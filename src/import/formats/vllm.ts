import { InputError } from '../../util/errors.js';
import { flatInts, iota, resolveSample } from '../common.js';
import { readJsonl } from '../lines.js';
import { parseIntArray } from '../modality.js';
import type { FormatResult, ImportContext } from '../options.js';
import { sortTopK } from '../routing.js';

/**
 * vLLM (and SGLang) started with `--enable-return-routed-experts` return, per request, the
 * experts every token was routed to: an integer array [tokens, layers, top_k] over the prompt
 * and the generated tokens (the last generated token was never fed back, so it may be missing).
 * One request per JSONL line:
 *   {"request_id": "...", "prompt_token_ids": [...], "output_token_ids": [...],
 *    "routed_experts": [[[e, ...], ...], ...] | {"dtype": "int16", "shape": [T, L, K], "data": "<base64>"}}
 * or vLLM's RequestOutput shape with `outputs[0].token_ids` / `outputs[0].routed_experts`.
 * Rows get `phase` prefill (prompt tokens) or decode (generated tokens). The layer axis is the
 * model's MoE layers (mapped with --moe-layers/--config) or all decoder layers with all-zero
 * slices for dense layers, which are dropped.
 */
export async function importVllm(inputs: string[], ctx: ImportContext): Promise<FormatResult> {
  const { sink, opts } = ctx;
  const notes = new Set<string>();
  for (const file of inputs) {
    for await (const { where, obj } of readJsonl(file)) {
      const out0 = Array.isArray(obj.outputs) && typeof obj.outputs[0] === 'object' && obj.outputs[0] !== null ? (obj.outputs[0] as Record<string, unknown>) : {};
      const promptRaw = obj.prompt_token_ids;
      if (promptRaw === undefined) throw new InputError(`${where}: missing "prompt_token_ids"`);
      const prompt = parseIntArray(where, 'prompt_token_ids', promptRaw);
      const outRaw = obj.output_token_ids ?? out0.token_ids ?? [];
      const output = parseIntArray(where, 'output_token_ids', outRaw);
      const reRaw = obj.routed_experts ?? out0.routed_experts;
      if (reRaw === undefined || reRaw === null) throw new InputError(`${where}: missing "routed_experts" (was vLLM started with --enable-return-routed-experts?)`);
      const re = decodeRouted(where, reRaw);
      const [T, Lax, K] = re.shape;
      const P = prompt.length;
      const O = output.length;
      if (T !== P + O && !(O > 0 && T === P + O - 1)) {
        throw new InputError(`${where}: routed_experts has ${T} tokens but the request has ${P} prompt + ${O} output tokens (expected ${P + O}${O > 0 ? ` or ${P + O - 1}` : ''})`);
      }
      if (T === 0) continue;
      const ids = new Int32Array(T);
      ids.set(prompt.subarray(0, Math.min(P, T)));
      if (T > P) ids.set(output.subarray(0, T - P), P);
      // Which axis entries are MoE layers, and their decoder index
      const layers = layerAxis(where, re.data, T, Lax, K, opts.moeLayers, opts.numLayers ?? opts.model?.numLayers, notes);
      const text = [typeof obj.prompt === 'string' ? obj.prompt : '', typeof out0.text === 'string' ? out0.text : typeof obj.text === 'string' ? obj.text : ''].filter(Boolean).join(' ');
      const rid = obj.request_id ?? obj.id;
      const sample = await sink.addSample(text, `${where}${rid !== undefined ? ` request ${rid}` : ''}`);
      const hints = {
        mmTokenTypeIds: obj.mm_token_type_ids !== undefined ? parseIntArray(where, 'mm_token_type_ids', obj.mm_token_type_ids).subarray(0, T) : undefined,
        imageMask: obj.image_mask !== undefined ? parseIntArray(where, 'image_mask', obj.image_mask).subarray(0, T) : undefined,
      };
      const tok = await resolveSample(ctx, where, sample, T, ids, hints);
      const phase = Array.from({ length: T }, (_, t) => (t < P ? 'prefill' : 'decode'));
      const pos = iota(T);
      for (const [a, layer] of layers) {
        const lw = `${where}: routed_experts[:, ${a}, :]`;
        const li = new Int32Array(T * K);
        for (let t = 0; t < T; t++) for (let j = 0; j < K; j++) li[t * K + j] = re.data[(t * Lax + a) * K + j];
        const routed = sortTopK(lw, li, null, T, K, sink.numExperts);
        await sink.add({ where: lw, sample, layer, pos, token: tok.token, modality: tok.modality, routed, K, phase });
      }
      sink.endSample(sample, where);
    }
  }
  return { router_scoring: opts.scoring ?? opts.model?.scoring ?? 'unknown', gates: 'uniform 1/K (vLLM returns expert ids only; slot order kept)', notes: [...notes] };
}

function decodeRouted(where: string, v: unknown): { data: Int32Array; shape: number[] } {
  if (Array.isArray(v)) return flatInts(where, 'routed_experts', v, [null, null, null]);
  if (typeof v !== 'object' || v === null) throw new InputError(`${where}: routed_experts must be a nested list or {dtype, shape, data}`);
  const o = v as Record<string, unknown>;
  const shape = o.shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new InputError(`${where}: routed_experts.shape must be [tokens, layers, top_k], got ${JSON.stringify(shape)}`);
  }
  const dtype = String(o.dtype ?? 'int16').replace(/^torch\./, '');
  const width = { int16: 2, int32: 4, int64: 8, uint8: 1, int8: 1, uint16: 2 }[dtype];
  if (!width) throw new InputError(`${where}: routed_experts.dtype ${JSON.stringify(o.dtype)} is not an integer type`);
  if (typeof o.data !== 'string') throw new InputError(`${where}: routed_experts.data must be a base64 string`);
  const buf = Buffer.from(o.data, 'base64');
  const n = shape.reduce((a: number, b: number) => a * b, 1);
  if (buf.length !== n * width) throw new InputError(`${where}: routed_experts.data has ${buf.length} bytes, shape [${shape.join(', ')}] ${dtype} needs ${n * width} (truncated?)`);
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    data[i] =
      width === 2 ? (dtype === 'uint16' ? buf.readUInt16LE(2 * i) : buf.readInt16LE(2 * i))
      : width === 4 ? buf.readInt32LE(4 * i)
      : width === 8 ? Number(buf.readBigInt64LE(8 * i))
      : dtype === 'int8' ? buf.readInt8(i) : buf[i];
  }
  return { data, shape: shape as number[] };
}

/** [axis index, decoder layer] of the layer axis entries that are MoE layers. */
function layerAxis(where: string, data: Int32Array, T: number, Lax: number, K: number, moeLayers: number[] | undefined, numLayers: number | undefined, notes: Set<string>): [number, number][] {
  if (moeLayers) {
    if (Lax === moeLayers.length) return moeLayers.map((l, a) => [a, l]);
    if (numLayers !== undefined && Lax === numLayers) return moeLayers.map((l) => [l, l]);
    throw new InputError(`${where}: routed_experts has ${Lax} layers but the model has ${moeLayers.length} MoE layers${numLayers !== undefined ? ` of ${numLayers}` : ''}`);
  }
  const out: [number, number][] = [];
  for (let a = 0; a < Lax; a++) {
    let allZero = K > 1;
    for (let t = 0; t < T && allZero; t++) for (let j = 0; j < K; j++) if (data[(t * Lax + a) * K + j] !== 0) { allZero = false; break; }
    if (allZero) notes.add(`layer ${a}: all-zero expert ids (a dense layer's placeholder) dropped`);
    else out.push([a, a]);
  }
  return out;
}
