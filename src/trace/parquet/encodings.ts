import type { ByteSink } from './byte-sink.js';

/**
 * The Parquet value encodings the routing files use
 * (https://parquet.apache.org/docs/file-format/data-pages/encodings/): the RLE / bit-packing
 * hybrid (levels and dictionary indices) and DELTA_BINARY_PACKED (sorted integer columns).
 * Written by hand because the general writers available to Node (DuckDB's appender and COPY,
 * hyparquet-writer) cost 10-40x more per row than the import around them; these loops run at a
 * few ns per value.
 */


/** Bits needed for values 0..max (at least 1: some readers reject width 0). */
export function bitWidth(max: number): number {
  return max <= 0 ? 1 : 32 - Math.clz32(max);
}

/**
 * `count` values of a[from..], each `width` bits (0 < width <= 32, values < 2^width), packed
 * LSB first into whole groups of 8 (the last group padded with zeros).
 */
export function bitPack(out: ByteSink, a: Int32Array, from: number, count: number, width: number): void {
  const full = count >> 3;
  const o0 = out.reserve(((count + 7) >> 3) * width);
  let o = width <= 8 ? packNarrow(out.buf, o0, a, from, full, width) : packWide(out.buf, o0, a, from, full * 8, width);
  if (count & 7) {
    // the last group, padded with zeros
    const last = new Int32Array(8);
    last.set(a.subarray(from + full * 8, from + count));
    o = width <= 8 ? packNarrow(out.buf, o, last, 0, 1, width) : packWide(out.buf, o, last, 0, 8, width);
  }
  out.length = o;
}

/** Groups of 8 values of at most 8 bits: each half-group fits one 32-bit word (the ids and levels). */
function packNarrow(buf: Uint8Array, o: number, a: Int32Array, i: number, groups: number, w: number): number {
  const half = 4 * w;
  for (let g = 0; g < groups; g++, i += 8) {
    const lo = a[i] | (a[i + 1] << w) | (a[i + 2] << (2 * w)) | (a[i + 3] << (3 * w));
    const hi = a[i + 4] | (a[i + 5] << w) | (a[i + 6] << (2 * w)) | (a[i + 7] << (3 * w));
    // the group's 8w bits: lo's 4w, then hi's 4w
    const w0 = half === 32 ? lo : lo | (hi << half);
    const w1 = half === 32 ? hi : hi >>> (32 - half);
    buf[o] = w0;
    if (w > 1) buf[o + 1] = w0 >>> 8;
    if (w > 2) buf[o + 2] = w0 >>> 16;
    if (w > 3) buf[o + 3] = w0 >>> 24;
    if (w > 4) buf[o + 4] = w1;
    if (w > 5) buf[o + 5] = w1 >>> 8;
    if (w > 6) buf[o + 6] = w1 >>> 16;
    if (w > 7) buf[o + 7] = w1 >>> 24;
    o += w;
  }
  return o;
}

/** `count` (a multiple of 8) values of 9-32 bits, through a 32-bit accumulator. */
function packWide(buf: Uint8Array, o: number, a: Int32Array, from: number, count: number, w: number): number {
  let acc = 0, bits = 0;
  for (let i = from, end = from + count; i < end; i++) {
    const v = a[i];
    acc |= v << bits;
    bits += w;
    if (bits >= 32) {
      buf[o] = acc;
      buf[o + 1] = acc >>> 8;
      buf[o + 2] = acc >>> 16;
      buf[o + 3] = acc >>> 24;
      o += 4;
      bits -= 32;
      acc = bits > 0 ? v >>> (w - bits) : 0;
    }
  }
  // 8 values of w bits end on a byte boundary
  for (; bits > 0; bits -= 8, acc >>>= 8) buf[o++] = acc;
  return o;
}

/** Is a[i..i+8) one value? */
function runOf8(a: Int32Array, i: number, n: number): boolean {
  if (i + 8 > n) return false;
  const v = a[i];
  for (let j = i + 1; j < i + 8; j++) if (a[j] !== v) return false;
  return true;
}

/**
 * The RLE / bit-packing hybrid of a[0..n) at `width` bits: runs of 8 or more equal values as RLE
 * runs, the rest bit-packed in runs of up to 63 groups of 8 (a one-byte header, as writers emit).
 */
export function rleHybrid(out: ByteSink, a: Int32Array, n: number, width: number): void {
  const valueBytes = (width + 7) >> 3;
  let i = 0;
  while (i < n) {
    const v = a[i];
    let j = i + 1;
    while (j < n && a[j] === v) j++;
    if (j - i >= 8 || j === n) {
      out.varint((j - i) * 2);
      for (let b = 0, x = v >>> 0; b < valueBytes; b++, x >>>= 8) out.byte(x & 255);
      i = j;
      continue;
    }
    const start = i;
    let groups = 0;
    do {
      i += 8;
      groups++;
    } while (i < n && groups < 63 && !runOf8(a, i, n));
    out.varint(groups * 2 + 1);
    bitPack(out, a, start, Math.min(i, n) - start, width);
    if (i > n) i = n;
  }
}

/** One RLE run: `count` copies of `value` (levels that never change within a page). */
export function rleRun(out: ByteSink, value: number, count: number, width: number): void {
  if (count === 0) return;
  out.varint(count * 2);
  for (let b = 0, x = value; b < (width + 7) >> 3; b++, x >>>= 8) out.byte(x & 255);
}

const BLOCK = 128, MINIBLOCKS = 4, MINI = BLOCK / MINIBLOCKS;

/**
 * DELTA_BINARY_PACKED of a[0..n): blocks of 128 deltas in 4 miniblocks of 32. For columns whose
 * neighbouring values differ by less than 2^31 (sample, pos, layer: sorted, non-negative int32),
 * so no delta wraps. A sorted column costs about nothing: most miniblocks are 0 bits wide.
 */
export function deltaBinaryPacked(out: ByteSink, a: Int32Array, n: number, scratch: Int32Array): void {
  out.varint(BLOCK);
  out.varint(MINIBLOCKS);
  out.varint(n);
  out.varint(n > 0 ? zigzag64(a[0]) : 0);
  const deltas = scratch; // BLOCK entries: each delta minus the block's least, 0..2^32-1 (as int32 bits)
  for (let s = 1; s < n; s += BLOCK) {
    const m = Math.min(BLOCK, n - s);
    let min = Infinity, max = -Infinity;
    for (let j = 0, prev = a[s - 1]; j < m; j++) {
      const x = a[s + j], d = x - prev;
      prev = x;
      if (d < min) min = d;
      if (d > max) max = d;
    }
    if (!(min >= -2147483648 && max <= 2147483647)) throw new Error('deltaBinaryPacked: delta outside int32');
    out.varint(zigzag64(min));
    const widthsAt = out.reserve(MINIBLOCKS);
    out.length += MINIBLOCKS;
    if (min === max) {
      // one step throughout (a run of positions, or of one sample): every miniblock 0 bits wide
      for (let b = 0; b < MINIBLOCKS; b++) out.buf[widthsAt + b] = 0;
      continue;
    }
    for (let j = 0; j < m; j++) deltas[j] = a[s + j] - a[s + j - 1] - min;
    for (let j = m; j < BLOCK; j++) deltas[j] = 0;
    for (let b = 0; b < MINIBLOCKS; b++) {
      if (b * MINI >= m) {
        out.buf[widthsAt + b] = 0; // unneeded miniblock: its width byte stays, no data
        continue;
      }
      let bits = 0;
      for (let j = b * MINI; j < (b + 1) * MINI; j++) bits |= deltas[j];
      const w = 32 - Math.clz32(bits);
      out.buf[widthsAt + b] = w;
      if (w > 0) bitPack(out, deltas, b * MINI, MINI, w);
    }
  }
}

/** zigzag of an integer below 2^52 in magnitude, as an unsigned number (varints of i64 values). */
function zigzag64(v: number): number {
  return v >= 0 ? 2 * v : -2 * v - 1;
}
