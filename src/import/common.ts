import { InputError } from '../util/errors.js';

/** A JSON nested list of integers with a fixed shape, flattened (row-major); values must fit int32. */
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
        if (typeof y !== 'number' || !Number.isInteger(y) || Math.abs(y) > 2147483647) {
          idx[d] = i;
          throw new InputError(`${where}: ${name}[${at(d + 1)}] = ${JSON.stringify(y)} is not a 32-bit integer`);
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
