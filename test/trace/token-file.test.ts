import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parquetReadObjects } from 'hyparquet';
import * as parquetWasm from 'parquet-wasm';
import { tableFromIPC } from 'apache-arrow';
import { writeTokenFile, type TokenGroups } from '../../src/trace/parquet/token-file.js';
import type { TokenEntries } from '../../src/trace/token-runs.js';
import { query, sqlPath } from '../capture/helpers.js';

/**
 * agg-token.parquet as our Parquet writer encodes it (src/trace/parquet/token-file.ts) against
 * three readers, DuckDB, hyparquet and arrow-rs (parquet-wasm): the rows handed over, block by block
 * (one row group each), with the schema DuckDB gives the SQL of the table, and each row group's
 * statistics. The blocks mix what changes the encoding: NULL and non-NULL text, an all-NULL
 * column, negative tokens (PLAIN) or not (DELTA), counts past 2^31 (PLAIN INT64) or not (DELTA).
 */

const MODS = ['special', 'text', 'image', 'vidéo'];
const DOMAINS = ['arxiv', 'Code', '😀', ''];

interface Entry {
  gid: number;
  token: number;
  expert: number;
  n: number;
}

const entryArb = (G: number) =>
  fc.record({
    gid: fc.integer({ min: 0, max: G - 1 }),
    token: fc.integer({ min: 0, max: 50_000 }),
    expert: fc.integer({ min: 0, max: 32767 }),
    n: fc.integer({ min: 1, max: 1000 }),
  });
const blockArb = (G: number) =>
  fc
    .record({
      rows: fc.array(entryArb(G), { minLength: 1, maxLength: 60, size: 'max' }),
      negative: fc.boolean(),
      large: fc.boolean(),
    })
    .map(({ rows, negative, large }) =>
      rows.map((r, i) => ({
        ...r,
        token: negative && i % 3 === 0 ? -r.token - 2 ** 30 : r.token,
        // on either side of 2^31 (the largest DELTA count), and far past it
        n: i % 4 !== 0 ? r.n : !large ? 2 ** 31 - 1 : i % 8 === 0 ? 2 ** 31 - 1 + (r.n % 3) : r.n * 2 ** 40,
      })),
    );
const caseArb = fc
  .record({ G: fc.integer({ min: 1, max: 12 }), phases: fc.boolean() })
  .chain(({ G, phases }) =>
    fc.record({
      groups: fc.array(
        fc.record({
          layer: fc.integer({ min: 0, max: 32767 }),
          mod: fc.integer({ min: 0, max: MODS.length - 1 }),
          dom: fc.integer({ min: -1, max: DOMAINS.length - 1 }),
          phase: phases ? fc.integer({ min: -1, max: 1 }) : fc.constant(-1),
        }),
        { minLength: G, maxLength: G },
      ),
      phases: fc.constant(phases),
      blocks: fc.array(blockArb(G), { maxLength: 5 }),
    }),
  );

/** Readers' values as plain JS: numbers (bigints too), strings, null. */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

test('agg-token file: the rows, schema and statistics read back by DuckDB, hyparquet and arrow-rs', { timeout: 180_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, async ({ groups, phases, blocks }) => {
      const dir = mkdtempSync(join(tmpdir(), 'moescope-tokfile-'));
      try {
        const path = join(dir, 'agg-token.parquet');
        const phaseNames = phases ? ['prefill', 'decode'] : [];
        const g: TokenGroups = {
          layer: Int32Array.from(groups, (x) => x.layer), mod: Int32Array.from(groups, (x) => x.mod),
          dom: Int32Array.from(groups, (x) => x.dom), phase: Int32Array.from(groups, (x) => x.phase),
          names: { modality: MODS, domain: DOMAINS, phase: phaseNames },
        };
        writeTokenFile(path, g, (rowGroup) => {
          for (const b of blocks) {
            // columns longer than the block, as the merge's are
            const e: TokenEntries = { n: b.length, gid: new Int32Array(b.length + 2), token: new Int32Array(b.length + 2), expert: new Int32Array(b.length + 2), count: new Float64Array(b.length + 2) };
            b.forEach((r: Entry, i: number) => {
              e.gid[i] = r.gid;
              e.token[i] = r.token;
              e.expert[i] = r.expert;
              e.count[i] = r.n;
            });
            rowGroup(e);
          }
        });
        const want = blocks.flat().map((r) => {
          const k = groups[r.gid];
          return { layer: k.layer, modality: MODS[k.mod], domain: k.dom < 0 ? null : DOMAINS[k.dom], phase: k.phase < 0 ? null : phaseNames[k.phase], token: r.token, expert: r.expert, n: r.n };
        });

        const desc = await query(`DESCRIBE SELECT * FROM ${sqlPath(path)}`);
        assert.deepEqual(desc.map((r) => [r[0], r[1]]), [['layer', 'SMALLINT'], ['modality', 'VARCHAR'], ['domain', 'VARCHAR'], ['phase', 'VARCHAR'], ['token', 'INTEGER'], ['expert', 'SMALLINT'], ['n', 'BIGINT']]);
        const cols = desc.map((r) => String(r[0]));
        const duck = (await query(`SELECT * FROM ${sqlPath(path)}`)).map((row) => plain(Object.fromEntries(cols.map((c, j) => [c, row[j]]))));
        const buf = readFileSync(path);
        const hy = (await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) })).map(plain);
        const arrow = [...tableFromIPC(parquetWasm.readParquet(new Uint8Array(buf)).intoIPCStream())].map((r) => plain(r!.toJSON()));
        for (const [reader, got] of Object.entries({ duckdb: duck, hyparquet: hy, 'arrow-rs': arrow })) assert.deepEqual(got, want, `${reader} reads other rows`);

        // per row group and column: min / max / null count of the values
        const stats = await query(`SELECT row_group_id, row_group_num_rows, path_in_schema, stats_min_value, stats_max_value, stats_null_count FROM parquet_metadata(${sqlPath(path)})`);
        assert.equal(new Set(stats.map((s) => s[0])).size, blocks.length);
        const starts = blocks.map((_, i) => blocks.slice(0, i).reduce((t, b) => t + b.length, 0));
        for (const [rg, n, col, min, max, nulls] of stats) {
          const part = want.slice(starts[Number(rg)], starts[Number(rg)] + blocks[Number(rg)].length);
          assert.equal(Number(n), part.length);
          const c = String(col) as keyof (typeof want)[number];
          const values = part.map((r) => r[c]).filter((v) => v !== null);
          assert.equal(Number(nulls), part.length - values.length, `${c} null count, row group ${rg}`);
          if (values.length === 0) {
            assert.deepEqual([min, max], [null, null], `${c}: no statistics without values`);
            continue;
          }
          const sorted = [...values].sort((a, b) => (typeof a === 'string' ? Buffer.compare(Buffer.from(a), Buffer.from(b as string)) : (a as number) - (b as number)));
          const read = (s: unknown) => (typeof sorted[0] === 'number' ? Number(s) : s);
          assert.deepEqual([read(min), read(max)], [sorted[0], sorted.at(-1)], `${c} min/max, row group ${rg}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 40, seed: 9 },
  );
});
