import { InputError } from '../../util/errors.js';
import { LIMITS } from '../../util/limits.js';
import { readLines } from '../lines.js';
import { parseIntArray } from '../modality.js';
import type { ReaderContext } from '../options.js';
import type { ImportRecord } from '../records.js';
import { checkTokens, completionRecords, decodeInts, layerAxis } from './engine-routed.js';

/**
 * SGLang's native /generate response with `return_routed_experts` (server started with
 * --enable-return-routed-experts): `meta_info.routed_experts` is a bare base64 string of int32
 * (python/sglang/srt/layers/moe/routed_experts_capturer.py: extract_routed_experts_from_meta_info
 * decodes it with np.frombuffer(..., dtype=np.int32), or `meta_info.routed_experts_dtype` when a
 * newer server says so), flat, row-major [seqlen, num_hidden_layers, num_experts_per_tok] — the
 * shape is not sent, so it comes from --config (or --num-layers and --top-k). seqlen is the
 * prompt plus the output minus the last token. One response per JSONL line (or a JSON list of
 * them, as /generate returns for a batch or n > 1):
 *   {"text": "...", "output_ids": [...], "meta_info": {"id": "...", "prompt_tokens": P,
 *    "completion_tokens": O, "routed_experts": "<base64>"}}
 * The response has no prompt ids; add "input_ids" (the request's) to the line to get them,
 * else prompt tokens have token -1.
 */
export async function* readSglang(inputs: string[], ctx: ReaderContext): AsyncGenerator<ImportRecord> {
  const { opts } = ctx;
  const L = opts.numLayers ?? opts.model?.numLayers;
  const K = opts.topK ?? opts.model?.topK;
  for (const file of inputs) {
    for await (const { n, text } of readLines(file)) {
      if (text.trim() === '') continue;
      const where0 = `${file}:${n}`;
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        throw new InputError(`${where0}: not valid JSON (${e instanceof Error ? e.message : e}; truncated file?)`);
      }
      const list = Array.isArray(v) ? v : [v];
      for (let i = 0; i < list.length; i++) {
        const where = Array.isArray(v) ? `${where0} [${i}]` : where0;
        const obj = list[i] as Record<string, unknown>;
        if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new InputError(`${where}: expected a /generate response object`);
        const mi = obj.meta_info as Record<string, unknown> | undefined;
        if (typeof mi !== 'object' || mi === null) throw new InputError(`${where}: missing "meta_info"`);
        const b64 = mi.routed_experts;
        if (typeof b64 !== 'string') throw new InputError(`${where}: meta_info.routed_experts must be a base64 string (was the request sent with return_routed_experts?)`);
        if (L === undefined || K === undefined) throw new InputError(`${where}: meta_info.routed_experts is a flat int32 array without shape: give --config (num_hidden_layers, num_experts_per_tok) or --num-layers and --top-k`);
        const output = parseIntArray(where, 'output_ids', obj.output_ids ?? []);
        const P = typeof mi.prompt_tokens === 'number' ? mi.prompt_tokens : undefined;
        const input = obj.input_ids !== undefined ? parseIntArray(where, 'input_ids', obj.input_ids) : null;
        const Pn = input ? input.length : P;
        if (Pn === undefined || !Number.isSafeInteger(Pn) || Pn < 0 || Pn > LIMITS.positions) throw new InputError(`${where}: meta_info.prompt_tokens must be a count in 0..${LIMITS.positions}`);
        if (input && P !== undefined && P !== input.length) throw new InputError(`${where}: input_ids has ${input.length} tokens but meta_info.prompt_tokens is ${P}`);
        const dtype = typeof mi.routed_experts_dtype === 'string' ? mi.routed_experts_dtype : 'int32';
        const data = decodeInts(where, 'meta_info.routed_experts', b64, dtype);
        if (data.length % (L * K) !== 0) throw new InputError(`${where}: meta_info.routed_experts has ${data.length} ids, not a multiple of ${L} layers x top-${K}`);
        const T = data.length / (L * K);
        checkTokens(where, T, Pn, output.length, ` when the flat array is read as [tokens, ${L} layers, top-${K}]: do --config / --num-layers / --top-k match the model?`);
        if (T === 0) continue;
        const re = { data, T, L, K };
        const axis = layerAxis(where, re, ctx);
        const ids = new Int32Array(T).fill(-1);
        if (input) ids.set(input.subarray(0, Math.min(Pn, T)));
        if (T > Pn) ids.set(output.subarray(0, T - Pn), Pn);
        if (!input) ctx.notes.add('SGLang responses carry no prompt ids: prompt tokens have token -1 (add "input_ids" to each line to name them)');
        const rid = mi.id ?? obj.rid;
        const source = `${where}${rid !== undefined ? ` request ${String(rid)}` : ''}${Array.isArray(v) && v.length > 1 ? ` completion ${i}` : ''}`;
        yield* completionRecords(where, where, source, typeof obj.text === 'string' ? obj.text : '', ids, Pn, re, axis, {}, typeof obj.domain === 'string' ? obj.domain : null);
      }
    }
  }
}
