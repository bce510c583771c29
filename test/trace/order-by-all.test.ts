import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { orderByAll, rankRows, type SortColumn } from '../../src/trace/order-by-all.js';

/**
 * The writer sorts its aggregate tables in JS (order-by-all.ts) where DuckDB's `ORDER BY ALL` used
 * to: DuckDB itself is the reference here, on the values that sort differently elsewhere (case,
 * accents, characters above U+FFFF, NUL, lone surrogates, NULL, negative numbers, -0, NaN, infinities).
 */

test('text is byte-wise in UTF-8 (not UTF-16 order), NULL last', () => {
  const names = ['b', 'B', 'a\0', 'a', 'é', '😀', '\uffff', ''];
  const codes = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, -1]);
  const order = orderByAll([{ codes, names }], codes.length);
  const got = Array.from(order, (i) => (codes[i] < 0 ? null : names[codes[i]]));
  // U+FFFF is EF BF BF, U+1F600 is F0 9F 98 80 (JS's < puts the emoji first: its first unit is D83D)
  assert.deepEqual(got, ['', 'B', 'a', 'a\0', 'b', 'é', '\uffff', '😀', null]);
});

test('numbers: -0 equals 0, NaN after Infinity, NULL after NaN, ties in the order given', () => {
  const values = Float64Array.from([NaN, 0, -0, Infinity, 5, -Infinity, -1.5, NaN]);
  const nulls = Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(Array.from(orderByAll([{ values, nulls }], values.length)), [5, 6, 1, 2, 3, 0, 7, 4]);
  const { rank } = rankRows([{ values, nulls }], values.length);
  assert.deepEqual(Array.from(rank), [5, 2, 2, 4, 7, 0, 1, 5]);
});

const NAMES = ['', 'a', 'A', 'b', 'ab', 'a\0', 'a\0b', 'é', 'e', 'ß', '😀', '\uffff', '\ufffd', '\ud800', 'z', 'Z', ' '];
const NUMBERS = [0, -0, 1, -1, 2.5, -2.5, NaN, Infinity, -Infinity, 1e300, -1e-300, 2 ** 53 - 1, -(2 ** 53 - 1), 32767, -32768];

interface Table {
  /** per column: 'text' or 'number' */
  kinds: ('text' | 'number')[];
  /** rows of values: strings / numbers, null for NULL */
  rows: (string | number | null)[][];
}

const tableArb: fc.Arbitrary<Table> = fc
  .array(fc.constantFrom<'text' | 'number'>('text', 'number'), { minLength: 1, maxLength: 4 })
  .chain((kinds) =>
    fc.record({
      kinds: fc.constant(kinds),
      rows: fc.array(
        fc.tuple(...kinds.map((k) => fc.option<string | number>(k === 'text' ? fc.constantFrom(...NAMES) : fc.oneof(fc.constantFrom(...NUMBERS), fc.integer({ min: -3, max: 3 })), { freq: 6 }))),
        { maxLength: 60 },
      ),
    }),
  );

/** The rows as SortColumns: text as codes into the distinct names in order of appearance. */
function columns(t: Table): SortColumn[] {
  return t.kinds.map((k, j) => {
    if (k === 'number') {
      return { values: Float64Array.from(t.rows, (r) => (r[j] === null ? 0 : (r[j] as number))), nulls: Uint8Array.from(t.rows, (r) => (r[j] === null ? 1 : 0)) };
    }
    const names: string[] = [];
    const codes = Int32Array.from(t.rows, (r) => {
      if (r[j] === null) return -1;
      const i = names.indexOf(r[j] as string);
      return i >= 0 ? i : names.push(r[j] as string) - 1;
    });
    return { codes, names };
  });
}

/** DuckDB's ORDER BY ALL over the rows, with the row number as the last column (so the order is total), and its rank(). */
async function duckOrder(conn: DuckDBConnection, t: Table): Promise<{ order: number[]; rank: number[] }> {
  const cols = t.kinds.map((k, j) => `c${j} ${k === 'text' ? 'VARCHAR' : 'DOUBLE'}`);
  await conn.run(`CREATE OR REPLACE TABLE t (${cols.join(', ')}, rid INTEGER)`);
  const a = await conn.createAppender('t');
  t.rows.forEach((r, i) => {
    r.forEach((v, j) => {
      if (v === null) a.appendNull();
      else if (t.kinds[j] === 'text') a.appendVarchar(v as string);
      else a.appendDouble(v as number);
    });
    a.appendInteger(i);
    a.endRow();
  });
  a.flushSync();
  a.closeSync();
  const keys = t.kinds.map((_, j) => `c${j}`).join(', ');
  const order = (await conn.runAndReadAll('SELECT * FROM t ORDER BY ALL')).getRowsJS().map((r) => Number(r.at(-1)));
  const ranks = (await conn.runAndReadAll(`SELECT rid, rank() OVER (ORDER BY ${keys}) - 1 FROM t ORDER BY rid`)).getRowsJS().map((r) => Number(r[1]));
  return { order, rank: ranks };
}

test('orderByAll and rankRows give DuckDB ORDER BY ALL order and rank() on random rows of tricky values', { timeout: 120_000 }, async () => {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    await fc.assert(
      fc.asyncProperty(tableArb, async (t) => {
        const want = await duckOrder(conn, t);
        const got = rankRows(columns(t), t.rows.length);
        // stable: equal rows keep their order, as the row number decides in DuckDB
        assert.deepEqual(Array.from(got.order), want.order);
        assert.deepEqual(Array.from(got.rank), want.rank);
      }),
      { numRuns: 300, seed: 11 },
    );
  } finally {
    conn.closeSync();
    db.closeSync();
  }
});
