import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { decode } from 'fast-png';
import { parsePanels } from '../render/svg-parse.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'moescope-demo-'));
function moescope(args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin/moescope'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const FILES = ['agg-coact.parquet', 'agg-counts.parquet', 'agg-repeat.parquet', 'agg-token.parquet', 'agg-tokens.parquet', 'allocation.csv', 'figure.png', 'figure.svg', 'figure.vl.json', 'meta.json', 'metrics.json', 'routing.parquet', 'samples.parquet'];

test('demo: bundled model + shapes -> every SPEC file, consistent with the trace, deterministic for a seed', async () => {
  const r = moescope(['demo', '--out', 'd1', '--samples', '6', '--seed', '5']);
  assert.equal(r.code, 0, r.stderr);
  const dir = join(tmp, 'd1');
  assert.deepEqual(readdirSync(dir).sort(), FILES);
  assert.match(r.stdout, /Layer 0/);
  assert.match(r.stdout, /Layer 16/);
  assert.match(r.stdout, /Specialisation S per layer/);

  // the figure: the seed's three panels, every expert once
  const panels = parsePanels(readFileSync(join(dir, 'figure.svg'), 'utf8'));
  assert.deepEqual(panels.map((p) => p.title), ['Layer 0', 'Layer 16', 'Layer 23']);
  for (const p of panels) assert.deepEqual(p.xLabels.map((l) => l.text).sort(), ['0', '1', '2', '3', '4', '5', '6', '7']);
  const png = decode(readFileSync(join(dir, 'figure.png')));
  assert.ok(png.width > 1000);
  const vl = JSON.parse(readFileSync(join(dir, 'figure.vl.json'), 'utf8'));
  assert.ok(Array.isArray(vl.data.values) && vl.data.values.length > 0);

  // allocation.csv counts = an independent DuckDB count of the trace (top-1: expert[1])
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  const want = new Map<string, number>();
  const rows = (await conn.runAndReadAll(`SELECT layer, expert[1] AS e, modality, count(*)::INTEGER FROM read_parquet('${join(dir, 'routing.parquet')}') WHERE modality IN ('text', 'image') GROUP BY ALL`)).getRowsJS();
  for (const [l, e, m, n] of rows) want.set(`${l},${e},${m}`, Number(n));
  conn.closeSync();
  inst.closeSync();
  const csv = readFileSync(join(dir, 'allocation.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'layer,expert,modality,count,share');
  assert.equal(csv.length - 1, 24 * 8 * 2);
  const shareSum = new Map<string, number>();
  for (const line of csv.slice(1)) {
    const [l, e, m, n, share] = line.split(',');
    assert.equal(Number(n), want.get(`${l},${e},${m}`) ?? 0, line);
    if (share !== '') shareSum.set(`${l},${e}`, (shareSum.get(`${l},${e}`) ?? 0) + Number(share));
  }
  for (const [k, s] of shareSum) assert.ok(Math.abs(s - 100) < 1e-6, `${k}: shares sum to ${s}`);

  const metrics = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
  assert.equal(metrics.layers.length, 24);
  for (const m of metrics.layers) {
    assert.ok(m.S >= 0 && m.S <= 1);
    assert.ok(m.mi >= 0);
    assert.ok(m.router.entropy_mean > 0 && m.router.entropy_mean <= 3 + 1e-9, `router entropy ${m.router.entropy_mean} bits of at most log2(8)`);
  }

  // same seed -> same numbers; another seed -> other numbers
  assert.equal(moescope(['demo', '--out', 'd2', '--samples', '6', '--seed', '5']).code, 0);
  assert.equal(readFileSync(join(tmp, 'd2', 'allocation.csv'), 'utf8'), readFileSync(join(dir, 'allocation.csv'), 'utf8'));
  assert.equal(readFileSync(join(tmp, 'd2', 'figure.svg'), 'utf8'), readFileSync(join(dir, 'figure.svg'), 'utf8'));
  assert.equal(moescope(['demo', '--out', 'd3', '--samples', '6', '--seed', '6']).code, 0);
  assert.notEqual(readFileSync(join(tmp, 'd3', 'allocation.csv'), 'utf8'), readFileSync(join(dir, 'allocation.csv'), 'utf8'));
});

test('demo: bad options fail with one line and exit 2, leaving a previous output as it was', () => {
  writeFileSync(join(tmp, 'a-file'), 'keep');
  for (const args of [['--samples', '0'], ['--samples', 'many'], ['--seed', '-1'], ['--out', 'a-file', '--samples', '2']]) {
    const r = moescope(['demo', ...(args.includes('--out') ? [] : ['--out', 'never']), ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('moescope: error:')).length, 1, r.stderr);
  }
  assert.equal(existsSync(join(tmp, 'never')), false);
  assert.equal(readFileSync(join(tmp, 'a-file'), 'utf8'), 'keep');
  assert.deepEqual(readdirSync(tmp).filter((f) => f.includes('.tmp-')), []);
});
