import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DuckDBInstance } from '@duckdb/node-api';
import { groupPositions, type GroupKey, type GroupNames } from '../../src/trace/group-order.js';

/**
 * agg-token.parquet is sorted by group in JS (src/trace/group-order.ts); the SQL path and the file
 * it replaces sort with DuckDB's ORDER BY layer, modality, domain, phase. Both must agree on the
 * names where byte order, JS's UTF-16 order and a locale's order differ: case, accents, characters
 * above U+FFFF against U+E000..U+FFFF, prefixes, the empty string, NULL.
 */

const TRICKY = ['text', 'Text', 'TEXT', 'image', 'é', 'e\u0301', 'ä', 'z', 'Z', '😀', '𝔸', '\uFF21', '\uE000', '\uFFFD', '', 'a', 'ab', 'a b', '\u00a0', '10', '9', 'vidéo'];
const names: GroupNames = { modality: TRICKY, domain: TRICKY, phase: TRICKY };

const keyArb = fc.record({
  layer: fc.constantFrom(0, 1, 2, 9, 10, 100, 32767),
  mod: fc.integer({ min: 0, max: TRICKY.length - 1 }),
  dom: fc.integer({ min: -1, max: TRICKY.length - 1 }),
  phase: fc.integer({ min: -1, max: TRICKY.length - 1 }),
});
/** Distinct groups, as the accumulator's are. */
const groupsArb = fc.uniqueArray(keyArb, { minLength: 1, maxLength: 200, size: 'max', selector: (g) => `${g.layer},${g.mod},${g.dom},${g.phase}` });

test('group order: the positions of groupPositions are the order of DuckDB\'s ORDER BY layer, modality, domain, phase', { timeout: 120_000 }, async () => {
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  const lit = (code: number) => (code < 0 ? 'NULL' : `'${TRICKY[code].replace(/'/g, "''")}'`);
  try {
    await fc.assert(
      fc.asyncProperty(groupsArb, async (groups: GroupKey[]) => {
        const values = groups.map((g, i) => `(${i}, ${g.layer}::SMALLINT, ${lit(g.mod)}, ${lit(g.dom)}::VARCHAR, ${lit(g.phase)}::VARCHAR)`).join(', ');
        const rows = (await conn.runAndReadAll(`SELECT i FROM (VALUES ${values}) t(i, layer, modality, domain, phase) ORDER BY layer, modality, domain, phase`)).getRowsJS();
        const want = rows.map((r) => Number(r[0]));
        const rank = groupPositions(groups, names);
        const got = Array.from({ length: groups.length }, (_, i) => i).sort((a, b) => rank[a] - rank[b]);
        assert.deepEqual(got, want);
      }),
      { numRuns: 60, seed: 5 },
    );
  } finally {
    conn.closeSync();
    inst.closeSync();
  }
});
