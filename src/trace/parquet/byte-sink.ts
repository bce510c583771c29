/** A growable byte buffer: pages and footers are built in one and handed out as a view. */
export class ByteSink {
  buf: Uint8Array;
  length = 0;

  constructor(capacity = 1 << 16) {
    this.buf = new Uint8Array(capacity);
  }

  /** Room for `n` more bytes; returns the offset to write them at (the caller advances `length`). */
  reserve(n: number): number {
    const need = this.length + n;
    if (need > this.buf.length) {
      const b = new Uint8Array(Math.max(need, 2 * this.buf.length));
      b.set(this.buf.subarray(0, this.length));
      this.buf = b;
    }
    return this.length;
  }

  byte(v: number): void {
    const o = this.reserve(1);
    this.buf[o] = v;
    this.length = o + 1;
  }

  /** Unsigned LEB128 of a non-negative integer below 2^53. */
  varint(v: number): void {
    const o = this.reserve(10);
    let i = o;
    while (v >= 128) {
      this.buf[i++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[i++] = v;
    this.length = i;
  }

  u32le(v: number): void {
    const o = this.reserve(4);
    const b = this.buf;
    b[o] = v & 255;
    b[o + 1] = (v >>> 8) & 255;
    b[o + 2] = (v >>> 16) & 255;
    b[o + 3] = (v >>> 24) & 255;
    this.length = o + 4;
  }

  append(b: Uint8Array): void {
    const o = this.reserve(b.length);
    this.buf.set(b, o);
    this.length = o + b.length;
  }

  /** A view of the bytes written so far (valid until the next write or reset). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}
