import { InputError } from '../../util/errors.js';
import type { ReaderContext } from '../options.js';
import type { ImportRecord, LayerIndex } from '../records.js';
import { LITTLE_ENDIAN } from '../../util/endian.js';
import { decodeBase64Bytes } from '../../util/base64.js';
import { StringBytes } from '../json-ints.js';

/**
 * What vLLM and SGLang share: per request (completion), an integer array [tokens, layers, top_k]
 * of the experts every token went to, over the prompt and the generated tokens (the last
 * generated token never ran, so there may be one token less). The layer axis is the model's
 * num_hidden_layers (dense layers hold placeholder ids: zeros, or -1 in SGLang-JAX) or its MoE
 * layers. Neither engine saves gate weights, and the top-k order depends on the kernel
 * (vLLM's topk_softmax and SGLang's fused top-k emit descending order; the grouped / biased top-k
 * of DeepSeek-style models uses torch.topk(sorted=False)), so ids are recorded as unranked unless
 * --expert-order ranked says otherwise.
 */
export interface RoutedArray {
  data: Int32Array;
  T: number;
  L: number;
  K: number;
}

/** [axis index, layer, how the layer is numbered] of the axis entries that are MoE layers. */
export function layerAxis(where: string, re: RoutedArray, ctx: ReaderContext): [number, number, LayerIndex][] {
  const { opts } = ctx;
  const moe = opts.moeLayers ?? opts.model?.moeLayers;
  const numLayers = opts.numLayers ?? opts.model?.numLayers;
  const { data, T, L, K } = re;
  const slice = (a: number, f: (v: number) => boolean) => {
    for (let t = 0; t < T; t++) for (let j = 0; j < K; j++) if (!f(data[(t * L + a) * K + j])) return false;
    return true;
  };
  if (moe) {
    if (L === moe.length) return moe.map((_, a) => [a, a, 'moe']);
    if (numLayers !== undefined && L === numLayers) {
      const isMoe = new Set(moe);
      for (let a = 0; a < L; a++) {
        if (!isMoe.has(a) && !slice(a, (v) => v === 0 || v === -1)) throw new InputError(`${where}: routed_experts[:, ${a}, :] has expert ids, but the config says decoder layer ${a} is dense`);
      }
      return moe.map((l) => [l, l, 'decoder']);
    }
    throw new InputError(`${where}: routed_experts has ${L} layers but the model has ${moe.length} MoE layers${numLayers !== undefined ? ` of ${numLayers}` : ''}`);
  }
  if (numLayers !== undefined && L !== numLayers) throw new InputError(`${where}: routed_experts has ${L} layers but the model has ${numLayers}`);
  const out: [number, number, LayerIndex][] = [];
  for (let a = 0; a < L; a++) {
    if (T > 0 && slice(a, (v) => v === -1)) {
      ctx.notes.add(`layer ${a}: expert ids all -1 (a dense layer's placeholder) dropped`);
      continue;
    }
    if (T > 0 && slice(a, (v) => v === 0)) {
      if (K > 1) {
        // K > 1: no router picks one expert twice, so this is a dense layer's placeholder
        ctx.notes.add(`layer ${a}: all-zero expert ids (a dense layer's placeholder) dropped`);
        continue;
      }
      throw new InputError(
        `${where}: routed_experts[:, ${a}, :] sends every token to expert 0: with top-1 this is either a dense layer's placeholder or a real choice; give --config (or --moe-layers and --num-layers) to say which layers are MoE`,
      );
    }
    out.push([a, a, 'decoder']);
  }
  return out;
}

/**
 * routed[:, a, :] for each axis entry a of a [T, L, K] array, each contiguous: one pass over the
 * array in its order (a pass per layer read it with a stride; slower), in a plain function (loops
 * in generators run slower, and V8 inlines a helper called from one).
 */
function layerSlices(data: Int32Array, T: number, L: number, K: number, axes: Int32Array): Int32Array[] {
  const out = Array.from(axes, () => new Int32Array(T * K));
  const A = axes.length;
  for (let t = 0; t < T; t++) {
    const row = t * L * K, dst = t * K;
    for (let x = 0; x < A; x++) {
      const li = out[x];
      for (let j = 0, src = row + axes[x] * K; j < K; j++) li[dst + j] = data[src + j];
    }
  }
  return out;
}

/** The records of one completion: its sample, one record per MoE layer, its end. */
export function* completionRecords(key: string, where: string, source: string, text: string, ids: Int32Array, P: number, re: RoutedArray, axis: [number, number, LayerIndex][], hints: { mmTokenTypeIds?: Int32Array; imageMask?: Int32Array }, domain: string | null): Generator<ImportRecord> {
  const { T, L, K, data } = re;
  yield { kind: 'sample', key, where, rows: T, ids, hints, text, source, domain, prefill: P };
  const slices = layerSlices(data, T, L, K, Int32Array.from(axis, ([a]) => a));
  for (let x = 0; x < axis.length; x++) {
    const [a, layer, layerIndex] = axis[x];
    yield { kind: 'layer', key, where: `${where}: routed_experts[:, ${a}, :]`, layer, layerIndex, ids: { data: slices[x], K, weights: null, order: 'unranked' } };
    slices[x] = EMPTY; // handed on: not held here while the next records are read
  }
  yield { kind: 'end', key, where };
}

const EMPTY = new Int32Array(0);

/** Token count check shared by vLLM and SGLang: prompt + output, or one less. */
export function checkTokens(where: string, T: number, P: number, O: number, hint = ''): void {
  if (T !== P + O && !(O > 0 && T === P + O - 1)) {
    throw new InputError(`${where}: routed_experts has ${T} tokens but the request has ${P} prompt + ${O} output tokens (expected ${P + O}${O > 0 ? ` or ${P + O - 1}` : ''})${hint}`);
  }
}

/** The text of a JSON string read as bytes; a control character in it means the line is not JSON. */
export function stringOf(where: string, s: StringBytes): string {
  const t = s.text();
  if (t === null) throw new InputError(`${where}: not valid JSON (a control character inside a string)`);
  return t;
}

/** Bytes per value of the integer dtypes the engines write. */
export const INT_WIDTH: Readonly<Record<string, number>> = { int16: 2, int32: 4, int64: 8, uint8: 1, int8: 1, uint16: 2 };

/** Decoded base64 of StringBytes, reused from request to request (the ints are copied out of it). */
let decoded = new Uint8Array(0);

/** Canonical base64 decoded from its bytes (into the reused `decoded`); anything else as a string, by Node's rules. */
function bytesOfText(where: string, b64: StringBytes): Uint8Array {
  const most = Math.ceil(b64.bytes.length / 4) * 3;
  if (decoded.length < most) decoded = new Uint8Array(Math.max(most, 2 * decoded.length));
  const got = decodeBase64Bytes(b64.bytes, decoded);
  return got >= 0 ? decoded.subarray(0, got) : Buffer.from(stringOf(where, b64), 'base64');
}

/** The integers of the last decodeInts(..., true), reused from request to request. */
let ints = new Int32Array(0);

/**
 * Little-endian integers from base64 (a string, or the bytes of one), never wrapped: a value
 * outside int32 is an error. `reuse`: into an array that the next such call overwrites (a
 * request's ~1 MB, which the reader thread otherwise left to its rare collections).
 */
export function decodeInts(where: string, name: string, b64: string | StringBytes, dtype: string, reuse = false): Int32Array {
  const width = INT_WIDTH[dtype];
  if (!width) throw new InputError(`${where}: ${name} dtype ${JSON.stringify(dtype)} is not an integer type`);
  const buf = b64 instanceof StringBytes ? bytesOfText(where, b64) : Buffer.from(b64, 'base64');
  if (buf.length % width !== 0) throw new InputError(`${where}: ${name} has ${buf.length} bytes, not a whole number of ${dtype} values (truncated?)`);
  const n = buf.length / width;
  if (reuse && ints.length < n) ints = new Int32Array(Math.max(n, 2 * ints.length));
  const data = reuse ? ints.subarray(0, n) : new Int32Array(n);
  if (LITTLE_ENDIAN && width <= 4) {
    // typed-array views read the bytes in the machine's order (little-endian here, as the files are);
    // a large decode has a buffer of its own (aligned), a small one may sit in Node's pool at any
    // offset: then an aligned copy first
    const aligned = buf.byteOffset % width === 0 ? buf : Uint8Array.from(buf);
    const view = { int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array }[dtype as 'int8'];
    data.set(new view(aligned.buffer, aligned.byteOffset, n));
    return data;
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  for (let i = 0; i < n; i++) {
    if (width === 8) {
      const v = dv.getBigInt64(8 * i, true);
      if (v > 2147483647n || v < -2147483648n) throw new InputError(`${where}: ${name}[${i}] = ${v} does not fit a 32-bit expert id`);
      data[i] = Number(v);
    } else data[i] = width === 2 ? (dtype === 'uint16' ? dv.getUint16(2 * i, true) : dv.getInt16(2 * i, true)) : width === 4 ? dv.getInt32(4 * i, true) : dtype === 'int8' ? dv.getInt8(i) : dv.getUint8(i);
  }
  return data;
}
