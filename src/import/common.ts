import { InputError } from '../util/errors.js';
import { resolveTokens, type ModalityHints, type ResolvedTokens } from './modality.js';
import type { ImportContext } from './options.js';

/** Modality and token column of one sample: its own ids/hints, or the side file's line for it. */
export async function resolveSample(ctx: ImportContext, where: string, sample: number, rows: number, ids: Int32Array | null, hints: ModalityHints = {}): Promise<ResolvedTokens> {
  if (ctx.side) {
    const e = await ctx.side.get(sample, where);
    return resolveTokens(`${e.where} (for ${where})`, rows, ids ?? e.ids, { ...e.hints, ...definedOnly(hints) }, ctx.opts.rules);
  }
  return resolveTokens(where, rows, ids, hints, ctx.opts.rules);
}

function definedOnly(h: ModalityHints): ModalityHints {
  const o: ModalityHints = {};
  if (h.mmTokenTypeIds) o.mmTokenTypeIds = h.mmTokenTypeIds;
  if (h.imageMask) o.imageMask = h.imageMask;
  if (h.modality) o.modality = h.modality;
  return o;
}

export function iota(n: number, start = 0): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = start + i;
  return a;
}

/** A JSON nested list of integers with a fixed shape, flattened (row-major). */
export function flatInts(where: string, name: string, v: unknown, shape: (number | null)[]): { data: Int32Array; shape: number[] } {
  const dims: number[] = [];
  let cur: unknown = v;
  for (let d = 0; d < shape.length; d++) {
    if (!Array.isArray(cur)) throw new InputError(`${where}: ${name} must be a ${shape.length}-d nested list`);
    dims.push(cur.length);
    if (shape[d] !== null && cur.length !== shape[d]) throw new InputError(`${where}: ${name} has ${cur.length} entries on axis ${d}, expected ${shape[d]}`);
    cur = cur[0];
    if (cur === undefined) break;
  }
  while (dims.length < shape.length) dims.push(0);
  const total = dims.reduce((a, b) => a * b, 1);
  const data = new Int32Array(total);
  let o = 0;
  const idx: number[] = new Array(shape.length).fill(0);
  const at = (d: number) => idx.slice(0, d).join('][');
  const walk = (x: unknown, d: number) => {
    if (!Array.isArray(x) || x.length !== dims[d]) {
      throw new InputError(`${where}: ${name}[${at(d)}] has ${Array.isArray(x) ? x.length : 'no'} entries, expected ${dims[d]} (ragged or wrong shape)`);
    }
    if (d === shape.length - 1) {
      for (let i = 0; i < x.length; i++) {
        const y = x[i];
        if (typeof y !== 'number' || !Number.isInteger(y)) {
          idx[d] = i;
          throw new InputError(`${where}: ${name}[${at(d + 1)}] = ${JSON.stringify(y)} is not an integer`);
        }
        data[o++] = y;
      }
      return;
    }
    for (let i = 0; i < x.length; i++) {
      idx[d] = i;
      walk(x[i], d + 1);
    }
  };
  walk(v, 0);
  return { data, shape: dims };
}
