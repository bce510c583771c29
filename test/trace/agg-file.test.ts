import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { writeAggFile, type AggColumn } from '../../src/trace/parquet/agg-file.js';
import { groupOrder } from '../../src/trace/group-order.js';
import { query, sqlPath } from '../capture/helpers.js';
import { readAll } from './readers.js';

/**
 * The small aggregate tables are written by moescope's encoder and sorted in JS (agg-file.ts),
 * where DuckDB's `COPY (... ORDER BY ALL)` wrote them: on random tables of awkward values, the file
 * must hold exactly the rows given (doubles to the bit: -0, NaN, infinities), in the order DuckDB's
 * own ORDER BY ALL gives them, with the column types DuckDB gave, and read the same in hyparquet
 * and arrow-rs.
 */

const NAMES = ['text', 'Text', 'image', 'special', '', 'é', 'e', '😀', '\uffff', 'a\0', 'a', 'prefill', 'decode'];
const DOUBLES = [0, -0, NaN, Infinity, -Infinity, 1e-310, -1.5, 0.1 + 0.2, 1e300, 7];
const BIGINTS = [0, 1, -1, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 32, 2 ** 31, 123456789];

const code = (n: number) => fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: n - 1 }));
const groupArb = fc.record({ layer: fc.integer({ min: -2, max: 3 }), mod: fc.integer({ min: 0, max: NAMES.length - 1 }), dom: code(NAMES.length), phase: code(NAMES.length) });
const caseArb = fc.array(groupArb, { minLength: 1, maxLength: 8 }).chain((groups) =>
  fc.record({
    groups: fc.constant(groups),
    rows: fc.array(
      fc.record({
        gid: fc.integer({ min: 0, max: groups.length - 1 }),
        small: fc.integer({ min: -3, max: 3 }),
        prev: code(NAMES.length),
        double: fc.oneof(fc.constantFrom(...DOUBLES), fc.double()),
        nullDouble: fc.boolean(),
        big: fc.oneof(fc.constantFrom(...BIGINTS), fc.integer()),
      }),
      { maxLength: 80 },
    ),
  }),
);

/** A value as a sortable key of its exact identity (-0 and NaN included). */
const key = (row: unknown[]) => JSON.stringify(row.map((v) => (typeof v === 'number' ? (Object.is(v, -0) ? '-0' : String(v)) : v)));
const byKey = (rows: unknown[][]) => [...rows].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

test('aggregate files: the rows given, in DuckDB ORDER BY ALL order, DuckDB types, the same in three readers', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-agg-'));
  try {
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ groups: keys, rows }) => {
        const path = join(dir, 'agg.parquet');
        const names = { modality: NAMES, domain: NAMES, phase: NAMES };
        const groups = groupOrder(keys, names);
        const n = rows.length;
        const columns: AggColumn[] = [
          { name: 'expert', type: 'SMALLINT', values: Int32Array.from(rows, (r) => r.small) },
          { name: 'prev_phase', type: 'VARCHAR', codes: Int32Array.from(rows, (r) => r.prev), names: NAMES },
          { name: 'sum', type: 'DOUBLE', values: Float64Array.from(rows, (r) => r.double), nulls: Uint8Array.from(rows, (r) => (r.nullDouble ? 1 : 0)) },
          { name: 'plain_sum', type: 'DOUBLE', values: Float64Array.from(rows, (r) => r.double) },
          { name: 'n', type: 'BIGINT', values: Float64Array.from(rows, (r) => r.big) },
          // last and unique: rows equal but for -0 / 0 still have one order, and it tells rows apart
          { name: 'id', type: 'BIGINT', values: Float64Array.from(rows, (_, i) => i) },
        ];
        writeAggFile(path, groups, { gid: Int32Array.from(rows, (r) => r.gid), columns });

        const text = (c: number) => (c < 0 ? null : NAMES[c]);
        const want = rows.map((r, i) => {
          const g = keys[r.gid];
          return [g.layer, text(g.mod), text(g.dom), text(g.phase), r.small, text(r.prev), r.nullDouble ? null : r.double, r.double, r.big, i];
        });
        const file = sqlPath(path);
        const types = await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${file})`);
        assert.deepEqual(types, [
          ['layer', 'SMALLINT'], ['modality', 'VARCHAR'], ['domain', 'VARCHAR'], ['phase', 'VARCHAR'], ['expert', 'SMALLINT'],
          ['prev_phase', 'VARCHAR'], ['sum', 'DOUBLE'], ['plain_sum', 'DOUBLE'], ['n', 'BIGINT'], ['id', 'BIGINT'],
        ]);
        const num = (row: unknown[]) => row.map((v) => (typeof v === 'bigint' ? Number(v) : v));
        const got = (await query(`SELECT * FROM ${file}`)).map(num);
        assert.equal(got.length, n);
        assert.deepEqual(byKey(got), byKey(want), 'other rows than given');
        // the order by the unique last column: DuckDB's sort hands -0 back as 0
        const ids = (sql: string) => query(sql).then((r) => r.map((row) => Number(row.at(-1))));
        assert.deepEqual(await ids(`SELECT * FROM ${file}`), await ids(`SELECT * FROM ${file} ORDER BY ALL`), 'not in ORDER BY ALL order');
        const cols = types.map((t) => String(t[0]));
        for (const [reader, objs] of Object.entries(await readAll(path))) {
          assert.deepEqual(objs.map((o) => cols.map((c) => o[c])), got, `${reader} reads other rows`);
        }
      }),
      { numRuns: 40, seed: 5 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('aggregate groups: names reduced to those groups use, ranks by ORDER BY layer, modality, domain, phase with ties shared', () => {
  const names = { modality: ['x', 'text', 'image'], domain: Array.from({ length: 1000 }, (_, i) => `d${i}`), phase: ['decode', 'prefill'] };
  const keys = [
    { layer: 1, mod: 1, dom: 999, phase: -1 },
    { layer: 0, mod: 2, dom: -1, phase: 1 },
    { layer: 1, mod: 1, dom: 5, phase: 0 },
    { layer: 0, mod: 2, dom: -1, phase: 0 },
    { layer: 1, mod: 1, dom: 5, phase: 0 },
  ];
  const g = groupOrder(keys, names);
  assert.deepEqual(g.names, { modality: ['text', 'image'], domain: ['d999', 'd5'], phase: ['prefill', 'decode'] });
  // (0, image, NULL, decode) < (0, image, NULL, prefill) < (1, text, d5, decode) x2 < (1, text, d999, NULL)
  assert.deepEqual(Array.from(g.order), [3, 1, 2, 4, 0]);
  assert.deepEqual(Array.from(g.rank), [4, 1, 2, 0, 2]);
});
