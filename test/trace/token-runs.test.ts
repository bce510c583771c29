import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { TokenRuns, type TokenEntries } from '../../src/trace/token-runs.js';

/**
 * The per-token counts' sorted runs and their merge (src/trace/token-runs.ts) against a plain Map
 * and sort: random entries, split into random spills, merged with a small fan-in (so in several
 * passes) and small blocks, must give each (group, token, expert) once with its summed count, in
 * (group rank, token, expert) order.
 */

const entryArb = (G: number, E: number) =>
  fc.record({
    gid: fc.integer({ min: 0, max: G - 1 }),
    // few tokens (keys repeat within and across spills), any int32, and the radix digits' edges
    token: fc.oneof(fc.integer({ min: -3, max: 12 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, -65536, -1, 65535, 65536)),
    expert: fc.integer({ min: 0, max: E - 1 }),
    // counts past 2^32 (float64 in the runs)
    n: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 2 ** 40 })),
  });

const caseArb = fc
  .record({ G: fc.integer({ min: 1, max: 30 }), E: fc.constantFrom(1, 3, 64, 32768), fanIn: fc.integer({ min: 2, max: 5 }), blockRows: fc.integer({ min: 1, max: 40 }) })
  .chain((h) =>
    fc.record({
      h: fc.constant(h),
      // sizes up to the bounds (fast-check's default keeps arrays at a few items)
      entries: fc.array(entryArb(h.G, h.E), { maxLength: 300, size: 'max' }),
      cuts: fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 30, size: 'max' }),
      // the final order of the groups: a permutation
      rank: fc.shuffledSubarray(Array.from({ length: h.G }, (_, i) => i), { minLength: h.G, maxLength: h.G }),
      // single rows, as the writer spills them (counts of 1, spill's one-word sort when the key fits)
      unit: fc.boolean(),
    }),
  );

type Row = [gid: number, token: number, expert: number, n: number];

test('token runs: random spills merged in passes give the sums and order of a Map and a sort', { timeout: 120_000 }, () => {
  fc.assert(
    fc.property(caseArb, ({ h, entries: drawn, cuts, rank: perm, unit }) => {
      const entries = unit ? drawn.map((e) => ({ ...e, n: 1 })) : drawn;
      const rank = Int32Array.from(perm);
      const dir = mkdtempSync(join(tmpdir(), 'moescope-runs-'));
      try {
        const runs = new TokenRuns(join(dir, 'run-'), h.E - 1, h.fanIn);
        // each spill ordered as the writer orders it: the final order over the groups seen so far
        const seen = new Set<number>();
        const bounds = [...new Set([0, ...cuts.filter((c) => c <= entries.length), entries.length])].sort((a, b) => a - b);
        for (let b = 1; b < bounds.length; b++) {
          const part = entries.slice(bounds[b - 1], bounds[b]);
          for (const e of part) seen.add(e.gid);
          const order = new Int32Array(h.G).fill(-1);
          for (const g of seen) order[g] = [...seen].filter((o) => rank[o] < rank[g]).length;
          // columns longer than the entries in use, as the writer's are
          const cap = part.length + 3;
          const cols: TokenEntries = { n: part.length, gid: new Int32Array(cap).fill(h.G - 1), token: new Int32Array(cap).fill(7), expert: new Int32Array(cap), count: new Float64Array(cap).fill(99) };
          part.forEach((e, i) => {
            cols.gid[i] = e.gid;
            cols.token[i] = e.token;
            cols.expert[i] = e.expert;
            cols.count[i] = e.n;
          });
          runs.spill(cols, order, unit);
        }
        const got: Row[] = [];
        runs.merge(rank, h.blockRows, (blk) => {
          assert.ok(blk.n >= 1 && blk.n <= h.blockRows, `block of ${blk.n}`);
          assert.ok(readdirSync(dir).length <= h.fanIn, 'the last merge reads at most fanIn runs');
          for (let i = 0; i < blk.n; i++) got.push([blk.gid[i], blk.token[i], blk.expert[i], blk.count[i]]);
        });
        const sums = new Map<string, Row>();
        for (const e of entries) {
          const k = `${e.gid},${e.token},${e.expert}`;
          const r = sums.get(k);
          if (r) r[3] += e.n;
          else sums.set(k, [e.gid, e.token, e.expert, e.n]);
        }
        const want = [...sums.values()].sort((a, b) => rank[a[0]] - rank[b[0]] || a[1] - b[1] || a[2] - b[2]);
        assert.deepEqual(got, want);
        assert.deepEqual(readdirSync(dir), [], 'the runs are removed once merged');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 300, seed: 3 },
  );
});

/** Two spills of the same n random entries merged: every key's count doubled, in order. */
function twice(dir: string, n: number, G: number, E: number, token: () => number): void {
  let s = 1;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const e: TokenEntries = { n, gid: new Int32Array(n), token: new Int32Array(n), expert: new Int32Array(n), count: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    e.gid[i] = Math.floor(rnd() * G);
    e.token[i] = token();
    e.expert[i] = Math.floor(rnd() * E);
    e.count[i] = 1 + Math.floor(rnd() * 5);
  }
  const rank = Int32Array.from({ length: G }, (_, g) => (g * 7) % G);
  const runs = new TokenRuns(join(dir, `run-${G}-`), E - 1);
  runs.spill(e, rank);
  runs.spill(e, rank);
  const got: Row[] = [];
  runs.merge(rank, 1000, (b) => {
    for (let i = 0; i < b.n; i++) got.push([b.gid[i], b.token[i], b.expert[i], b.count[i]]);
  });
  const sums = new Map<string, Row>();
  for (let i = 0; i < n; i++) {
    const k = `${e.gid[i]},${e.token[i]},${e.expert[i]}`;
    const r = sums.get(k);
    if (r) r[3] += 2 * e.count[i];
    else sums.set(k, [e.gid[i], e.token[i], e.expert[i], 2 * e.count[i]]);
  }
  assert.deepEqual(got, [...sums.values()].sort((a, b) => rank[a[0]] - rank[b[0]] || a[1] - b[1] || a[2] - b[2]));
}

test('token runs: spills of 80k entries, keys sparse (every int32 token, 300 groups, a key of two words) and dense (thousands of cells a bucket), and no spill at all', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-runs-'));
  try {
    let s = 7;
    const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    twice(dir, 80_000, 300, 32768, () => Math.floor(rnd() * 2 ** 32) - 2 ** 31);
    twice(dir, 80_000, 3, 64, () => Math.floor(rnd() * 3000));
    let blocks = 0;
    new TokenRuns(join(dir, 'none-'), 7).merge(new Int32Array(1), 10, () => blocks++);
    assert.equal(blocks, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token runs: single rows spilled by the one-word sort give the very bytes of the general path (keys that fit 16 bits, and wider ones)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-runs-'));
  try {
    let s = 11;
    const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const cases: [G: number, E: number, token: () => number][] = [
      [16, 64, () => Math.floor(rnd() * 50_000)], // a layer per group, a vocabulary: the usual
      [96, 256, () => Math.floor(rnd() * 150_000)], // 16 bits exactly or just past them
      [3, 8, () => Math.floor(rnd() * 20) - 10], // negative tokens
      [300, 32768, () => Math.floor(rnd() * 2 ** 32) - 2 ** 31], // wide keys: the general path
    ];
    for (const [G, E, token] of cases) {
      const n = 50_000;
      const e: TokenEntries = { n, gid: new Int32Array(n), token: new Int32Array(n), expert: new Int32Array(n), count: new Float64Array(n).fill(1) };
      for (let i = 0; i < n; i++) {
        e.gid[i] = Math.floor(rnd() * G);
        e.token[i] = token();
        e.expert[i] = Math.floor(rnd() * E);
      }
      const order = Int32Array.from({ length: G }, (_, g) => (g * 7) % G);
      const files: Buffer[] = [];
      for (const unit of [true, false]) {
        const sub = mkdtempSync(join(dir, 'case-'));
        new TokenRuns(join(sub, 'run-'), E - 1).spill(e, order, unit);
        const made = readdirSync(sub);
        assert.equal(made.length, 1);
        files.push(readFileSync(join(sub, made[0])));
      }
      assert.ok(files[0].length > 0 && files[0].equals(files[1]), `G=${G} E=${E}: the two spills' runs differ`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token runs: a spill of single rows writes each key once, summed, each bucket in (token, expert) order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-runs-'));
  try {
    // rows as the writer spills them (count 1 each): 3 x (g0, t5, e1), (g0, t5, e2), (g1, t5, e1), (g0, t4, e3)
    const rows: [number, number, number][] = [[0, 5, 1], [1, 5, 1], [0, 5, 2], [0, 5, 1], [0, 4, 3], [0, 5, 1]];
    const e: TokenEntries = {
      n: rows.length, gid: Int32Array.from(rows, (r) => r[0]), token: Int32Array.from(rows, (r) => r[1]),
      expert: Int32Array.from(rows, (r) => r[2]), count: new Float64Array(rows.length).fill(1),
    };
    for (const [name, order] of [['two groups', Int32Array.of(0, 1)], ['one group', Int32Array.of(0, 0)]] as const) {
      const one = name === 'one group';
      if (one) e.gid.fill(0); // one bucket: no sort pass moves anything
      const runs = new TokenRuns(join(dir, `${one ? 'b' : 'a'}-`), 63);
      runs.spill(e, order);
      const file = readdirSync(dir).filter((f) => f.startsWith(one ? 'b-' : 'a-'));
      const bytes = readFileSync(join(dir, file[0]));
      const i32 = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), f64 = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
      const records = Array.from({ length: bytes.length / 16 }, (_, r) => [i32[4 * r] >>> 15, i32[4 * r + 1], i32[4 * r] & 32767, f64[2 * r + 1]]);
      const want = one ? [[0, 4, 3, 1], [0, 5, 1, 4], [0, 5, 2, 1]] : [[0, 4, 3, 1], [0, 5, 1, 3], [0, 5, 2, 1], [1, 5, 1, 1]];
      assert.deepEqual(records, want, name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
