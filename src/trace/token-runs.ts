import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';

/**
 * The per-token counts (agg-token) on disk, and back in the table's order: (group rank, token,
 * expert), equal keys summed. Costs a fraction of one GROUP BY + ORDER BY over every spilled
 * entry (a single-threaded DuckDB sort of 2M entries took ~1 s at the end of a 3M-row import).
 *
 * The key space is cut into buckets: a group and a range of 2^s tokens, which with every expert
 * id is at most 2^16 cells. A spill (the writer's rows themselves, or counts) is sorted by bucket
 * only (a radix sort on a few bits), summed bucket by bucket the merge's way, and written as a run,
 * each bucket's cells in order; the merge takes the runs' entries bucket by bucket, in order, sums them in a
 * dense array of the bucket's cells (in cache: no comparisons, no hashing), and hands out the
 * touched cells in cell order, which is (token, expert) order.
 *
 * A run is 16-byte records (int32 gid * 32768 + expert, int32 token, float64 n; this machine's
 * byte order: the files are temporaries of this process), sorted by bucket, each key once. The group order at a
 * spill is the final one (group-order.ts) over the groups known then: a group that appears later
 * never reorders the others, so every run is already in the final bucket order. Memory stays
 * bounded: a merge reads each run through a buffer of READ_ENTRIES, and at most `fanIn` runs at a
 * time (more runs are first merged in passes into fewer, longer ones).
 *
 * Loops are functions (or methods) of their own that run many times: V8 optimizes a function
 * whose loops run once per call only on the fly, and throws that code away at every call when a
 * later loop reaches code that has not run yet.
 */

/** Entries (gid, token, expert, n) in columns; `n` of them in use. */
export interface TokenEntries {
  n: number;
  gid: Int32Array;
  token: Int32Array;
  expert: Int32Array;
  count: Float64Array;
}

const WORDS = 4; // int32 words per record
const READ_ENTRIES = 4096; // records per run read at a time while merging (64 KB)
const WRITE_ENTRIES = 4096;
const FAN_IN = 64;
const CELL_BITS = 16; // a bucket's cells: token's low s bits | expert
const DIGIT_BITS = 12, DIGIT_MASK = (1 << DIGIT_BITS) - 1;

export class TokenRuns {
  private runs: string[] = [];
  private made = 0;
  /** expert id bits, and the token bits within a bucket (s) */
  private readonly eb: number;
  private readonly s: number;
  // radix sort scratch, grown to the largest spill: the keys, and the entries' columns as the
  // passes leave them (a second set only for spills that take more than one pass)
  private keyLo = new Int32Array(0);
  private keyHi = new Int32Array(0);
  private a: SortColumns | null = null;
  private b: SortColumns | null = null;
  private readonly count = new Int32Array(1 << DIGIT_BITS);
  private readonly range = new Float64Array(3);
  /** whether the last sort's keys took two words */
  private twoWords = false;
  /** spillWords' words and their second buffer */
  private words = new Int32Array(0);
  private wordsB = new Int32Array(0);
  /** a bucket's sums while a spill is written, or a merge hands it out (each leaves them cleared) */
  private readonly sum: BucketSums = { dense: new Float64Array(1 << CELL_BITS), cells: new Int32Array(1 << CELL_BITS), bits: new Int32Array(1 << (CELL_BITS - 5)) };
  /**
   * The merges' read buffers, READ_ENTRIES records a run, kept from merge to merge: a merge of 220
   * runs is five merges, and 4 MB of fresh buffers each rose a capture's peak at its end by
   * 12-40 MB (they waited for a collection).
   */
  private readBuf = new ArrayBuffer(0);

  /**
   * prefix: path prefix of the run files (temporaries the caller removes if this stops early);
   * maxExpert: the largest expert id an entry may have (< 32768)
   */
  constructor(private readonly prefix: string, maxExpert: number, private readonly fanIn = FAN_IN) {
    this.eb = bitsFor(maxExpert);
    this.s = CELL_BITS - this.eb;
  }

  /**
   * Write e's entries as a run, sorted by bucket (order[gid], token's bucket), equal keys summed
   * and each bucket's cells in order (entries may be single rows: counts of 1, many repeated).
   * `unitCounts`: every count is 1 (the writer's rows), which allows the one-word sort below.
   */
  spill(e: TokenEntries, order: Int32Array, unitCounts = false): void {
    if (e.n === 0) return;
    if (unitCounts && this.spillWords(e, order)) return;
    const sorted = this.sort(e, order);
    const path = this.newRun();
    this.runs.push(path);
    const w = new RunWriter(path);
    try {
      const c = sorted ?? this.asColumns(e);
      const twoWords = sorted !== null && this.twoWords;
      for (let j = 0; j < e.n; ) {
        const k = sorted ? bucketEnd(c.lo, c.hi, j, e.n, twoWords) : e.n;
        const m = sumBucket(c.ge, c.tok, c.cnt, j, k, this.eb, this.s, this.sum.dense, this.sum.cells, this.sum.bits);
        orderCells(this.sum.cells, this.sum.bits, m);
        writeBucket(w, this.sum.cells, m, this.sum.dense, this.eb, c.ge[j] >>> 15, (c.tok[j] >> this.s) << this.s);
        j = k;
      }
    } finally {
      w.close();
    }
  }

  /**
   * The usual spill (counts of 1, a bucket key of at most 16 bits: a few hundred groups of a
   * vocabulary), as one 32-bit word per entry, bucket key above cell, radix-sorted whole: equal
   * keys end up adjacent in the run's order, and a run of equal words is one record with its
   * length as count. Half the cost of sorting the entries' columns and summing each bucket in a
   * dense array. The records are those of the general path, in the same order. False (nothing
   * written) when the key takes more bits.
   */
  private spillWords(e: TokenEntries, order: Int32Array): boolean {
    const n = e.n, { s, eb } = this;
    const [minHigh, maxHigh, maxOrder] = ranges(e, order, s, eb, this.range);
    const tb = bitsFor(maxHigh - minHigh), ob = bitsFor(maxOrder);
    if (ob + tb > 16) return false;
    if (this.words.length < n) {
      this.words = new Int32Array(e.gid.length);
      this.wordsB = new Int32Array(e.gid.length);
    }
    makeWords(e, order, s, eb, tb, minHigh, this.words);
    let src = this.words, dst = this.wordsB;
    for (const shift of digitShifts(16 + ob + tb)) {
      if (!digitsOf(src, shift, n, this.count)) continue;
      scatterWords(src, dst, shift, n, this.count);
      [src, dst] = [dst, src];
    }
    // per rank, its group; then the runs of equal words as records
    const gidOf = new Int32Array(maxOrder + 1);
    for (let g = 0; g < order.length; g++) if (order[g] <= maxOrder) gidOf[order[g]] = g;
    const path = this.newRun();
    this.runs.push(path);
    const w = new RunWriter(path);
    try {
      writeWordRuns(w, src, n, gidOf, s, eb, tb, minHigh);
    } finally {
      w.close();
    }
    return true;
  }

  /** e's entries as sort columns (no pass moved them: they are one bucket). */
  private asColumns(e: TokenEntries): SortColumns {
    if (!this.a || this.a.ge.length < e.n) this.a = sortColumns(e.gid.length);
    const c = this.a;
    toColumns(e, c);
    return c;
  }

  /**
   * Every entry of every run once per key, in (rank[gid], token, expert) order with equal keys
   * summed, handed to `out` in blocks of up to `blockRows` (the block is reused after `out` returns).
   * The runs are removed as they are merged.
   */
  merge(rank: Int32Array, blockRows: number, out: (b: TokenEntries) => void): void {
    while (this.runs.length > this.fanIn) {
      const next: string[] = [];
      for (let r = 0; r < this.runs.length; r += this.fanIn) {
        const part = this.runs.slice(r, r + this.fanIn);
        if (part.length > 1) {
          const path = this.newRun();
          const w = new RunWriter(path);
          try {
            this.mergeRuns(part, rank, WRITE_ENTRIES, (b) => writeBlock(w, b));
          } finally {
            w.close();
          }
          for (const f of part) rmSync(f, { force: true });
          next.push(path);
        } else next.push(part[0]);
      }
      this.runs = next;
    }
    this.mergeRuns(this.runs, rank, blockRows, out);
    for (const f of this.runs) rmSync(f, { force: true });
    this.runs = [];
  }

  private mergeRuns(paths: string[], rank: Int32Array, blockRows: number, out: (b: TokenEntries) => void): void {
    const b: TokenEntries = { n: 0, gid: new Int32Array(blockRows), token: new Int32Array(blockRows), expert: new Int32Array(blockRows), count: new Float64Array(blockRows) };
    const bytes = paths.length * READ_ENTRIES * WORDS * 4;
    if (this.readBuf.byteLength < bytes) this.readBuf = new ArrayBuffer(bytes);
    const m = new Merge(paths, rank, this.eb, this.s, this.readBuf, this.sum);
    try {
      for (m.read(b); b.n > 0; m.read(b)) out(b);
    } finally {
      m.close();
    }
  }

  private newRun(): string {
    return `${this.prefix}${String(this.made++).padStart(5, '0')}.run`;
  }

  /**
   * e's entries sorted by bucket: an LSD radix sort of the key (order[gid], the token's high
   * 32 - s bits less the spill's least), in as few bits as the spill's ranges need, one word when
   * they fit 32 bits (the usual: a few groups, a vocabulary), else two; each pass counts in 2^12
   * buckets at most, and a pass whose digit is the same for every entry is skipped. The entries'
   * fields travel with the keys, so that nothing is read in random order afterwards (a gather by
   * sorted index cost more than the sort). Null when no pass moved anything: every entry is in
   * one bucket, and e is in order as it is.
   */
  private sort(e: TokenEntries, order: Int32Array): SortColumns | null {
    const n = e.n, cap = e.gid.length;
    if (this.keyLo.length < n) {
      this.keyLo = new Int32Array(cap);
      this.keyHi = new Int32Array(0);
      this.a = this.b = null;
    }
    const count = this.count;
    const [minHigh, maxHigh, maxOrder] = ranges(e, order, this.s, this.eb, this.range);
    const tb = bitsFor(maxHigh - minHigh), ob = bitsFor(maxOrder);
    const twoWords = (this.twoWords = ob + tb > 32);
    if (twoWords && this.keyHi.length < n) this.keyHi = new Int32Array(cap);
    sortKeys(e, order, this.s, minHigh, twoWords ? -1 : tb, this.keyLo, this.keyHi);
    const passes = twoWords ? [...digitShifts(tb).map((sh) => [0, sh]), ...digitShifts(ob).map((sh) => [1, sh])] : digitShifts(ob + tb).map((sh) => [0, sh]);
    // the first pass that moves anything reads the entries themselves; later ones move one set of columns into the other
    let src: SortColumns | null = null;
    for (const [word, shift] of passes) {
      const key = src ? (word ? src.hi : src.lo) : word ? this.keyHi : this.keyLo;
      if (!digitsOf(key, shift, n, count)) continue;
      const dst: SortColumns = src === null || src === this.b ? (this.a ??= sortColumns(cap)) : (this.b ??= sortColumns(cap));
      if (src) scatter(key, shift, n, count, src, dst, twoWords);
      else scatterEntries(key, shift, n, count, e, this.keyLo, this.keyHi, dst, twoWords);
      src = dst;
    }
    return src;
  }
}

/** A bucket's cells: sums by cell, the cells touched, and a bit per touched cell; all clear between buckets. */
interface BucketSums {
  dense: Float64Array;
  cells: Int32Array;
  bits: Int32Array;
}

/** Spill entries sorted by one or more passes: key words (lo, and hi when the key takes two), and the record's fields. */
interface SortColumns {
  lo: Int32Array;
  hi: Int32Array;
  ge: Int32Array; // gid * 32768 + expert
  tok: Int32Array;
  cnt: Float64Array;
}

function sortColumns(cap: number): SortColumns {
  return { lo: new Int32Array(cap), hi: new Int32Array(cap), ge: new Int32Array(cap), tok: new Int32Array(cap), cnt: new Float64Array(cap) };
}

/** Bits for the values 0..max. */
function bitsFor(max: number): number {
  return max > 0 ? 32 - Math.clz32(max) : 0;
}

/** The shifts of the digits of a key of `bits` bits: as few as digits of at most DIGIT_BITS allow, of equal width. */
function digitShifts(bits: number): number[] {
  const passes = Math.ceil(bits / DIGIT_BITS), width = Math.ceil(bits / Math.max(1, passes));
  return Array.from({ length: passes }, (_, p) => p * width);
}

/** A token's bucket within its group: its high 32 - s bits, sign flipped so that they order as unsigned. */
function tokenHigh(token: number, s: number): number {
  return (token ^ -0x80000000) >>> s;
}

/** [least, greatest tokenHigh, greatest group order] of e into out; throws on an expert id wider than eb bits. */
function ranges(e: TokenEntries, order: Int32Array, s: number, eb: number, out: Float64Array): Float64Array {
  const { n, gid, token, expert } = e;
  let minHigh = tokenHigh(token[0], s), maxHigh = minHigh, maxExpert = 0, maxOrder = 0;
  for (let i = 0; i < n; i++) {
    const t = tokenHigh(token[i], s), x = expert[i], o = order[gid[i]];
    if (t < minHigh) minHigh = t;
    if (t > maxHigh) maxHigh = t;
    if (x > maxExpert) maxExpert = x;
    if (o > maxOrder) maxOrder = o;
  }
  if (maxExpert >>> eb !== 0) throw new Error(`token runs: expert ${maxExpert} past the ${eb} bits given`);
  out[0] = minHigh;
  out[1] = maxHigh;
  out[2] = maxOrder;
  return out;
}

/**
 * The sort keys of e: of one word, order | tokenHigh - minHigh (tb bits; tb < 32, as s >= 1), or
 * with tb = -1 of two, hi = order and lo = tokenHigh - minHigh.
 */
function sortKeys(e: TokenEntries, order: Int32Array, s: number, minHigh: number, tb: number, lo: Int32Array, hi: Int32Array): void {
  const { n, gid, token } = e;
  for (let i = 0; i < n; i++) {
    const o = order[gid[i]];
    if (tb >= 0) lo[i] = (o << tb) | (tokenHigh(token[i], s) - minHigh);
    else {
      lo[i] = tokenHigh(token[i], s) - minHigh;
      hi[i] = o;
    }
  }
}

/**
 * The first positions of each digit (key >>> shift) & DIGIT_MASK into count, for a stable pass;
 * false when every entry has the same digit (the pass would move nothing). (A digit narrower than
 * the mask also counts some of the next one's bits, which is harmless: the next pass orders by
 * them again.)
 */
function digitsOf(key: Int32Array, shift: number, n: number, count: Int32Array): boolean {
  count.fill(0);
  countDigits(key, shift, n, count);
  if (count[(key[0] >>> shift) & DIGIT_MASK] === n) return false;
  startsOf(count);
  return true;
}

function countDigits(key: Int32Array, shift: number, n: number, count: Int32Array): void {
  for (let j = 0; j < n; j++) count[(key[j] >>> shift) & DIGIT_MASK]++;
}

/** Counts into the first position of each digit. */
function startsOf(count: Int32Array): void {
  for (let d = 0, sum = 0; d < count.length; d++) {
    const c = count[d];
    count[d] = sum;
    sum += c;
  }
}

/** Per entry its word: (order[gid] << tb | tokenHigh - minHigh) << 16 | (token's low s bits) << eb | expert. */
function makeWords(e: TokenEntries, order: Int32Array, s: number, eb: number, tb: number, minHigh: number, out: Int32Array): void {
  const { n, gid, token, expert } = e;
  const tmask = (1 << s) - 1;
  for (let i = 0; i < n; i++) {
    const t = token[i];
    out[i] = (((order[gid[i]] << tb) | (tokenHigh(t, s) - minHigh)) << 16) | ((t & tmask) << eb) | expert[i];
  }
}

/** One stable counting pass of the words by their digit at `shift`. */
function scatterWords(src: Int32Array, dst: Int32Array, shift: number, n: number, at: Int32Array): void {
  for (let j = 0; j < n; j++) {
    const w = src[j];
    dst[at[(w >>> shift) & DIGIT_MASK]++] = w;
  }
}

/** The sorted words as records: each run of equal words once, its length the count. */
function writeWordRuns(w: RunWriter, words: Int32Array, n: number, gidOf: Int32Array, s: number, eb: number, tb: number, minHigh: number): void {
  const emask = (1 << eb) - 1, hmask = (1 << tb) - 1;
  for (let j = 0; j < n; ) {
    const x = words[j];
    let k = j + 1;
    while (k < n && words[k] === x) k++;
    const key = x >>> 16, cell = x & 0xffff;
    const tokenBase = (((key & hmask) + minHigh) << s) ^ -0x80000000;
    w.add(gidOf[key >>> tb] * 32768 + (cell & emask), tokenBase | (cell >>> eb), k - j);
    j = k;
  }
}

/** One counting pass of a's columns into b's. */
function scatter(key: Int32Array, shift: number, n: number, at: Int32Array, a: SortColumns, b: SortColumns, twoWords: boolean): void {
  const { lo, hi, ge, tok, cnt } = a;
  const { lo: lo2, hi: hi2, ge: ge2, tok: tok2, cnt: cnt2 } = b;
  for (let j = 0; j < n; j++) {
    const k = at[(key[j] >>> shift) & DIGIT_MASK]++;
    lo2[k] = lo[j];
    if (twoWords) hi2[k] = hi[j];
    ge2[k] = ge[j];
    tok2[k] = tok[j];
    cnt2[k] = cnt[j];
  }
}

/** One counting pass of the entries (and their keys lo, hi) into b's columns. */
function scatterEntries(key: Int32Array, shift: number, n: number, at: Int32Array, e: TokenEntries, lo: Int32Array, hi: Int32Array, b: SortColumns, twoWords: boolean): void {
  const { gid, token, expert, count } = e;
  const { lo: lo2, hi: hi2, ge: ge2, tok: tok2, cnt: cnt2 } = b;
  for (let j = 0; j < n; j++) {
    const k = at[(key[j] >>> shift) & DIGIT_MASK]++;
    lo2[k] = lo[j];
    if (twoWords) hi2[k] = hi[j];
    ge2[k] = gid[j] * 32768 + expert[j];
    tok2[k] = token[j];
    cnt2[k] = count[j];
  }
}

/** The end of the bucket that starts at j: the first entry with another key (lo, and hi when the keys take two words). */
function bucketEnd(lo: Int32Array, hi: Int32Array, j: number, n: number, twoWords: boolean): number {
  const l = lo[j], h = hi[j];
  let k = j + 1;
  while (k < n && lo[k] === l && (!twoWords || hi[k] === h)) k++;
  return k;
}

/**
 * Entries [j, k) of one bucket summed into dense by cell ((token's low s bits) << eb | expert),
 * each new cell listed in cells and marked in bits; returns the number of cells.
 */
function sumBucket(ge: Int32Array, tok: Int32Array, cnt: Float64Array, j: number, k: number, eb: number, s: number, dense: Float64Array, cells: Int32Array, bits: Int32Array): number {
  const tmask = (1 << s) - 1;
  let m = 0;
  for (let x = j; x < k; x++) {
    const c = ((tok[x] & tmask) << eb) | (ge[x] & 32767);
    const d = dense[c];
    // counts are >= 1: a zero cell is an untouched one, listed (written always, kept when new:
    // no branch on it, which half the entries of near-distinct keys mispredicted)
    cells[m] = c;
    m += d === 0 ? 1 : 0;
    bits[c >>> 5] |= 1 << (c & 31);
    dense[c] = d + cnt[x];
  }
  return m;
}

/** A bucket's m cells (in order) as records, their sums taken out of dense. */
function writeBucket(w: RunWriter, cells: Int32Array, m: number, dense: Float64Array, eb: number, gid: number, tokenBase: number): void {
  const emask = (1 << eb) - 1;
  for (let x = 0; x < m; x++) {
    const c = cells[x];
    w.add(gid * 32768 + (c & emask), tokenBase | (c >>> eb), dense[c]);
    dense[c] = 0;
  }
}

/** Unsorted entries into sort columns (their keys are not needed: one bucket). */
function toColumns(e: TokenEntries, c: SortColumns): void {
  const { gid, token, expert, count } = e;
  for (let i = 0; i < e.n; i++) {
    c.ge[i] = gid[i] * 32768 + expert[i];
    c.tok[i] = token[i];
    c.cnt[i] = count[i];
  }
}

/**
 * The n touched cells in order, bits cleared: a few sorted, more read off the bitmap (2^11 words,
 * whatever the number of cells; a sort of a thousand cells per bucket took most of the merge).
 */
function orderCells(cells: Int32Array, bits: Int32Array, n: number): void {
  if (n <= 64) {
    cells.subarray(0, n).sort();
    for (let i = 0; i < n; i++) bits[cells[i] >>> 5] = 0;
    return;
  }
  let m = 0;
  for (let w = 0; w < bits.length; w++) {
    let x = bits[w];
    if (x === 0) continue;
    bits[w] = 0;
    while (x !== 0) {
      const low = x & -x;
      cells[m++] = (w << 5) | (31 - Math.clz32(low));
      x ^= low;
    }
  }
}

/** A merged block's records (a pass of the merge writes a longer run). */
function writeBlock(w: RunWriter, b: TokenEntries): void {
  for (let i = 0; i < b.n; i++) w.add(b.gid[i] * 32768 + b.expert[i], b.token[i], b.count[i]);
}

/** A run file being written, through a buffer of records. */
class RunWriter {
  private readonly fd: number;
  private readonly buf = new ArrayBuffer(WRITE_ENTRIES * WORDS * 4);
  private readonly i32 = new Int32Array(this.buf);
  private readonly f64 = new Float64Array(this.buf);
  private n = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'w');
  }

  add(ge: number, token: number, count: number): void {
    const o = this.n * WORDS;
    this.i32[o] = ge;
    this.i32[o + 1] = token;
    this.f64[(o >> 1) + 1] = count;
    if (++this.n === WRITE_ENTRIES) this.flush();
  }

  private flush(): void {
    const b = new Uint8Array(this.buf, 0, this.n * WORDS * 4);
    for (let done = 0; done < b.length; ) done += writeSync(this.fd, b, done, b.length - done);
    this.n = 0;
  }

  close(): void {
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
    }
  }
}

/**
 * The merge: a binary heap of the runs by their current record's bucket key
 * rank[gid] * 2^(32 - s) + tokenHigh (exact in a double), popped a bucket at a time; the bucket's
 * records summed into `dense` by cell, the touched cells listed, then handed out in cell order.
 * Each run's buffer is a slice of one shared array, so the loops read records without an object
 * per run.
 */
class Merge {
  private readonly fds: number[] = [];
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly at: Int32Array; // per run: its current record in its buffer
  private readonly len: Int32Array; // records in its buffer
  private readonly pos: number[]; // bytes read from its file
  private readonly heap: Int32Array;
  private readonly key: Float64Array; // per run: its current record's bucket key
  private size = 0;
  // the bucket being handed out: its cells' sums, its touched cells (in order once all are summed), how many are out, its gid and first token
  private readonly dense: Float64Array;
  private readonly cells: Int32Array;
  private readonly bits: Int32Array; // the touched cells
  private cellCount = 0;
  private readonly takeState = new Int32Array(2); // takeRecords' results: next record, cell count
  private cellsOut = 0;
  private bucketGid = 0;
  private bucketToken = 0;

  /** buf: room for READ_ENTRIES records of each run; sums: clear, and left clear once every entry is out */
  constructor(paths: string[], private readonly rank: Int32Array, private readonly eb: number, private readonly s: number, buf: ArrayBuffer, sums: BucketSums) {
    const k = paths.length;
    this.i32 = new Int32Array(buf);
    this.f64 = new Float64Array(buf);
    ({ dense: this.dense, cells: this.cells, bits: this.bits } = sums);
    this.at = new Int32Array(k);
    this.len = new Int32Array(k);
    this.pos = new Array<number>(k).fill(0);
    this.heap = new Int32Array(k);
    this.key = new Float64Array(k);
    try {
      for (const p of paths) this.fds.push(openSync(p, 'r'));
      for (let r = 0; r < k; r++) if (this.load(r)) this.push(r);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** The next entries, equal keys summed, into b (up to its length); b.n = 0 once all are out. */
  read(b: TokenEntries): void {
    let n = 0;
    while (n < b.gid.length) {
      if (this.cellsOut === this.cellCount) {
        if (this.size === 0) break;
        this.nextBucket();
      }
      n = this.handOut(b, n);
    }
    b.n = n;
  }

  /** Cells of the current bucket into b from row n on, while b has room; returns the rows filled. */
  private handOut(b: TokenEntries, n: number): number {
    const take = Math.min(this.cellCount - this.cellsOut, b.gid.length - n);
    handOutCells(b, n, this.cells, this.cellsOut, take, this.dense, this.eb, this.bucketGid, this.bucketToken);
    this.cellsOut += take;
    return n + take;
  }

  /** Sum every record of the smallest bucket key into dense, and list its cells in order. */
  private nextBucket(): void {
    const { heap, key } = this;
    const first = heap[0], o = (first * READ_ENTRIES + this.at[first]) * WORDS;
    const bucket = key[first];
    this.bucketGid = this.i32[o] >>> 15;
    this.bucketToken = (this.i32[o + 1] >> this.s) << this.s;
    this.cellCount = 0;
    while (this.size > 0 && key[heap[0]] === bucket) {
      const r = heap[0];
      // the run's records of this bucket, buffer after buffer
      while (this.take(r, bucket) && this.load(r)) {}
      if (this.at[r] < this.len[r]) this.setKey(r);
      else heap[0] = heap[--this.size];
      this.siftDown();
    }
    orderCells(this.cells, this.bits, this.cellCount);
    this.cellsOut = 0;
  }

  /**
   * Add run r's records from its current one on while they are in `bucket`; true when its buffer
   * ran out first (the bucket may go on in the next one).
   */
  private take(r: number, bucket: number): boolean {
    const end = this.len[r];
    const st = this.takeState;
    takeRecords(this.i32, this.f64, this.dense, this.cells, this.bits, this.rank, this.eb, this.s, r * READ_ENTRIES, this.at[r], end, bucket, this.cellCount, st);
    this.at[r] = st[0];
    this.cellCount = st[1];
    return st[0] === end;
  }

  /** Read run r's next buffer and set its key; false at the end of the run. */
  private load(r: number): boolean {
    const bytes = READ_ENTRIES * WORDS * 4;
    const b = new Uint8Array(this.i32.buffer, r * bytes, bytes);
    let got = 0;
    while (got < bytes) {
      const k = readSync(this.fds[r], b, got, bytes - got, this.pos[r] + got);
      if (k === 0) break;
      got += k;
    }
    if (got % (WORDS * 4) !== 0) throw new Error(`token run: ${got} bytes is not whole records`);
    this.pos[r] += got;
    this.len[r] = got / (WORDS * 4);
    this.at[r] = 0;
    if (got === 0) return false;
    this.setKey(r);
    return true;
  }

  private setKey(r: number): void {
    const o = (r * READ_ENTRIES + this.at[r]) * WORDS;
    this.key[r] = this.rank[this.i32[o] >>> 15] * 2 ** (32 - this.s) + tokenHigh(this.i32[o + 1], this.s);
  }

  /** Add run r to the heap. */
  private push(r: number): void {
    const { heap, key } = this;
    let i = this.size++;
    for (; i > 0 && key[r] < key[heap[(i - 1) >> 1]]; i = (i - 1) >> 1) heap[i] = heap[(i - 1) >> 1];
    heap[i] = r;
  }

  /** Move the top of the heap down to its place. */
  private siftDown(): void {
    const { heap, key, size } = this;
    const top = heap[0], k = key[top];
    let i = 0;
    for (;;) {
      let ch = 2 * i + 1;
      if (ch >= size) break;
      if (ch + 1 < size && key[heap[ch + 1]] < key[heap[ch]]) ch++;
      if (!(key[heap[ch]] < k)) break;
      heap[i] = heap[ch];
      i = ch;
    }
    heap[i] = top;
  }

  close(): void {
    for (const fd of this.fds) closeSync(fd);
    this.fds.length = 0;
  }
}

/** `take` cells from cells[from..] into b's rows n.. (their counts taken out of dense): a loop of its own, see util/int-scan.ts. */
function handOutCells(b: TokenEntries, n: number, cells: Int32Array, from: number, take: number, dense: Float64Array, eb: number, bucketGid: number, bucketToken: number): void {
  const { gid, token, expert, count } = b;
  const emask = (1 << eb) - 1;
  for (let k = 0; k < take; k++) {
    const c = cells[from + k];
    gid[n + k] = bucketGid;
    token[n + k] = bucketToken | (c >>> eb);
    expert[n + k] = c & emask;
    count[n + k] = dense[c];
    dense[c] = 0;
  }
}

/**
 * The records of `bucket` from a run's buffer (at base + a, up to end) summed into dense, each new
 * cell listed in cells and marked in bits; out = [next record, cell count]. A loop of its own, see
 * util/int-scan.ts (inside take() it was deoptimized on every call: hundreds of times a run).
 */
function takeRecords(i32: Int32Array, f64: Float64Array, dense: Float64Array, cells: Int32Array, bits: Int32Array, rank: Int32Array, eb: number, s: number, base: number, a: number, end: number, bucket: number, n: number, out: Int32Array): void {
  const tmask = (1 << s) - 1, shift = 2 ** (32 - s);
  for (; a < end; a++) {
    const o = (base + a) * WORDS;
    const ge = i32[o], t = i32[o + 1];
    if (rank[ge >>> 15] * shift + tokenHigh(t, s) !== bucket) break;
    const c = ((t & tmask) << eb) | (ge & 32767);
    if (dense[c] === 0) {
      // counts are >= 1: a zero cell is an untouched one
      cells[n++] = c;
      bits[c >>> 5] |= 1 << (c & 31);
    }
    dense[c] += f64[(o >> 1) + 1];
  }
  out[0] = a;
  out[1] = n;
}
