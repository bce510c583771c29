import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parquetMetadata } from 'hyparquet';
import { RowStage } from '../../src/trace/row-stage.js';
import { writeRoutingFile, type RoutingFileSpec } from '../../src/trace/parquet/routing-file.js';
import { query, sqlPath } from '../capture/helpers.js';
import { readAll } from './readers.js';

/**
 * The hand-written Parquet encoder (src/trace/parquet/) against three independent readers:
 * DuckDB (C++), hyparquet (JS) and arrow-rs (Rust, as parquet-wasm), and against the expected
 * rows computed here with a plain sort. Any encoding slip — a level, a bit width, a delta block,
 * an offset in the footer — makes at least one reader fail or read other values.
 */

interface Case {
  K: number;
  E: number;
  probs: number;
  gates: boolean;
  rowGroupRows: number;
  /** batches of rows as they arrive */
  batches: Row[][];
  extra: RoutingFileSpec['extra'];
}

interface Row {
  sample: number;
  pos: number;
  mod: number;
  token: number;
  layer: number;
  experts: number[];
  gates: number[];
  probs: number[];
  extra: number[];
}

const MODS = ['special', 'text', 'image', 'vidéo'];

function stageOf(c: Case): RowStage {
  const st = new RowStage(c.K, c.probs, c.extra.map((x) => x.type));
  for (const b of c.batches) {
    const n = b.length;
    st.append({
      n,
      sample: Int32Array.from(b, (r) => r.sample),
      pos: Int32Array.from(b, (r) => r.pos),
      mod: Uint8Array.from(b, (r) => r.mod),
      token: Int32Array.from(b, (r) => r.token),
      layer: Int32Array.from(b, (r) => r.layer),
      experts: Int32Array.from(b.flatMap((r) => r.experts)),
      gates: c.gates ? Float32Array.from(b.flatMap((r) => r.gates)) : null,
      probs: c.probs ? Float32Array.from(b.flatMap((r) => r.probs)) : null,
      extra: c.extra.map((x, j) => (x.type === 'INTEGER' ? Int32Array.from(b, (r) => r.extra[j]) : Uint16Array.from(b, (r) => r.extra[j]))),
    });
  }
  return st;
}

/** What the file must hold, in file order: ORDER BY layer, sample, pos, arrival. */
function expected(c: Case): Record<string, unknown>[] {
  const all = c.batches.flat().map((r, i) => ({ r, i }));
  all.sort((a, b) => a.r.layer - b.r.layer || a.r.sample - b.r.sample || a.r.pos - b.r.pos || a.i - b.i);
  const f32 = (xs: number[]) => Array.from(Float32Array.from(xs));
  return all.map(({ r }) => {
    const o: Record<string, unknown> = {
      sample: r.sample, pos: r.pos, modality: MODS[r.mod], token: r.token, layer: r.layer, expert: r.experts, gate: c.gates ? f32(r.gates) : null,
    };
    if (c.probs) o.prob = f32(r.probs);
    c.extra.forEach((x, j) => (o[x.name] = x.type === 'INTEGER' ? r.extra[j] : x.names[r.extra[j]]));
    return o;
  });
}

function write(c: Case, path: string): void {
  const st = stageOf(c);
  st.order();
  writeRoutingFile(path, st, { K: c.K, E: c.E, gates: c.gates, probs: c.probs, modalityNames: MODS, extra: c.extra, rowGroupRows: c.rowGroupRows });
}

/** Per row group and column: the footer's min / max / null count against the rows. */
async function checkStatistics(path: string, rows: Record<string, unknown>[], c: Case): Promise<void> {
  const stats = await query(`SELECT row_group_id, row_group_num_rows, path_in_schema, stats_min_value, stats_max_value, stats_null_count FROM parquet_metadata(${sqlPath(path)})`);
  const groups = Math.ceil(rows.length / c.rowGroupRows);
  assert.equal(new Set(stats.map((s) => s[0])).size, groups);
  for (const [g, n, colPath, min, max, nulls] of stats) {
    const col = String(colPath).split(',')[0].trim();
    const part = rows.slice(Number(g) * c.rowGroupRows, (Number(g) + 1) * c.rowGroupRows);
    assert.equal(Number(n), part.length);
    const values = part.flatMap((r) => (r[col] === null ? [] : Array.isArray(r[col]) ? (r[col] as unknown[]) : [r[col]]));
    assert.equal(Number(nulls), part.filter((r) => r[col] === null).length, `${col} null count`);
    // NaN is left out of the statistics (parquet.thrift); none at all when every value is NaN
    const ordered = values.filter((v) => v === v);
    if (ordered.length < values.length && ordered.length === 0) assert.deepEqual([min, max], [null, null], `${col}: all NaN, no statistics`);
    if (ordered.length === 0) continue;
    const cmp = (a: unknown, b: unknown) => (typeof a === 'string' ? (Buffer.compare(Buffer.from(a), Buffer.from(b as string))) : (a as number) - (b as number));
    const sorted = [...ordered].sort(cmp);
    const show = (v: unknown) => (typeof v === 'number' ? String(Math.fround(v)) : String(v));
    assert.equal(show(min === null ? null : typeof sorted[0] === 'number' ? Number(min) : min), show(sorted[0]), `${col} min, row group ${g}`);
    assert.equal(show(max === null ? null : typeof sorted[0] === 'number' ? Number(max) : max), show(sorted.at(-1)), `${col} max, row group ${g}`);
  }
}

async function roundTrip(c: Case): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-pq-'));
  try {
    const path = join(dir, 'routing.parquet');
    write(c, path);
    const want = expected(c);
    for (const [reader, got] of Object.entries(await readAll(path))) assert.deepEqual(got, want, `${reader} reads other rows`);
    await checkStatistics(path, want, c);
    const buf = readFileSync(path);
    const meta = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    assert.equal(Number(meta.num_rows), want.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A simple deterministic generator for the hand-made cases. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function engineLike(opts: { samples: number; T: number; L: number; K: number; E: number; probs?: number; seed: number; tokenMax?: number }): Row[][] {
  const rnd = lcg(opts.seed);
  const batches: Row[][] = [];
  for (let s = 0; s < opts.samples; s++) {
    const tokens = Array.from({ length: opts.T }, () => Math.floor(rnd() * (opts.tokenMax ?? 50000)));
    for (let l = 0; l < opts.L; l++) {
      // one record per sample and layer, as engines write them
      batches.push(tokens.map((token, pos) => {
        const experts: number[] = [];
        while (experts.length < opts.K) {
          const e = Math.floor(rnd() * opts.E);
          if (!experts.includes(e)) experts.push(e);
        }
        const gates = experts.map(() => rnd());
        return { sample: s, pos, mod: pos === 0 ? 0 : 1, token, layer: 2 * l, experts, gates, probs: Array.from({ length: opts.probs ?? 0 }, () => rnd()), extra: [pos < opts.T / 2 ? 0 : 1] };
      }));
    }
  }
  return batches;
}

test('routing file: engine-shaped rows (top-8 of 64, phase, NULL gates) read the same in DuckDB, hyparquet and arrow-rs', { timeout: 180_000 }, async () => {
  await roundTrip({
    K: 8, E: 64, probs: 0, gates: false, rowGroupRows: 5000,
    batches: engineLike({ samples: 4, T: 1200, L: 3, K: 8, E: 64, seed: 1 }),
    extra: [{ name: 'phase', type: 'VARCHAR', names: ['prefill', 'decode'] }],
  });
});

test('routing file: gates and full probabilities, wide expert ids (E = 1000), partial row groups', { timeout: 180_000 }, async () => {
  await roundTrip({
    K: 3, E: 1000, probs: 1000, gates: true, rowGroupRows: 377,
    batches: engineLike({ samples: 2, T: 250, L: 2, K: 3, E: 1000, probs: 1000, seed: 2 }),
    extra: [{ name: 'phase', type: 'VARCHAR', names: ['prefill', 'decode'] }],
  });
});

test('routing file: top-1 of 1 expert, and an empty file', { timeout: 180_000 }, async () => {
  await roundTrip({ K: 1, E: 1, probs: 0, gates: true, rowGroupRows: 100, batches: engineLike({ samples: 3, T: 50, L: 2, K: 1, E: 1, seed: 3 }), extra: [] });
  await roundTrip({ K: 2, E: 4, probs: 0, gates: true, rowGroupRows: 100, batches: [], extra: [] });
});

const rowArb = (K: number, E: number, probs: number, nExtra: number) =>
  fc.record({
    // negative or far apart: chunks that cannot be DELTA_BINARY_PACKED within int32 go PLAIN
    sample: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: -3, max: 5 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    pos: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    mod: fc.integer({ min: 0, max: MODS.length - 1 }),
    token: fc.oneof(fc.integer({ min: -3, max: 40 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    layer: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 32767 })),
    experts: fc.array(fc.integer({ min: 0, max: E - 1 }), { minLength: K, maxLength: K }),
    gates: fc.array(fc.oneof(fc.float({ noNaN: true }), fc.constantFrom(0, -0, 1, NaN)), { minLength: K, maxLength: K }),
    probs: fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: probs, maxLength: probs }),
    extra: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })).map((t) => t.slice(0, nExtra)),
  });

test('routing file: random rows in any order (every column, extreme values) read back in order from all three readers', { timeout: 180_000 }, async () => {
  const caseArb = fc
    .record({ K: fc.integer({ min: 1, max: 17 }), E: fc.constantFrom(1, 2, 3, 64, 255, 256, 257, 30000), probs: fc.constantFrom(0, 3), gates: fc.boolean(), rowGroupRows: fc.integer({ min: 1, max: 300 }) })
    .filter((x) => x.K <= x.E)
    .chain((x) =>
      fc.record({
        head: fc.constant(x),
        batches: fc.array(fc.array(rowArb(x.K, x.E, x.probs, 2), { minLength: 1, maxLength: 120 }), { maxLength: 6 }),
      }),
    );
  await fc.assert(
    fc.asyncProperty(caseArb, async ({ head, batches }) => {
      await roundTrip({
        ...head, batches,
        extra: [{ name: 'phase', type: 'VARCHAR', names: ['prefill', 'decode', ''] }, { name: 'rank', type: 'INTEGER', names: [] }],
      });
    }),
    { numRuns: 40, seed: 7 },
  );
});
