import { InputError } from '../../util/errors.js';
import { flatInts } from '../common.js';
import { readJsonl } from '../lines.js';
import { parseIntArray } from '../modality.js';
import type { ReaderContext } from '../options.js';
import type { ImportRecord } from '../records.js';
import { INT_WIDTH, checkTokens, completionRecords, decodeInts, layerAxis, stringOf, type RoutedArray } from './engine-routed.js';
import { IntTensor, StringBytes } from '../json-ints.js';
import { isAscii } from 'node:buffer';
import { base64ByteLength } from '../../util/base64.js';

/**
 * vLLM started with `--enable-return-routed-experts`: each CompletionOutput of a RequestOutput
 * carries `routed_experts` [seq_len, layer_num, topk] (vllm/outputs.py) over the prompt and that
 * completion's tokens. One request per JSONL line:
 *   {"request_id": "...", "prompt_token_ids": [...],
 *    "outputs": [{"index": 0, "text": "...", "token_ids": [...], "routed_experts": R}, ...]}    (n >= 1)
 * or flat {"request_id", "prompt_token_ids", "output_token_ids", "routed_experts": R}, where R is
 * a nested list or {"dtype": "int16", "shape": [T, L, K], "data": "<base64>"}. Every completion
 * becomes its own sample (source names the request and the completion index).
 */
export async function* readVllm(inputs: string[], ctx: ReaderContext): AsyncGenerator<ImportRecord> {
  for (const file of inputs) {
    // read from the line's bytes: token lists as IntTensors, the routed ids' base64 as bytes
    for await (const { where, obj } of readJsonl(file, { intTensors: true, byteStringKeys: ['data'] })) {
      if (obj.prompt_token_ids === undefined) throw new InputError(`${where}: missing "prompt_token_ids"`);
      const prompt = parseIntArray(where, 'prompt_token_ids', obj.prompt_token_ids);
      const rid = obj.request_id ?? obj.id;
      const completions: { index: number; o: Record<string, unknown> }[] = [];
      if (Array.isArray(obj.outputs)) {
        obj.outputs.forEach((o, i) => {
          if (typeof o !== 'object' || o === null) throw new InputError(`${where}: outputs[${i}] is not an object`);
          const idx = (o as Record<string, unknown>).index;
          completions.push({ index: typeof idx === 'number' && Number.isInteger(idx) ? idx : i, o: o as Record<string, unknown> });
        });
      } else completions.push({ index: 0, o: { token_ids: obj.output_token_ids ?? [], routed_experts: obj.routed_experts, text: obj.text } });
      if (completions.length === 0) throw new InputError(`${where}: "outputs" is empty`);
      const many = completions.length > 1;
      for (const { index, o } of completions) {
        const w = many ? `${where} [completion ${index}]` : where;
        const output = parseIntArray(w, 'token_ids', o.token_ids ?? []);
        const reRaw = o.routed_experts ?? (many ? undefined : obj.routed_experts);
        if (reRaw === undefined || reRaw === null) throw new InputError(`${w}: missing "routed_experts" (was vLLM started with --enable-return-routed-experts?)`);
        const re = decodeRouted(w, reRaw);
        const P = prompt.length;
        checkTokens(w, re.T, P, output.length);
        if (re.T === 0) continue;
        const ids = new Int32Array(re.T);
        ids.set(prompt.subarray(0, Math.min(P, re.T)));
        if (re.T > P) ids.set(output.subarray(0, re.T - P), P);
        const axis = layerAxis(w, re, ctx);
        const text = [typeof obj.prompt === 'string' ? obj.prompt : '', typeof o.text === 'string' ? o.text : ''].filter(Boolean).join(' ');
        const hints = {
          mmTokenTypeIds: obj.mm_token_type_ids !== undefined ? parseIntArray(w, 'mm_token_type_ids', obj.mm_token_type_ids).subarray(0, re.T) : undefined,
          imageMask: obj.image_mask !== undefined ? parseIntArray(w, 'image_mask', obj.image_mask).subarray(0, re.T) : undefined,
        };
        const source = `${where}${rid !== undefined ? ` request ${String(rid)}` : ''}${many || Array.isArray(obj.outputs) && obj.outputs.length > 1 ? ` completion ${index}` : ''}`;
        yield* completionRecords(`${where}#${index}`, w, source, text, ids, P, re, axis, hints, typeof obj.domain === 'string' ? obj.domain : null);
      }
    }
  }
}

function decodeRouted(where: string, v: unknown): RoutedArray {
  if (v instanceof IntTensor && v.shape.length === 3) return { data: v.data, T: v.shape[0], L: v.shape[1], K: v.shape[2] };
  if (v instanceof IntTensor) v = v.toNested(); // flatInts names the wrong shape
  if (Array.isArray(v)) {
    const f = flatInts(where, 'routed_experts', v, [null, null, null]);
    return { data: f.data, T: f.shape[0], L: f.shape[1], K: f.shape[2] };
  }
  if (typeof v !== 'object' || v === null) throw new InputError(`${where}: routed_experts must be a nested list or {dtype, shape, data}`);
  const o = v as Record<string, unknown>;
  const shape = o.shape instanceof IntTensor ? o.shape.toNested() : o.shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0 && d <= 1 << 24)) {
    throw new InputError(`${where}: routed_experts.shape must be [tokens, layers, top_k], got ${JSON.stringify(shape)}`);
  }
  if (typeof o.data !== 'string' && !(o.data instanceof StringBytes)) throw new InputError(`${where}: routed_experts.data must be a base64 string`);
  const dtype = String(o.dtype ?? 'int16').replace(/^torch\./, '');
  const n = (shape as number[]).reduce((a, b) => a * b, 1);
  const width = INT_WIDTH[dtype] ?? 1;
  // (of text as bytes: Node's count from the bytes when they are ASCII, one byte a character)
  const bytes = o.data instanceof StringBytes && isAscii(o.data.bytes) ? base64ByteLength(o.data.bytes) : Buffer.byteLength(o.data instanceof StringBytes ? stringOf(where, o.data) : o.data, 'base64');
  if (bytes !== n * width) throw new InputError(`${where}: routed_experts.data has ${bytes} bytes, shape [${shape.join(', ')}] ${dtype} needs ${n * width} (truncated?)`);
  // reused by the next request's decode: this one's records are all read by then (sliced into layers)
  const data = decodeInts(where, 'routed_experts', o.data, dtype, true);
  return { data, T: shape[0], L: shape[1], K: shape[2] };
}
