import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeTrace, metricsDocument } from '../../src/analysis/analyze.js';
import { rng, writeDesign, writeDesignByHand, type Design, type Row } from '../analysis/planted.js';
import { BIN } from '../capture/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'moescope-merge-'));
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });

function design(samples: number[], seed = 9): Design {
  const r = rng(seed);
  const rows: Row[] = [];
  const domains = new Map<number, string>();
  for (let s = 0; s < 64; s++) {
    // draw every sample so that a shard's rows equal the whole trace's rows of its samples
    const sampleRows: Row[] = [];
    for (let p = 0; p < 12; p++) for (let l = 0; l < 3; l++) {
      const e1 = Math.floor(r() * 8), e2 = (e1 + 1 + Math.floor(r() * 7)) % 8, g = 0.5 + r() * 0.4;
      sampleRows.push({ sample: s, pos: p, modality: p === 0 ? 'special' : p < 7 ? 'image' : 'text', token: p * 3 + (s % 5), layer: l, experts: [e1, e2], gates: [g, 1 - g] });
    }
    if (samples.includes(s)) {
      rows.push(...sampleRows);
      domains.set(s, ['web', 'code'][s % 2]);
    }
  }
  return { numLayers: 3, numExperts: 8, topK: 2, rows, domains };
}

const all = Array.from({ length: 64 }, (_, i) => i);

test('a merge of 8 shards equals the trace captured in one piece (counts and metrics)', async () => {
  const whole = await writeDesign(join(tmp, 'whole'), design(all));
  const shards: string[] = [];
  for (let k = 0; k < 8; k++) shards.push(await writeDesign(join(tmp, `shard${k}`), design(all.filter((s) => Math.floor(s / 8) === k))));
  const out = join(tmp, 'merged');
  const r = cli(['merge', ...shards, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const parts = readdirSync(join(out, 'routing'));
  assert.equal(parts.length, 8);
  assert.equal(existsSync(join(out, 'routing.parquet')), false);
  // routing shards are linked, not rewritten
  assert.equal(statSync(join(out, 'routing', parts[0])).ino, statSync(join(shards[0], 'routing.parquet')).ino);
  const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
  assert.ok(meta.files['agg-counts.parquet'] && meta.files[`routing/${parts[0]}`]);
  for (const opts of [{}, { count: 'gate' as const }, { count: 'top1' as const }, { by: 'domain' }, { by: 'domain', groups: ['code', 'web'] }]) {
    const want = await analyzeTrace(whole, opts);
    const got = await analyzeTrace(out, opts);
    const asShards = await analyzeTrace(shards, opts);
    for (const a of [got, asShards]) {
      // gate-weighted sums add floats in another order: equal to 1e-12 relative
      const close = (x: number[], y: number[]) => x.length === y.length && x.every((v, i) => Math.abs(v - y[i]) <= 1e-12 * Math.max(1, Math.abs(y[i])));
      assert.ok(close([...a.counts.n], [...want.counts.n]), JSON.stringify(opts));
      if (opts.count !== 'gate') assert.deepEqual([...a.counts.n], [...want.counts.n]);
      assert.deepEqual([...a.counts.tokens], [...want.counts.tokens]);
      const strip = (d: Record<string, unknown>) => JSON.parse(JSON.stringify({ ...d, trace: null }), (_, v) => (typeof v === 'number' ? Number(v.toPrecision(12)) : v));
      assert.deepEqual(strip(metricsDocument(a)), strip(metricsDocument(want)));
    }
  }
});

test('merge refuses shards of different models or overlapping samples, and a folder that is not a trace', async () => {
  const a = await writeDesign(join(tmp, 'ma'), design(all.slice(0, 8)));
  const b = await writeDesign(join(tmp, 'mb'), design(all.slice(4, 12)));
  let r = cli(['merge', a, b, '--out', join(tmp, 'mx')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^moescope: error: .*overlap/);
  const c = await writeDesign(join(tmp, 'mc'), { ...design(all.slice(8, 16)), numExperts: 9 });
  r = cli(['merge', a, c, '--out', join(tmp, 'mx')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /num_experts 9 differs/);
  assert.equal(existsSync(join(tmp, 'mx')), false);
  // routing files of another schema (one more column): refused, so a merged folder's files share one schema
  const e = await writeDesignByHand(join(tmp, 'me'), design(all.slice(16, 24)));
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  const p = join(e, 'routing.parquet');
  await conn.run(`COPY (SELECT *, 'prefill' AS phase FROM read_parquet('${p}')) TO '${p}.tmp' (FORMAT parquet)`);
  conn.closeSync();
  inst.closeSync();
  renameSync(`${p}.tmp`, p);
  r = cli(['merge', a, e, '--out', join(tmp, 'mx')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^moescope: error: .*me: routing columns \(.*phase VARCHAR.*\) differ from .*ma/);
  assert.equal(existsSync(join(tmp, 'mx')), false);
  r = cli(['merge', a, '--out', a]);
  assert.equal(r.status, 2);
});

test('index stores the aggregates of a hand-written trace; the analysis is the same before and after', async () => {
  const d = design(all.slice(0, 16));
  const hand = await writeDesignByHand(join(tmp, 'hand'), d);
  const before = metricsDocument(await analyzeTrace(hand, { by: 'domain' }));
  const r = cli(['index', hand]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(hand, 'agg-counts.parquet')));
  const meta = JSON.parse(readFileSync(join(hand, 'meta.json'), 'utf8'));
  assert.equal(meta.files['routing.parquet'].bytes, statSync(join(hand, 'routing.parquet')).size);
  const after = metricsDocument(await analyzeTrace(hand, { by: 'domain' }));
  assert.deepEqual(after, before);
  // and the writer's own aggregates agree with both
  const written = metricsDocument(await analyzeTrace(await writeDesign(join(tmp, 'hand-w'), d), { by: 'domain' }));
  const strip = (x: Record<string, unknown>) => JSON.parse(JSON.stringify({ ...x, trace: null }), (_, v) => (typeof v === 'number' ? Number(v.toPrecision(6)) : v));
  assert.deepEqual(strip(written), strip(after));
});

test('hive-style shard folders (routing/rank=K/part-*.parquet) read as one trace; the key is a --by column', async () => {
  const { cpSync, mkdirSync, writeFileSync } = await import('node:fs');
  const dir = join(tmp, 'hive');
  const parts: string[] = [];
  for (let k = 0; k < 4; k++) parts.push(await writeDesign(join(tmp, `hive-src${k}`), design(all.filter((s) => s % 4 === k))));
  for (let k = 0; k < 4; k++) {
    mkdirSync(join(dir, 'routing', `rank=${k}`), { recursive: true });
    cpSync(join(parts[k], 'routing.parquet'), join(dir, 'routing', `rank=${k}`, 'part-0.parquet'));
  }
  const meta = JSON.parse(readFileSync(join(parts[0], 'meta.json'), 'utf8'));
  delete meta.files; // written by another tool: no aggregates, no file records
  writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
  const want = await analyzeTrace(join(tmp, 'whole'));
  const got = await analyzeTrace(dir);
  assert.deepEqual([...got.counts.n], [...want.counts.n]);
  const byRank = await analyzeTrace(dir, { by: 'rank' });
  assert.deepEqual(byRank.counts.modalities, ['0', '1', '2', '3']);
  const every = await analyzeTrace(join(tmp, 'whole'), { groups: ['special', 'text', 'image'] });
  assert.equal(byRank.counts.n.reduce((x, y) => x + y, 0), every.counts.n.reduce((x, y) => x + y, 0));
});
