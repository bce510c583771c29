import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { analyzeTrace } from '../../src/analysis/analyze.js';
import { openDuck } from '../../src/analysis/db.js';
import { mergeTraces } from '../../src/trace/merge.js';
import { rng, writeDesign, type Row } from './planted.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'moescope-docsql-'));

/** The `-- metric: NAME` SQL blocks of docs/metrics.md, as written there. */
function documentedSql(): Map<string, string> {
  const md = readFileSync(join(root, 'docs', 'metrics.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of md.matchAll(/```sql\n-- metric: (\w+)\n([\s\S]*?)```/g)) out.set(m[1], m[2]);
  return out;
}

const near = (a: unknown, b: number | null | undefined, what: string, eps = 1e-9) =>
  assert.ok(b !== null && b !== undefined && Math.abs(Number(a) - b) <= eps * Math.max(1, Math.abs(b)), `${what}: SQL ${a} vs moescope ${b}`);

test('the SQL of docs/metrics.md, run by DuckDB over a sharded trace, gives moescope\'s numbers', async () => {
  const E = 8, K = 2, r = rng(11);
  const shards: string[] = [];
  for (let k = 0; k < 3; k++) {
    const rows: Row[] = [];
    for (let s = k * 10; s < k * 10 + 10; s++) for (let p = 0; p < 16; p++) for (let l = 0; l < 2; l++) {
      const sticky = l === 1 && p > 0 && r() < 0.5;
      const e1 = sticky ? rows[rows.length - 2].experts[0] : Math.floor(r() * (p % 2 ? 5 : E));
      const e2 = (e1 + 1 + Math.floor(r() * (E - 1))) % E;
      const g = 0.5 + r() * 0.45;
      rows.push({ sample: s, pos: p, modality: p === 0 ? 'special' : p % 2 ? 'text' : 'image', token: p % 6, layer: l, experts: [e1, e2], gates: [g, 1 - g] });
    }
    shards.push(await writeDesign(join(tmp, `s${k}`), { numLayers: 2, numExperts: E, topK: K, rows }));
  }
  const trace = join(tmp, 'sharded');
  {
    const { conn, close } = await openDuck();
    await mergeTraces(conn, shards, trace, '0.1.0');
    close();
  }
  const results = new Map<string, Record<string, unknown>[]>();
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  await conn.run(`CREATE VIEW routing AS SELECT * FROM read_parquet('${join(trace, 'routing')}/**/*.parquet', hive_partitioning = true)`);
  await conn.run('CREATE MACRO element_at(l, i) AS list_extract(l, i)');
  await conn.run('CREATE MACRO cardinality(l) AS len(l)');
  const sql = documentedSql();
  assert.deepEqual([...sql.keys()].sort(), ['coactivation', 'counts_all', 'counts_gate', 'counts_top1', 'gate_top1_mean', 'load', 'repeat_rate', 'repeat_rate_chance', 'specialisation', 'token_specialisation']);
  for (const [name, q] of sql) results.set(name, (await conn.runAndReadAll(q)).getRowObjectsJS() as Record<string, unknown>[]);
  conn.closeSync();
  inst.closeSync();

  for (const mode of ['all', 'top1', 'gate'] as const) {
    const a = await analyzeTrace(trace, { count: mode });
    const G = a.counts.modalities.length;
    const rows = results.get(`counts_${mode}`)!;
    let total = 0;
    for (const row of rows) {
      const li = a.counts.layers.indexOf(Number(row.layer)), gi = a.counts.modalities.indexOf(String(row.modality));
      near(row.n, a.counts.n[(li * E + Number(row.expert)) * G + gi], `${mode} n`);
      total += Number(row.n);
    }
    near(total, a.counts.n.reduce((x, y) => x + y, 0), `${mode} total`);
  }
  const a = await analyzeTrace(trace);
  const at = (l: unknown) => a.metrics.find((m) => m.layer === Number(l))!;
  assert.equal(results.get('specialisation')!.length, 2);
  for (const row of results.get('specialisation')!) {
    const m = at(row.layer);
    near(row.S, m.S, 'S'); near(row.S0, m.S0, 'S0'); near(row.mi, m.mi, 'mi'); near(row.mi_norm, m.mi_norm, 'mi_norm');
  }
  for (const row of results.get('load')!) {
    const m = at(row.layer);
    near(row.cv, m.load.cv, 'cv'); near(row.max_over_mean, m.load.max_over_mean, 'max/mean');
    near(row.active_fraction, m.load.active_fraction, 'active'); near(row.dead, m.load.dead, 'dead');
  }
  for (const row of results.get('gate_top1_mean')!) near(row.gate_top1_mean, at(row.layer).router.gate_top1_mean, 'gate_top1_mean', 1e-6);
  for (const row of results.get('repeat_rate')!) near(row.repeat_rate, at(row.layer).repeat_rate, 'repeat_rate');
  for (const row of results.get('repeat_rate_chance')!) near(row.repeat_rate_chance, at(row.layer).repeat_rate_chance, 'repeat chance');
  for (const row of results.get('token_specialisation')!) near(row.token_specialisation, at(row.layer).token_specialisation, 'token spec');
  const co = results.get('coactivation')!;
  assert.ok(co.length > 20);
  for (const row of co) near(row.c, at(row.layer).coactivation![Number(row.i)][Number(row.j)], `C[${row.i}][${row.j}]`, 1e-5);
  assert.ok(at(1).repeat_rate! > at(0).repeat_rate!, 'the planted locality of layer 1 shows');
});
