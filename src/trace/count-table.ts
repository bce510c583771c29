/**
 * Counts per pair of int32 keys (a >= 0) in an open-addressing hash table over one Int32Array:
 * several times faster than a Map for the writer's per-row counting (no boxed keys, no allocation
 * per entry). A slot is four words side by side (a + 1, b, count low 32 bits, count high bits), so
 * a lookup touches one cache line; the table grows from a few thousand slots as entries arrive
 * (the per-token counts of a capture fit in a few hundred kilobytes, where they stay in cache).
 */
const W = 4; // words per slot
const EMPTY = 0; // word 0 holds a + 1

/** The first slot to probe for (a, b). */
function slot(a: number, b: number, mask: number): number {
  const h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0;
  return (h ^ (h >>> 15)) & mask;
}

export class CountTable {
  private cap: number;
  private t: Int32Array;
  size = 0;

  constructor(capacity = 1 << 12) {
    if (!(capacity >= 2 && (capacity & (capacity - 1)) === 0)) throw new Error(`CountTable: capacity ${capacity} is not a power of two`);
    this.cap = capacity;
    this.t = new Int32Array(capacity * W);
  }

  add(a: number, b: number, by = 1): void {
    const mask = this.cap - 1;
    const t = this.t;
    const key = a + 1;
    let h = slot(a, b, mask);
    for (;;) {
      const s = h * W;
      const k = t[s];
      if (k === key && t[s + 1] === b) {
        const lo = (t[s + 2] >>> 0) + by; // by < 2^32
        t[s + 2] = lo | 0;
        if (lo > 0xffffffff) t[s + 3] += Math.floor(lo / 0x100000000);
        return;
      }
      if (k === EMPTY) {
        t[s] = key;
        t[s + 1] = b;
        t[s + 2] = by % 0x100000000 | 0;
        t[s + 3] = Math.floor(by / 0x100000000);
        if (++this.size * 2 > this.cap) this.grow();
        return;
      }
      h = (h + 1) & mask;
    }
  }

  /**
   * add(a[i], b[i]) for i in [from, to). (Loading a block's slots ahead paid while the table
   * outgrew the cache; the writer now keeps it at 16k entries, where that pass only costs.)
   */
  addAll(a: Int32Array, b: Int32Array, from: number, to: number): void {
    for (let i = from; i < to; i++) this.add(a[i], b[i]);
  }

  /** Each entry once, in slot order. */
  forEach(fn: (a: number, b: number, n: number) => void): void {
    const t = this.t;
    for (let s = 0; s < t.length; s += W) if (t[s] !== EMPTY) fn(t[s] - 1, t[s + 1], t[s + 3] * 0x100000000 + (t[s + 2] >>> 0));
  }

  clear(): void {
    this.t.fill(0);
    this.size = 0;
  }

  private grow(): void {
    const old = this.t;
    this.cap *= 2;
    this.t = new Int32Array(this.cap * W);
    this.size = 0;
    for (let s = 0; s < old.length; s += W) {
      if (old[s] !== EMPTY) this.add(old[s] - 1, old[s + 1], old[s + 3] * 0x100000000 + (old[s + 2] >>> 0));
    }
  }
}
