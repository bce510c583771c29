/**
 * Counts per pair of int32 keys in an open-addressing hash table over typed arrays: several times
 * faster than a Map for the writer's per-row counting (no boxed keys, no allocation per entry).
 */
export class CountTable {
  private cap: number;
  private a: Int32Array;
  private b: Int32Array;
  private n: Float64Array;
  private used: Uint8Array;
  size = 0;

  constructor(capacity = 1 << 16) {
    this.cap = capacity;
    this.a = new Int32Array(capacity);
    this.b = new Int32Array(capacity);
    this.n = new Float64Array(capacity);
    this.used = new Uint8Array(capacity);
  }

  add(a: number, b: number, by = 1): void {
    const mask = this.cap - 1;
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 0;
    h = (h ^ (h >>> 15)) & mask;
    for (;;) {
      if (!this.used[h]) {
        this.used[h] = 1;
        this.a[h] = a;
        this.b[h] = b;
        this.n[h] = by;
        if (++this.size * 2 > this.cap) this.grow();
        return;
      }
      if (this.a[h] === a && this.b[h] === b) {
        this.n[h] += by;
        return;
      }
      h = (h + 1) & mask;
    }
  }

  /** Each entry once, in slot order. */
  forEach(fn: (a: number, b: number, n: number) => void): void {
    for (let h = 0; h < this.cap; h++) if (this.used[h]) fn(this.a[h], this.b[h], this.n[h]);
  }

  clear(): void {
    this.used.fill(0);
    this.size = 0;
  }

  private grow(): void {
    const { a, b, n, used, cap } = this;
    this.cap = cap * 2;
    this.a = new Int32Array(this.cap);
    this.b = new Int32Array(this.cap);
    this.n = new Float64Array(this.cap);
    this.used = new Uint8Array(this.cap);
    this.size = 0;
    for (let h = 0; h < cap; h++) if (used[h]) this.add(a[h], b[h], n[h]);
  }
}
