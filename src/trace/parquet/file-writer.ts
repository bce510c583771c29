import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { VERSION } from '../../version.js';
import { ByteSink } from './byte-sink.js';
import { bitWidth, deltaBinaryPacked, rleHybrid, rleRun } from './encodings.js';
import { ThriftWriter } from './thrift.js';
import { LITTLE_ENDIAN } from '../../util/endian.js';
import type { FileRecord } from '../meta.js';

/**
 * A Parquet file writer (https://github.com/apache/parquet-format) for the few shapes moescope
 * writes: nullable INT32 / INT64 / FLOAT / DOUBLE / UTF8 / BYTE_ARRAY columns, 3-level LISTs of
 * INT32, FLOAT or BYTE_ARRAY, and LISTs of LISTs of INT32 (samples' image grids), uncompressed data pages v1 whose encodings do the work of compression, min/max
 * statistics on every column chunk, and type-defined column order in the footer. A file is a list
 * of leaves (one per column) that each write one row group's chunk from the caller's arrays, in
 * the order of the caller's row indices. Written by hand for speed: see encodings.ts.
 */

export const enum PType {
  INT32 = 1,
  INT64 = 2,
  FLOAT = 4,
  DOUBLE = 5,
  BYTE_ARRAY = 6,
}
const enum Enc {
  PLAIN = 0,
  PLAIN_DICTIONARY = 2,
  RLE = 3,
  DELTA_BINARY_PACKED = 5,
}
export const enum Conv {
  UTF8 = 0,
  LIST = 3,
  INT_16 = 16,
  INT_32 = 17,
  INT_64 = 18,
}
const OPTIONAL = 1, REPEATED = 2;
/** List pages hold about this many bytes of values. */
const LIST_PAGE_BYTES = 1 << 20;
const MAGIC = new TextEncoder().encode('PAR1');

type Stats = { min: Uint8Array; max: Uint8Array } | null;

/** A column chunk as the footer describes it. */
interface ChunkMeta {
  path: string[];
  type: PType;
  encodings: Enc[];
  numValues: number;
  offset: number; // of its first page
  dataPageOffset: number;
  dictPageOffset: number | null;
  size: number;
  stats: Stats;
  nulls: number;
}

/** A leaf of the schema and how one row group of it is written. */
export interface Leaf {
  name: string;
  list: boolean;
  /** With `list`: a LIST of LISTs (INTEGER[][]), the inner list named as the outer one. */
  listOfLists?: boolean;
  type: PType;
  conv: Conv | null;
  logical: 'int16' | 'int32' | 'int64' | 'string' | null;
  write(w: ChunkWriter, rows: Int32Array): void;
}

/**
 * Write `leaves` as a Parquet file at `path`: rows[0..n) in row groups of `rowGroupRows`, each
 * leaf reading row rows[i] of its arrays. Returns its size and SHA-256 (meta.json `files`).
 */
export function writeParquetFile(path: string, leaves: Leaf[], rows: Int32Array, rowGroupRows: number): FileRecord {
  const f = new ParquetFileWriter(path, leaves);
  try {
    for (let g = 0; g < rows.length; g += rowGroupRows) f.rowGroup(rows.subarray(g, Math.min(rows.length, g + rowGroupRows)));
    return f.finish();
  } finally {
    f.close();
  }
}

/**
 * A Parquet file written one row group at a time, for rows that arrive as a stream (the leaves'
 * arrays hold one row group, refilled by the caller between calls). Files written one after the
 * other share the thread's chunk writer; a file that stays open while others come and go
 * (samples.parquet through an import, beside the routing shards) takes its own (`ownChunkWriter`).
 */
export class ParquetFileWriter {
  private readonly fd: number;
  private readonly w: ChunkWriter;
  /** of the bytes as they are written: hashing the file afterwards read it back (a tenth of a large import's end) */
  private readonly hash = createHash('sha256');
  private readonly groups: { rows: number; chunks: ChunkMeta[] }[] = [];
  private rows = 0;
  private closed = false;

  constructor(path: string, private readonly leaves: Leaf[], opts: { ownChunkWriter?: boolean } = {}) {
    if (!LITTLE_ENDIAN) throw new Error('moescope writes Parquet on little-endian machines only');
    this.w = opts.ownChunkWriter ? new ChunkWriter() : (chunkWriter ??= new ChunkWriter());
    this.fd = openSync(path, 'w');
    try {
      this.w.begin(this.fd, this.hash);
      this.w.writeRaw(MAGIC);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** One row group: each leaf writes rows[i] of its arrays, in order. */
  rowGroup(rows: Int32Array): void {
    this.groups.push({ rows: rows.length, chunks: this.leaves.map((leaf) => this.w.chunk(leaf, rows)) });
    this.rows += rows.length;
  }

  /**
   * The footer, over the leaves `keep` selects: the chunks of a leaf left out stay in the file
   * unreferenced (readers go by the footer's offsets). Returns the file's size and SHA-256.
   */
  finish(keep: (leaf: Leaf) => boolean = () => true): FileRecord {
    const kept = this.leaves.flatMap((leaf, i) => (keep(leaf) ? [i] : []));
    const groups = this.groups.map((g) => ({ rows: g.rows, chunks: kept.map((i) => g.chunks[i]) }));
    const footer = fileMetaData(kept.map((i) => this.leaves[i]), groups, this.rows);
    this.w.writeRaw(footer);
    const tail = new ByteSink(8);
    tail.u32le(footer.length);
    tail.append(MAGIC);
    return { bytes: this.w.writeRaw(tail.bytes()), sha256: this.hash.digest('hex') };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/** The thread's chunk writer, reused from file to file. */
let chunkWriter: ChunkWriter | null = null;

/** col[rows[i]] for each i, into the writer's scratch. */
export function gatherInts(w: ChunkWriter, col: Int32Array | Int16Array | Uint16Array | Uint8Array, rows: Int32Array): Int32Array {
  const out = w.ints(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = col[rows[i]];
  return out;
}

/**
 * col[rows[i]] for each i, into the writer's scratch (a fresh array per chunk of the per-token
 * counts left tens of megabytes to the writer thread's rare collections at the end of a write).
 */
export function gatherDoubles(w: ChunkWriter, col: Float64Array, rows: Int32Array): Float64Array {
  const out = w.doubles(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = col[rows[i]]; // a loop: from() with a map calls back per value
  return out;
}

/**
 * Writes column chunks: pages go to `chunkBytes`, written to the file when the chunk is done;
 * page bodies are built in `body`. Its buffers are kept from chunk to chunk and file to file (one
 * writer per thread): allocating megabytes per file leaves the process's memory creeping up.
 */
export class ChunkWriter {
  private fd = -1;
  private offset = 0;
  private hash: Hash | null = null;
  private readonly chunkBytes = new ByteSink(1 << 20);
  private readonly body = new ByteSink(1 << 20);
  private scratchInts = new Int32Array(0);
  private scratchVals = new Float32Array(0);
  private scratchDoubles = new Float64Array(0);
  private scratchLevels = new Int32Array(0); // levels, then values, of a column with NULLs (the caller's values may be in scratchInts)
  private readonly deltaScratch = new Int32Array(128);
  private readonly dict = new IntDictionary();
  private readonly repCache = new Map<string, Uint8Array>();
  // the chunk being written
  private cur: ChunkMeta | null = null;

  /** Start a file (files are written one at a time, synchronously), its bytes hashed into `hash`. */
  begin(fd: number, hash: Hash): void {
    this.fd = fd;
    this.offset = 0;
    this.hash = hash;
  }

  /** Append b to the file; returns the file's size so far. */
  writeRaw(b: Uint8Array): number {
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
    this.hash!.update(b);
    return (this.offset += b.length);
  }

  ints(n: number): Int32Array {
    if (this.scratchInts.length < n) this.scratchInts = new Int32Array(Math.max(n, 2 * this.scratchInts.length));
    return this.scratchInts.subarray(0, n);
  }

  /** A column's doubles for one chunk (gatherDoubles), reused like ints(). */
  doubles(n: number): Float64Array {
    if (this.scratchDoubles.length < n) this.scratchDoubles = new Float64Array(Math.max(n, 2 * this.scratchDoubles.length));
    return this.scratchDoubles.subarray(0, n);
  }

  private nullScratch(n: number): Int32Array {
    if (this.scratchLevels.length < n) this.scratchLevels = new Int32Array(Math.max(n, 2 * this.scratchLevels.length));
    return this.scratchLevels.subarray(0, n);
  }

  private floats(n: number): Float32Array {
    if (this.scratchVals.length < n) this.scratchVals = new Float32Array(Math.max(n, 2 * this.scratchVals.length));
    return this.scratchVals.subarray(0, n);
  }

  chunk(leaf: Leaf, rows: Int32Array): ChunkMeta {
    this.chunkBytes.reset();
    const meta: ChunkMeta = {
      path: leaf.list ? [leaf.name, 'list', 'element', ...(leaf.listOfLists ? ['list', 'element'] : [])] : [leaf.name], type: leaf.type, encodings: [], numValues: 0,
      offset: this.offset, dataPageOffset: -1, dictPageOffset: null, size: 0, stats: null, nulls: 0,
    };
    this.cur = meta;
    leaf.write(this, rows);
    this.cur = null;
    meta.size = this.chunkBytes.length;
    meta.encodings = [...new Set(meta.encodings)].sort((a, b) => a - b);
    this.writeRaw(this.chunkBytes.bytes());
    return meta;
  }

  // ---- flat columns: definition levels (all 1: no NULLs), then the values ----

  /**
   * Sorted non-negative integers (sample, pos, layer) as DELTA_BINARY_PACKED; a chunk with a
   * negative value goes PLAIN instead, so that no delta leaves int32 (readers differ in how they
   * wrap).
   */
  deltaInts(v: Int32Array): void {
    if (this.intStats(v) < 0) return this.plainPage(v);
    const b = this.flatPageStart(v.length);
    deltaBinaryPacked(b, v, v.length, this.deltaScratch);
    this.dataPage(v.length, Enc.DELTA_BINARY_PACKED);
  }

  plainInts(v: Int32Array): void {
    this.intStats(v);
    this.plainPage(v);
  }

  plainDoubles(v: Float64Array): void {
    const [min, max] = doubleRange(v, Infinity, -Infinity);
    this.floatStats(min, max, doubleBytes);
    this.plainPage(v);
  }

  /** A flat page of the values' bytes as they are (PLAIN is little-endian, as this machine). */
  private plainPage(v: Int32Array | Float64Array): void {
    const b = this.flatPageStart(v.length);
    b.append(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    this.dataPage(v.length, Enc.PLAIN);
  }

  /** Integers against a dictionary of the chunk's distinct values, in order of appearance. */
  dictInts(v: Int32Array): void {
    const idx = this.dict.encode(v);
    const b = this.body;
    b.reset();
    b.append(new Uint8Array(this.dict.values.buffer, 0, 4 * this.dict.size));
    this.dictPage(this.dict.size);
    this.flatPageStart(v.length);
    const width = bitWidth(this.dict.size - 1);
    b.byte(width);
    rleHybrid(b, idx, v.length, width);
    this.intStats(v);
    this.dataPage(v.length, Enc.PLAIN_DICTIONARY);
  }

  /**
   * Text as codes into `names`, which is the dictionary (names no row uses cost a few bytes);
   * code -1 is NULL.
   */
  codedStrings(codes: Int32Array, names: readonly string[]): void {
    const n = codes.length;
    const nulls = countNegative(codes);
    this.cur!.nulls = nulls;
    const b = this.body;
    if (n > 0 && nulls === n) {
      // no value: levels only (a dictionary page of no use would be one more thing to read)
      b.reset();
      this.levels(() => rleRun(b, 0, n, 1));
      return this.dataPage(n, Enc.PLAIN);
    }
    b.reset();
    const bytes = names.map((s) => utf8.encode(s));
    for (const x of bytes) {
      b.u32le(x.length);
      b.append(x);
    }
    this.dictPage(names.length);
    // the values: all codes, or (with NULLs) the non-NULL ones after their definition levels
    let values = codes, count = n;
    if (nulls === 0) this.flatPageStart(n);
    else {
      const s = this.nullScratch(n);
      definedLevels(codes, s);
      b.reset();
      this.levels(() => rleHybrid(b, s, n, 1));
      count = keepNonNegative(codes, s);
      values = s;
    }
    const width = bitWidth(names.length - 1);
    b.byte(width);
    rleHybrid(b, values, count, width);
    // statistics over the names used (byte order, as Parquet compares BYTE_ARRAY)
    const used = markUsed(values, count, names.length);
    let min: Uint8Array | null = null, max: Uint8Array | null = null;
    used.forEach((u, c) => {
      if (!u) return;
      if (!min || compareBytes(bytes[c], min) < 0) min = bytes[c];
      if (!max || compareBytes(bytes[c], max) > 0) max = bytes[c];
    });
    if (min && max) this.cur!.stats = { min, max };
    this.dataPage(n, Enc.PLAIN_DICTIONARY);
  }

  /**
   * Integers below 2^53 in magnitude (counts) as INT64: DELTA_BINARY_PACKED when all are in
   * 0..2^31-1 (then the int32 encoding's bytes are the int64 ones: the same zigzag varints, deltas
   * of at most 32 bits), else PLAIN.
   */
  int64s(v: Float64Array): void {
    const n = v.length;
    const [min, max] = doubleRange(v, Infinity, -Infinity);
    if (n > 0) this.cur!.stats = { min: int64Bytes(min), max: int64Bytes(max) };
    if (min >= 0 && max < 2 ** 31) {
      const x = this.ints(n);
      for (let i = 0; i < n; i++) x[i] = v[i];
      deltaBinaryPacked(this.flatPageStart(n), x, n, this.deltaScratch);
      this.dataPage(n, Enc.DELTA_BINARY_PACKED);
    } else {
      const x = BigInt64Array.from(v, (c) => BigInt(c));
      this.flatPageStart(n).append(new Uint8Array(x.buffer));
      this.dataPage(n, Enc.PLAIN);
    }
  }

  private flatPageStart(n: number): ByteSink {
    const b = this.body;
    b.reset();
    this.levels(() => rleRun(b, 1, n, 1));
    return b;
  }

  // ---- list columns: repetition levels (0 starts a row), definition levels (3: an element, 0: a NULL list) ----

  /** Expert ids against the dictionary 0..E-1: an id is its own index. */
  expertLists(ids: Int16Array, rows: Int32Array, K: number, E: number): void {
    const b = this.body;
    b.reset();
    for (let e = 0; e < E; e++) b.u32le(e);
    this.dictPage(E);
    const width = bitWidth(E - 1);
    let min = 0x7fffffff, max = -0x80000000;
    for (const [r0, r1] of this.listPages(rows.length, 2 * K)) {
      const v = this.ints((r1 - r0) * K);
      gatherRows(v, ids, rows, r0, r1, K);
      [min, max] = intRange(v, min, max);
      this.listLevels(r1 - r0, K);
      b.byte(width);
      rleHybrid(b, v, v.length, width);
      this.dataPage(v.length, Enc.PLAIN_DICTIONARY);
    }
    if (rows.length) this.cur!.stats = { min: int32Bytes(min), max: int32Bytes(max) };
  }

  floatLists(vals: Float32Array, rows: Int32Array, W: number): void {
    let min = Infinity, max = -Infinity;
    for (const [r0, r1] of this.listPages(rows.length, 4 * W)) {
      const v = this.floats((r1 - r0) * W);
      gatherRows(v, vals, rows, r0, r1, W);
      [min, max] = floatRange(v, min, max);
      this.listLevels(r1 - r0, W);
      this.body.append(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      this.dataPage(v.length, Enc.PLAIN);
    }
    this.floatStats(min, max, floatBytes);
  }

  /** Float statistics (none when every value was NaN); zeros as -0 / +0, so that readers comparing with either sign include them (parquet.thrift). */
  private floatStats(min: number, max: number, bytes: (x: number) => Uint8Array): void {
    if (min <= max) this.cur!.stats = { min: bytes(min === 0 ? -0 : min), max: bytes(max === 0 ? 0 : max) };
  }

  /** Every row NULL (gates the producer did not record): one entry per row, at levels 0. */
  nullLists(n: number): void {
    this.body.reset();
    this.levels(() => rleRun(this.body, 0, n, 1));
    this.levels(() => rleRun(this.body, 0, n, 2));
    this.cur!.nulls = n;
    this.dataPage(n, Enc.PLAIN);
  }

  // ---- plain values with NULLs and nesting (samples.parquet, the aggregates): few rows, written as they are ----

  private readonly levelPage = new LevelPage();

  /** BYTE_ARRAY values (text as UTF-8, bytes as they are), NULL where null. No min/max: a value may be a whole document or image. */
  byteArrays(v: readonly (string | Uint8Array | null)[]): void {
    this.levelPages(v.length, 0, 1, (r, p) => {
      const x = v[r];
      if (x === null) return p.entry(0, 0);
      p.entry(0, 1);
      p.bytes(x);
    });
  }

  /** A 3-level LIST of BYTE_ARRAY per row. Definition: 0 NULL list, 1 empty list, 2 NULL element, 3 element. */
  byteArrayLists(v: readonly (readonly (string | Uint8Array | null)[] | null)[]): void {
    this.levelPages(v.length, 1, 3, (r, p) => {
      const list = v[r];
      if (list === null) return p.entry(0, 0);
      if (list.length === 0) return p.entry(0, 1);
      for (let i = 0; i < list.length; i++) {
        const x = list[i];
        p.entry(i === 0 ? 0 : 1, x === null ? 2 : 3);
        if (x !== null) p.bytes(x);
      }
    });
  }

  /**
   * A LIST of LISTs of INT32 per row (INTEGER[][]). Repetition: 0 starts a row, 1 an inner list, 2
   * continues one. Definition: 0 NULL list, 1 empty list, 2 NULL inner list, 3 empty inner list,
   * 4 NULL element, 5 element.
   */
  intListLists(v: readonly (readonly (readonly (number | null)[] | null)[] | null)[]): void {
    let min = Infinity, max = -Infinity;
    this.levelPages(v.length, 2, 5, (r, p) => {
      const outer = v[r];
      if (outer === null) return p.entry(0, 0);
      if (outer.length === 0) return p.entry(0, 1);
      for (let i = 0; i < outer.length; i++) {
        const inner = outer[i], rep = i === 0 ? 0 : 1;
        if (inner === null) p.entry(rep, 2);
        else if (inner.length === 0) p.entry(rep, 3);
        else for (let j = 0; j < inner.length; j++) {
          const x = inner[j];
          p.entry(j === 0 ? rep : 2, x === null ? 4 : 5);
          if (x === null) continue;
          if (!(x === (x | 0))) throw new Error(`Parquet INT32: ${x} is not a 32-bit integer`);
          p.values.u32le(x);
          if (x < min) min = x;
          if (x > max) max = x;
        }
      }
    });
    if (min <= max) this.cur!.stats = { min: int32Bytes(min), max: int32Bytes(max) };
  }

  /** DOUBLE values, NULL where isNull[i]. */
  optionalDoubles(v: Float64Array, isNull: Uint8Array): void {
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    let min = Infinity, max = -Infinity;
    this.levelPages(v.length, 0, 1, (r, p) => {
      if (isNull[r]) return p.entry(0, 0);
      p.entry(0, 1);
      p.values.append(bytes.subarray(8 * r, 8 * r + 8));
      const x = v[r];
      if (x < min) min = x;
      if (x > max) max = x;
    });
    this.floatStats(min, max, doubleBytes);
  }

  /**
   * Pages of whole rows, about LIST_PAGE_BYTES of values each, of a column with NULLs or nested
   * lists: `row(r, p)` adds row r's levels and values to p.
   */
  private levelPages(rows: number, maxRep: number, maxDef: number, row: (r: number, p: LevelPage) => void): void {
    const p = this.levelPage;
    p.reset();
    const page = () => {
      const b = this.body;
      b.reset();
      if (maxRep > 0) this.levels(() => rleHybrid(b, p.rep, p.n, bitWidth(maxRep)));
      this.levels(() => rleHybrid(b, p.def, p.n, bitWidth(maxDef)));
      // NULLs and empty lists, as DuckDB counts them
      for (let i = 0; i < p.n; i++) if (p.def[i] < maxDef) this.cur!.nulls++;
      b.append(p.values.bytes());
      this.dataPage(p.n, Enc.PLAIN);
      p.reset();
    };
    for (let r = 0; r < rows; r++) {
      row(r, p);
      if (p.values.length >= LIST_PAGE_BYTES) page();
    }
    if (p.n > 0 || this.cur!.dataPageOffset < 0) page();
  }

  /** Pages of whole rows, about LIST_PAGE_BYTES each. */
  private *listPages(n: number, rowBytes: number): Generator<[number, number]> {
    const step = Math.max(1, Math.floor(LIST_PAGE_BYTES / rowBytes));
    for (let r = 0; r < n; r += step) yield [r, Math.min(n, r + step)];
  }

  /** A page of `rows` full lists of W: repetition 0 then W-1 ones per row, definition all 3. */
  private listLevels(rows: number, W: number): void {
    const b = this.body;
    b.reset();
    const key = `${rows}x${W}`;
    let rep = this.repCache.get(key);
    if (!rep) {
      const levels = new Int32Array(rows * W).fill(1);
      for (let r = 0; r < rows; r++) levels[r * W] = 0;
      const s = new ByteSink(levels.length);
      rleHybrid(s, levels, levels.length, 1);
      rep = s.bytes().slice();
      if (this.repCache.size > 16) this.repCache.clear();
      this.repCache.set(key, rep);
    }
    this.levels(() => b.append(rep));
    this.levels(() => rleRun(b, 3, rows * W, 2));
  }

  /** A levels section of a v1 data page: its byte length, then the levels. */
  private levels(write: () => void): void {
    const b = this.body;
    const at = b.reserve(4);
    b.length = at + 4;
    write();
    const len = b.length - at - 4;
    new DataView(b.buf.buffer, b.buf.byteOffset).setUint32(at, len, true);
  }

  /** Min/max statistics of the chunk; returns the least value (0 for none). */
  private intStats(v: Int32Array): number {
    if (v.length === 0) return 0;
    const [min, max] = intRange(v, v[0], v[0]);
    this.cur!.stats = { min: int32Bytes(min), max: int32Bytes(max) };
    return min;
  }

  private dictPage(numValues: number): void {
    const meta = this.cur!;
    meta.dictPageOffset = this.offset + this.chunkBytes.length;
    meta.encodings.push(Enc.PLAIN_DICTIONARY);
    const body = this.body.bytes();
    this.chunkBytes.append(new ThriftWriter().message((w) => {
      w.i32(1, 2).i32(2, body.length).i32(3, body.length); // DICTIONARY_PAGE
      w.struct(7, (d) => d.i32(1, numValues).i32(2, Enc.PLAIN_DICTIONARY));
    }));
    this.chunkBytes.append(body);
  }

  private dataPage(numValues: number, encoding: Enc): void {
    const meta = this.cur!;
    if (meta.dataPageOffset < 0) meta.dataPageOffset = this.offset + this.chunkBytes.length;
    meta.encodings.push(encoding, Enc.RLE);
    meta.numValues += numValues;
    const body = this.body.bytes();
    this.chunkBytes.append(new ThriftWriter().message((w) => {
      w.i32(1, 0).i32(2, body.length).i32(3, body.length); // DATA_PAGE
      w.struct(5, (d) => d.i32(1, numValues).i32(2, encoding).i32(3, Enc.RLE).i32(4, Enc.RLE));
    }));
    this.chunkBytes.append(body);
  }
}

// codedStrings' loops, each a function of its own: a function that runs a loop once per call is
// optimized mid-loop and then deoptimized at the code after it, call after call (~100 times a run).

function countNegative(v: Int32Array): number {
  let k = 0;
  for (let i = 0; i < v.length; i++) if (v[i] < 0) k++;
  return k;
}

/** out[i] = 1 where codes[i] is a value, 0 where NULL. */
function definedLevels(codes: Int32Array, out: Int32Array): void {
  for (let i = 0; i < codes.length; i++) out[i] = codes[i] < 0 ? 0 : 1;
}

/** The non-NULL codes, in order, into out; returns their count. */
function keepNonNegative(codes: Int32Array, out: Int32Array): number {
  let k = 0;
  for (let i = 0; i < codes.length; i++) if (codes[i] >= 0) out[k++] = codes[i];
  return k;
}

function markUsed(values: Int32Array, count: number, size: number): Uint8Array {
  const used = new Uint8Array(size);
  for (let i = 0; i < count; i++) used[values[i]] = 1;
  return used;
}

/**
 * The least and greatest of v and [min, max], all int32: a loop of its own, since one shared with
 * float arrays runs several times slower (polymorphic element loads, double compares).
 */
function intRange(v: Int32Array, min: number, max: number): [number, number] {
  // int-typed locals and plain branches: ~1.7x faster than selects on untyped min/max
  let lo = min | 0, hi = max | 0;
  const n = v.length;
  for (let i = 0; i < n; i++) {
    const x = v[i] | 0;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

/**
 * The least and greatest of v and [min, max]; NaN compares false, so it is left out (as Parquet's
 * statistics require). One function per array type: a loop that sees both element kinds runs
 * with slow generic loads (and was deoptimized call after call).
 */
function floatRange(v: Float32Array, min: number, max: number): [number, number] {
  // Math.min/max compile to branch-free instructions (2.3x the speed of compare-and-branch) but
  // carry NaN through: only then does the loop that leaves NaN out run
  let lo = min, hi = max;
  const n = v.length;
  for (let i = 0; i < n; i++) {
    const x = v[i];
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  if (lo === lo && hi === hi) return [lo, hi];
  for (let i = 0; i < n; i++) {
    const x = v[i];
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return [min, max];
}

function doubleRange(v: Float64Array, min: number, max: number): [number, number] {
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return [min, max];
}

/** dst[...] = the W values of each row rows[r0..r1), copied run by run (rows mostly come in runs). */
function gatherRows<T extends Int32Array | Float32Array>(dst: T, src: Int16Array | Float32Array, rows: Int32Array, r0: number, r1: number, W: number): void {
  let o = 0;
  for (let i = r0; i < r1; ) {
    const first = rows[i];
    let len = 1;
    while (i + len < r1 && rows[i + len] === first + len) len++;
    dst.set(src.subarray(first * W, (first + len) * W), o);
    o += len * W;
    i += len;
  }
}

/** Distinct integers in order of first appearance, and each value's index (open addressing). */
class IntDictionary {
  values = new Int32Array(1024);
  size = 0;
  private keys = new Int32Array(0);
  private slots = new Int32Array(0); // index + 1; 0: empty
  private indices = new Int32Array(0);

  encode(v: Int32Array): Int32Array {
    const n = v.length;
    let cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (this.keys.length < cap) {
      this.keys = new Int32Array(cap);
      this.slots = new Int32Array(cap);
    } else this.slots.fill(0, 0, cap);
    if (this.indices.length < n) this.indices = new Int32Array(Math.max(n, 2 * this.indices.length));
    const { keys, slots, indices } = this;
    const mask = cap - 1, shift = 32 - Math.log2(cap);
    let size = 0;
    for (let i = 0; i < n; i++) {
      const x = v[i];
      let h = shift === 32 ? 0 : Math.imul(x, 0x9e3779b1) >>> shift;
      for (;;) {
        const s = slots[h];
        if (s === 0) {
          if (size === this.values.length) this.grow();
          this.values[size] = x;
          keys[h] = x;
          slots[h] = ++size;
          indices[i] = size - 1;
          break;
        }
        if (keys[h] === x) {
          indices[i] = s - 1;
          break;
        }
        h = (h + 1) & mask;
      }
    }
    this.size = size;
    return indices.subarray(0, n);
  }

  private grow(): void {
    const b = new Int32Array(2 * this.values.length);
    b.set(this.values);
    this.values = b;
  }
}

const utf8 = new TextEncoder();

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function int32Bytes(v: number): Uint8Array {
  return new Uint8Array(new Int32Array([v]).buffer);
}

function int64Bytes(v: number): Uint8Array {
  return new Uint8Array(BigInt64Array.of(BigInt(v)).buffer);
}

function doubleBytes(v: number): Uint8Array {
  return new Uint8Array(new Float64Array([v]).buffer);
}

function floatBytes(v: number): Uint8Array {
  return new Uint8Array(new Float32Array([v]).buffer);
}

/** The footer: FileMetaData of parquet.thrift. */
function fileMetaData(leaves: Leaf[], groups: { rows: number; chunks: ChunkMeta[] }[], numRows: number): Uint8Array {
  return new ThriftWriter().message((w) => {
    w.i32(1, 1); // version
    w.structList(2, schemaElements(leaves), (s, e) => e(s));
    w.i64(3, numRows);
    w.structList(4, groups, (g, { rows, chunks }) => {
      const bytes = chunks.reduce((t, c) => t + c.size, 0);
      g.structList(1, chunks, (c, m) => {
        c.i64(2, m.offset); // file_offset
        c.struct(3, (cm) => {
          cm.i32(1, m.type);
          cm.i32List(2, m.encodings);
          cm.binaryList(3, m.path);
          cm.i32(4, 0); // UNCOMPRESSED
          cm.i64(5, m.numValues);
          cm.i64(6, m.size);
          cm.i64(7, m.size);
          cm.i64(9, m.dataPageOffset);
          if (m.dictPageOffset !== null) cm.i64(11, m.dictPageOffset);
          cm.struct(12, (st) => {
            st.i64(3, m.nulls);
            if (m.stats) st.binary(5, m.stats.max).binary(6, m.stats.min);
          });
        });
      });
      g.i64(2, bytes);
      g.i64(3, rows);
      if (chunks.length) g.i64(5, chunks[0].offset);
      g.i64(6, bytes);
    });
    w.binary(6, `moescope version ${VERSION}`);
    // column_orders: TypeDefinedOrder for every leaf, so readers trust min_value / max_value
    w.structList(7, leaves, (o) => o.struct(1, () => {}));
  });
}

function schemaElements(leaves: Leaf[]): ((w: ThriftWriter) => void)[] {
  const out: ((w: ThriftWriter) => void)[] = [(w) => w.binary(4, 'schema').i32(5, leaves.length)];
  const leaf = (l: Leaf, name: string) => (w: ThriftWriter) => {
    w.i32(1, l.type).i32(3, OPTIONAL).binary(4, name);
    if (l.conv !== null) w.i32(6, l.conv);
    if (l.logical === 'string') w.struct(10, (t) => t.struct(1, () => {}));
    else if (l.logical) w.struct(10, (t) => t.struct(10, (i) => i.byte(1, l.logical === 'int16' ? 16 : l.logical === 'int32' ? 32 : 64).bool(2, true)));
  };
  for (const l of leaves) {
    if (!l.list) {
      out.push(leaf(l, l.name));
      continue;
    }
    out.push((w) => w.i32(3, OPTIONAL).binary(4, l.name).i32(5, 1).i32(6, Conv.LIST).struct(10, (t) => t.struct(3, () => {})));
    out.push((w) => w.i32(3, REPEATED).binary(4, 'list').i32(5, 1));
    if (l.listOfLists) {
      out.push((w) => w.i32(3, OPTIONAL).binary(4, 'element').i32(5, 1).i32(6, Conv.LIST).struct(10, (t) => t.struct(3, () => {})));
      out.push((w) => w.i32(3, REPEATED).binary(4, 'list').i32(5, 1));
    }
    out.push(leaf(l, 'element'));
  }
  return out;
}

/** Levels and PLAIN values of a page being built (columns with NULLs or nested lists). */
class LevelPage {
  rep = new Int32Array(1024);
  def = new Int32Array(1024);
  n = 0;
  readonly values = new ByteSink(1 << 16);

  entry(rep: number, def: number): void {
    if (this.n === this.rep.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(2 * a.length);
        b.set(a);
        return b;
      };
      this.rep = grow(this.rep);
      this.def = grow(this.def);
    }
    this.rep[this.n] = rep;
    this.def[this.n++] = def;
  }

  /** A BYTE_ARRAY value: its length, then its bytes (a string encoded in place). */
  bytes(x: string | Uint8Array): void {
    const s = this.values;
    if (typeof x !== 'string') {
      s.u32le(x.length);
      s.append(x);
      return;
    }
    const at = s.reserve(4 + 3 * x.length); // a UTF-16 unit takes at most 3 bytes
    const { written } = utf8.encodeInto(x, s.buf.subarray(at + 4, at + 4 + 3 * x.length));
    s.u32le(written);
    s.length = at + 4 + written;
  }

  reset(): void {
    this.n = 0;
    this.values.reset();
  }
}
