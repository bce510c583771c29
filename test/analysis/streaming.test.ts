import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { analyzeTrace } from '../../src/analysis/analyze.js';

test('a trace bigger than the DuckDB memory limit is counted exactly (streaming over Parquet)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-stream-'));
  const L = 4, E = 8, T = 750_000; // 3M rows, ~100 MB as plain columns
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  // expert = (token + layer) % E; text when token % 3 != 0, so the counts are known in closed form
  await conn.run(`COPY (SELECT (i // ${L} // 100)::INTEGER AS "sample", (i // ${L} % 100)::INTEGER AS pos,
      CASE WHEN (i // ${L}) % 3 = 0 THEN 'image' ELSE 'text' END AS modality, 0::INTEGER AS token, (i % ${L})::SMALLINT AS layer,
      [((i // ${L} + i % ${L}) % ${E})::SMALLINT] AS expert, [1.0::FLOAT] AS gate
    FROM range(${L * T}) r(i)) TO '${join(dir, 'routing.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 100000)`);
  conn.closeSync();
  inst.closeSync();
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ moescope_version: '0.1.0', num_layers: L, num_experts: E, top_k: 1, router_scoring: 'softmax', data: 'test', tokens: {} }));
  const a = await analyzeTrace(dir, { memoryLimit: '64MB' });
  // by a loop over tokens (not rows of the file): layer l, token t -> expert (t + l) % E
  const want = new Float64Array(L * E * 2);
  for (let t = 0; t < T; t++) {
    const m = t % 3 === 0 ? 1 : 0;
    for (let l = 0; l < L; l++) want[(l * E + ((t + l) % E)) * 2 + m]++;
  }
  assert.deepEqual([...a.counts.n], [...want]);
});
