/**
 * Scans of a whole integer array, each a function of its own. V8 optimizes a function that runs a
 * loop once per call in the middle of that loop (on-stack replacement) and then deoptimizes it at
 * the code after the loop, which has not run yet: call after call, a batch's loops would run
 * unoptimized. A small function that is nothing but its loop is optimized once and stays so.
 */

/** The first index whose value is outside lo..hi, or -1. */
export function firstOutside(v: Int32Array, lo: number, hi: number): number {
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!(x >= lo && x <= hi)) return i;
  }
  return -1;
}

/** The greatest byte, or 0 for none. */
export function maxByte(v: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) if (v[i] > m) m = v[i];
  return m;
}

/** The greatest value, or -1 for none (and for all-negative arrays). */
export function maxOf(v: Int32Array): number {
  let m = -1;
  for (let i = 0; i < v.length; i++) if (v[i] > m) m = v[i];
  return m;
}
