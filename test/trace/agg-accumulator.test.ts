import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { parquetReadObjects } from 'hyparquet';
import { TraceWriter, type TraceWriterOptions } from '../../src/trace/writer.js';
import { AGG_TABLES, aggFile, aggregateQueries, baseRelation } from '../../src/trace/aggregates.js';
import { writeDirAtomic } from '../../src/util/atomic.js';

/**
 * The writer counts the aggregates on the way in (agg-accumulator.ts) and writes them itself
 * (parquet/agg-file.ts); `index` computes them with the SQL of aggregates.ts. Both must give the
 * same tables for the same rows — columns, types, values, and rows in ORDER BY ALL order —
 * including the cases the one-pass counter hands to SQL (rows out of order, a domain that arrives
 * after its rows).
 */

const KEYS: Record<string, string[]> = {
  counts: ['layer', 'modality', 'domain', 'phase', 'expert'],
  tokens: ['layer', 'modality', 'domain', 'phase'],
  repeat: ['layer', 'modality', 'domain', 'phase', 'prev_modality', 'prev_phase'],
  coact: ['layer', 'modality', 'domain', 'phase', 'i', 'j'],
  token: ['layer', 'modality', 'domain', 'phase', 'token', 'expert'],
};

let seed = 12345;
function rnd(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}

interface Design {
  K: number;
  E: number;
  samples: number;
  T: number;
  layers: number[];
  phase?: boolean;
  domains?: boolean;
  probs?: boolean;
  shuffle?: boolean; // rows not in (sample, layer, pos) order
  domainLate?: boolean; // samples appended after their rows
  zeroGates?: boolean; // some rows with unusable gates
  repeats?: boolean; // some expert lists with an id twice
  noGates?: boolean; // the producer recorded no gates (dropGates before the first rows)
  coactFoldRows?: number; // fold the 32-bit co-activation counts this often (at 2^32 rows otherwise)
  vocab?: number; // distinct tokens (20 unless told)
  tokens?: number[]; // tokens drawn from these instead
  bufferRows?: number; // rows per shard (100 unless told)
  tokenSpill?: number; // per-token counts go to disk every this many rows (131,072 unless told)
  domainNames?: (string | null)[]; // sample s has domain domainNames[s % length] (null: NULL); arxiv/code/web unless told
}

/** Rows per sample, layer by layer, tokens in order (unless shuffled); random experts and gates. */
function makeRows(d: Design) {
  const n = d.samples * d.layers.length * d.T;
  const { K, E } = d;
  const sample = new Int32Array(n), pos = new Int32Array(n), token = new Int32Array(n), layer = new Int32Array(n);
  const modality: string[] = [], phase: string[] = [];
  const experts = new Int32Array(n * K), gates = new Float32Array(n * K), probs = d.probs ? new Float32Array(n * E) : undefined;
  let i = 0;
  for (let s = 0; s < d.samples; s++) {
    for (const l of d.layers) {
      for (let t = 0; t < d.T; t++, i++) {
        sample[i] = s;
        pos[i] = t;
        layer[i] = l;
        token[i] = d.tokens ? d.tokens[Math.floor(rnd() * d.tokens.length)] : Math.floor(rnd() * (d.vocab ?? 20)) - (t % 7 === 0 ? 5 : 0);
        modality.push(t < d.T / 3 ? 'text' : t < (2 * d.T) / 3 ? 'image' : t === d.T - 1 ? 'special' : 'text');
        phase.push(t < d.T / 2 ? 'prefill' : 'decode');
        const used = new Set<number>();
        const w: number[] = [];
        for (let k = 0; k < K; k++) {
          let e: number;
          do e = Math.floor(rnd() * E);
          while (used.has(e) && !(d.repeats && k === 1 && t % 5 === 0));
          used.add(e);
          experts[i * K + k] = e;
          w.push(rnd());
        }
        w.sort((a, b) => b - a);
        for (let k = 0; k < K; k++) gates[i * K + k] = d.zeroGates && t % 4 === 0 ? 0 : w[k];
        if (probs) {
          let z = 0;
          for (let e = 0; e < E; e++) z += probs[i * E + e] = rnd() < 0.1 ? 0 : rnd();
          for (let e = 0; e < E; e++) probs[i * E + e] /= z;
        }
      }
    }
  }
  return { sample, pos, token, layer, modality, phase, experts, gates, probs, n };
}

async function writeTrace(dir: string, d: Design, extra: Partial<TraceWriterOptions> = {}): Promise<string> {
  const out = join(dir, 'trace');
  const r = makeRows(d);
  const order = Array.from({ length: r.n }, (_, i) => i);
  if (d.shuffle) for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const pick = <T extends Int32Array | Float32Array>(a: T, w: number): T => {
    const b = new (a.constructor as new (n: number) => T)(a.length);
    order.forEach((src, dst) => b.set(a.subarray(src * w, src * w + w), dst * w));
    return b;
  };
  const names: (string | null)[] = d.domainNames ?? ['arxiv', 'code', 'web'];
  const domain = (s: number) => (d.domains ? names[s % names.length] : null);
  await writeDirAtomic(out, async (dir) => {
    const w = await TraceWriter.open(dir, {
      topK: d.K, numExperts: d.E, fullProbs: !!d.probs, bufferRows: d.bufferRows ?? 100,
      extraColumns: d.phase ? [{ name: 'phase', type: 'VARCHAR' }] : undefined, coactFoldRows: d.coactFoldRows, tokenSpill: d.tokenSpill, ...extra,
    });
    if (d.noGates) w.dropGates();
    const samples = async () => {
      for (let s = 0; s < d.samples; s++) await w.appendSample({ sample: s, text: `sample ${s}`, images: [], source: 'test', domain: domain(s) });
    };
    if (!d.domainLate) await samples();
    const B = 500; // several batches, several shards
    const rows = { sample: pick(r.sample, 1), pos: pick(r.pos, 1), token: pick(r.token, 1), layer: pick(r.layer, 1), experts: pick(r.experts, d.K), gates: pick(r.gates, d.K), probs: r.probs && pick(r.probs, d.E) };
    for (let o = 0; o < r.n; o += B) {
      const sl = order.slice(o, o + B);
      const take = <T extends Int32Array | Float32Array>(a: T, wd: number): T => a.subarray(o * wd, (o + sl.length) * wd) as T;
      await w.appendRouting({
        sample: take(rows.sample, 1), pos: take(rows.pos, 1), token: take(rows.token, 1), layer: take(rows.layer, 1),
        modality: sl.map((i) => r.modality[i]), experts: take(rows.experts, d.K), gates: take(rows.gates, d.K),
        probs: rows.probs && take(rows.probs, d.E), extra: d.phase ? { phase: sl.map((i) => r.phase[i]) } : undefined,
      });
    }
    if (d.domainLate) await samples();
    await w.finish({ num_layers: 8, router_scoring: 'softmax', data: 'test' });
  });
  return out;
}

/** The trace's stored aggregates vs the SQL of aggregates.ts over its rows, summed by visible keys. */
async function compare(trace: string, d: Design): Promise<void> {
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  try {
    const shards = existsSync(join(trace, 'routing')) ? readdirSync(join(trace, 'routing')).map((f) => join(trace, 'routing', f)) : [join(trace, 'routing.parquet')];
    const lit = (f: string) => `'${f.replace(/'/g, "''")}'`;
    const base = baseRelation(`read_parquet([${shards.map(lit).join(', ')}])`, `read_parquet(${lit(join(trace, 'samples.parquet'))})`, {
      domain: d.domains ? 'samples' : null, phase: !!d.phase, prob: !!d.probs,
    });
    const sql = aggregateQueries(base, { hasProb: !!d.probs, numExperts: d.E, topK: d.K });
    for (const t of AGG_TABLES) {
      const keys = KEYS[t];
      const file = lit(join(trace, aggFile(t)));
      const describe = async (rel: string) => (await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${rel}`)).getRows().map((r): [string, string] => [String(r[0]), String(r[1])]);
      // the file as the SQL would have it: its columns and types, rows in ORDER BY ALL order
      assert.deepEqual(await describe(file), await describe(`(${sql[t]})`), `${t}: columns or types differ from the SQL's`);
      const rows = async (q: string) => (await conn.runAndReadAll(q)).getRowsJson();
      assert.deepEqual(await rows(`SELECT * FROM ${file}`), await rows(`SELECT * FROM ${file} ORDER BY ALL`), `${t}: rows not in ORDER BY ALL order`);
      const types = new Map(await describe(file));
      const vals = [...types.keys()].filter((c) => !keys.includes(c));
      // counts exactly (an expert never first has n_top1 0 on both sides, not NULL); a NULL sum
      // (no probabilities) must be NULL on both sides
      const differs = (v: string) => types.get(v) === 'BIGINT'
        ? `a.${v} IS DISTINCT FROM b.${v}`
        : `(a.${v} IS NULL) <> (b.${v} IS NULL) OR abs(a.${v} - b.${v}) > 1e-6 * (1 + abs(b.${v}))`;
      const norm = (src: string) => `(SELECT ${keys.map((k) => `coalesce(${k}::VARCHAR, '~') AS ${k}`).join(', ')}, ${vals.map((v) => `sum(${v})::DOUBLE AS ${v}`).join(', ')} FROM ${src} GROUP BY ALL)`;
      const got = norm(`read_parquet(${file})`);
      const want = norm(`(${sql[t]})`);
      const diff = await conn.runAndReadAll(`SELECT ${keys.join(', ')}, ${vals.map((v) => `a.${v} AS got_${v}, b.${v} AS want_${v}`).join(', ')}
        FROM ${got} a FULL JOIN ${want} b USING (${keys.join(', ')})
        WHERE a.${vals[0]} IS NULL OR b.${vals[0]} IS NULL OR ${vals.map(differs).join(' OR ')} LIMIT 3`);
      assert.deepEqual(diff.getRowObjectsJson(), [], `${t}: stored aggregate differs from SQL`);
      const n = Number((await conn.runAndReadAll(`SELECT count(*) FROM ${want}`)).getRows()[0][0]);
      if (t !== 'coact' || d.K >= 2) assert.ok(n > 0, `${t}: the design must produce rows`);
    }
    await compareTokenRows(conn, join(trace, aggFile('token')), sql.token, !d.domainLate);
  } finally {
    conn.closeSync();
    inst.closeSync();
  }
}

/**
 * agg-token.parquet row by row, in file order, as DuckDB and hyparquet read it, against the SQL
 * definition sorted as the stored tables are (ORDER BY ALL): same rows, same order. `counted`: the
 * writer counted the table and wrote it itself (else DuckDB did, from the rows).
 */
async function compareTokenRows(conn: DuckDBConnection, file: string, sql: string, counted: boolean): Promise<void> {
  const lit = `'${file.replace(/'/g, "''")}'`;
  const by = String((await conn.runAndReadAll(`SELECT created_by FROM parquet_file_metadata(${lit})`)).getRows()[0][0]);
  assert.equal(by.startsWith('moescope'), counted, `agg-token.parquet written by ${by}`);
  const cols = ['layer', 'modality', 'domain', 'phase', 'token', 'expert', 'n'];
  const desc = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${lit}`)).getRows().map((r) => `${r[0]} ${r[1]}`);
  assert.deepEqual(desc, ['layer SMALLINT', 'modality VARCHAR', 'domain VARCHAR', 'phase VARCHAR', 'token INTEGER', 'expert SMALLINT', 'n BIGINT']);
  const rows = async (q: string) => (await conn.runAndReadAll(q)).getRowsJS().map((r) => r.map((v) => (typeof v === 'bigint' ? Number(v) : v)));
  const want = await rows(`SELECT ${cols.join(', ')} FROM (${sql}) ORDER BY ALL`);
  assert.deepEqual(await rows(`SELECT * FROM ${lit}`), want, 'agg-token.parquet (DuckDB) differs from the SQL, or is in another order');
  if (!counted) return; // zstd, which hyparquet does not read without a codec package
  const buf = readFileSync(file);
  const hy = await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) });
  assert.deepEqual(hy.map((r) => cols.map((c) => (typeof r[c] === 'bigint' ? Number(r[c]) : r[c]))), want, 'agg-token.parquet (hyparquet) differs from the SQL');
}

const cases: [string, Design][] = [
  ['top-3 of 6, phases, domains, unusable gates, an id twice, several shards', { K: 3, E: 6, samples: 9, T: 40, layers: [1, 3, 4], phase: true, domains: true, zeroGates: true, repeats: true }],
  ['top-2 of 700 (sparse co-activation), full probabilities', { K: 2, E: 700, samples: 4, T: 30, layers: [0, 2], probs: true }],
  ['top-1 (no co-activation), rows in random order: the repeat rate goes to SQL', { K: 1, E: 4, samples: 5, T: 25, layers: [0, 1], shuffle: true }],
  ['top-8 of 12 without gates, co-activation counts folded every 7 rows', { K: 8, E: 12, samples: 5, T: 30, layers: [0, 3], noGates: true, coactFoldRows: 7 }],
  ['top-17 of 40 (the co-activation counter not unrolled), phases, unusable gates', { K: 17, E: 40, samples: 4, T: 30, layers: [0, 2], phase: true, zeroGates: true }],
  ['top-2 of 16 over a large vocabulary: the per-token counts drain from their table and spill several times', { K: 2, E: 16, samples: 20, T: 1100, layers: [0, 1, 2, 3], vocab: 1_000_000, bufferRows: 40_000 }],
  [
    'top-2 of 5, 180 groups (domains with names that sort differently byte-wise, in JS and by locale, and NULL), phases, tokens at the int32 edges: the per-token counts spill hundreds of times and merge in passes',
    {
      K: 2, E: 5, samples: 18, T: 40, layers: [0, 2, 10, 11], phase: true, domains: true, tokenSpill: 8,
      domainNames: ['web', 'Web', 'é', 'e', '😀', '\uFF21', '', 'web ', null],
      tokens: [-(2 ** 31), -65537, -65536, -1, 0, 1, 7, 65535, 65536, 2 ** 31 - 1, 123_456_789, -987_654_321],
    },
  ],
  ['top-4 of 8, domains known only after the rows: everything goes to SQL', { K: 4, E: 8, samples: 6, T: 20, layers: [0, 5], domains: true, domainLate: true }],
];
for (const [name, d] of cases) {
  test(`writer aggregates equal the SQL definitions: ${name}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moescope-acc-'));
    try {
      const trace = await writeTrace(dir, d);
      assert.ok(existsSync(join(trace, 'routing')), 'the design is meant to write shards');
      await compare(trace, d);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('gates dropped after shards went out: every shard has a NULL gate column, and the aggregates say so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-acc-'));
  try {
    const d: Design = { K: 2, E: 5, samples: 4, T: 50, layers: [0, 1] };
    const out = join(dir, 'trace');
    const r = makeRows(d);
    await writeDirAtomic(out, async (dd) => {
      const w = await TraceWriter.open(dd, { topK: 2, numExperts: 5, fullProbs: false, bufferRows: 100 });
      await w.appendRouting({ sample: r.sample, pos: r.pos, token: r.token, layer: r.layer, modality: r.modality, experts: r.experts, gates: r.gates });
      w.dropGates();
      await w.finish({ num_layers: 2, router_scoring: 'softmax', data: 'test' });
    });
    const inst = await DuckDBInstance.create(':memory:');
    const conn = await inst.connect();
    const g = (await conn.runAndReadAll(`SELECT count(*), count(gate) FROM '${join(out, 'routing')}/*.parquet'`)).getRows()[0];
    assert.deepEqual(g.map(Number), [r.n, 0]);
    conn.closeSync();
    inst.closeSync();
    await compare(out, d);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
