import { InputError } from '../../util/errors.js';
import { flatInts } from '../common.js';
import { parseIntArray } from '../modality.js';
import type { ReaderContext } from '../options.js';
import { readJsonl } from '../lines.js';
import type { ImportRecord } from '../records.js';
import { IntTensor } from '../json-ints.js';

/**
 * OLMoE's routing analysis JSONL (scripts/run_moe_analysis.py): one line per 2048-token window,
 * `{"input_ids": [T], "predicted_token_ids": [T], "exp_ids": [T][K][L]}` where exp_ids[t][j][l] is
 * the j-th highest-logit expert of token t in MoE layer l (np.argsort(-logits)[:, :K], stacked
 * on the last axis): ids are ranked, slot 0 is the top-1; no gate values.
 */
export async function* readOlmoe(inputs: string[], ctx: ReaderContext): AsyncGenerator<ImportRecord> {
  let L0: number | null = null;
  let first = '';
  for (const file of inputs) {
    for await (const { where, obj } of readJsonl(file, { intTensors: true })) {
      if (obj.input_ids === undefined) throw new InputError(`${where}: missing "input_ids"`);
      if (obj.exp_ids === undefined) throw new InputError(`${where}: missing "exp_ids"`);
      const ids = parseIntArray(where, 'input_ids', obj.input_ids);
      const ex = expIdsByLayer(where, obj.exp_ids);
      const { T: Tr, K, L } = ex;
      if (Tr === 0) continue;
      if (L0 === null) {
        L0 = L;
        first = where;
      } else if (L !== L0) throw new InputError(`${where}: layers disagree: exp_ids has ${L} layers but ${first} has ${L0}`);
      if (ids.length !== Tr && ctx.opts.rules.placeholderId === undefined) throw new InputError(`${where}: input_ids has ${ids.length} tokens but exp_ids has ${Tr}`);
      const hints = {
        mmTokenTypeIds: obj.mm_token_type_ids !== undefined ? parseIntArray(where, 'mm_token_type_ids', obj.mm_token_type_ids) : undefined,
        imageMask: obj.image_mask !== undefined ? parseIntArray(where, 'image_mask', obj.image_mask) : undefined,
      };
      const domain = typeof obj.domain === 'string' ? obj.domain : null;
      yield { kind: 'sample', key: where, where, rows: Tr, ids, hints, source: where, domain };
      for (let l = 0; l < L; l++) {
        yield { kind: 'layer', key: where, where: `${where}: exp_ids[:, :, ${l}]`, layer: l, layerIndex: 'moe', ids: { data: ex.layers[l], K, weights: null, order: 'ranked' } };
      }
      yield { kind: 'end', key: where, where };
    }
  }
}

/**
 * exp_ids [T][K][L] as one T*K array per layer, in one pass over the nested lists. Anything
 * irregular goes through flatInts, which names what is wrong.
 */
function expIdsByLayer(where: string, v: unknown): { T: number; K: number; L: number; layers: Int32Array[] } {
  if (v instanceof IntTensor) {
    if (v.shape.length === 3 && v.shape.every((d) => d > 0)) return byLayer(v.data, v.shape[0], v.shape[1], v.shape[2]);
    v = v.toNested(); // the paths below name what is wrong
  }
  const fast = expIdsFast(v);
  if (fast) return fast;
  const ex = flatInts(where, 'exp_ids', v, [null, null, null]);
  const [T, K, L] = ex.shape;
  return byLayer(ex.data, T, K, L);
}

/** data [T][K][L] as one T*K array per layer. */
function byLayer(data: Int32Array, T: number, K: number, L: number): { T: number; K: number; L: number; layers: Int32Array[] } {
  const layers = Array.from({ length: L }, () => new Int32Array(T * K));
  splitLastAxis(data, T * K, L, layers);
  return { T, K, L, layers };
}

/**
 * out[l][i] = data[i * L + l], a block of 256 i at a time, layer by layer within it: the block's
 * data stays in cache, and the stores go to one array at a time (one pass writing all L arrays at
 * once, 64 KB apart, thrashed the cache's sets: 1.7x slower). A loop of its own (util/int-scan.ts).
 */
function splitLastAxis(data: Int32Array, n: number, L: number, out: Int32Array[]): void {
  const B = 256;
  for (let i0 = 0; i0 < n; i0 += B) {
    const i1 = Math.min(n, i0 + B);
    for (let l = 0; l < L; l++) {
      const o = out[l];
      for (let i = i0, s = i0 * L + l; i < i1; i++, s += L) o[i] = data[s];
    }
  }
}

function expIdsFast(v: unknown): { T: number; K: number; L: number; layers: Int32Array[] } | null {
  if (!Array.isArray(v) || v.length === 0 || !Array.isArray(v[0]) || v[0].length === 0 || !Array.isArray(v[0][0]) || v[0][0].length === 0) return null;
  const T = v.length;
  const K = (v[0] as unknown[]).length;
  const L = (v[0][0] as unknown[]).length;
  const layers = Array.from({ length: L }, () => new Int32Array(T * K));
  for (let t = 0; t < T; t++) {
    const row = v[t];
    if (!Array.isArray(row) || row.length !== K) return null;
    for (let j = 0; j < K; j++) {
      const a = row[j];
      if (!Array.isArray(a) || a.length !== L) return null;
      const o = t * K + j;
      for (let l = 0; l < L; l++) {
        const y = a[l];
        if (typeof y !== 'number' || !Number.isInteger(y) || Math.abs(y) > 2147483647) return null;
        layers[l][o] = y;
      }
    }
  }
  return { T, K, L, layers };
}
