import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDesign, type Row } from '../analysis/planted.js';
import { BIN } from '../capture/helpers.js';
import { HASH_CHECK_MAX_BYTES, recordFiles, verifyFiles } from '../../src/trace/files.js';
import { mkdirSync } from 'node:fs';

const tmp = mkdtempSync(join(tmpdir(), 'moescope-integrity-'));
const cli = (args: string[], cwd = tmp) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, cwd });

const rows: Row[] = Array.from({ length: 400 }, (_, i) => ({ sample: Math.floor(i / 20), pos: i % 20, modality: i % 3 ? 'text' : 'image', token: i % 50, layer: 0, experts: [i % 4], gates: [0.7] }));

function oneError(r: ReturnType<typeof cli>, re: RegExp) {
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^moescope: error: /);
  assert.match(lines[0], re);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

test('a damaged trace is an error naming the file: bit flip, truncation, missing file', async () => {
  const good = await writeDesign(join(tmp, 'good'), { numLayers: 1, numExperts: 4, topK: 1, rows });
  assert.equal(cli(['analyze', good]).status, 0);
  const meta = JSON.parse(readFileSync(join(good, 'meta.json'), 'utf8'));
  assert.ok(meta.files['routing.parquet'].sha256.length === 64 && meta.files['samples.parquet'] && meta.files['agg-tokens.parquet']);

  for (const [name, file] of [['flip-routing', 'routing.parquet'], ['flip-agg', 'agg-counts.parquet']] as const) {
    const d = join(tmp, name);
    cpSync(good, d, { recursive: true });
    const p = join(d, file);
    const bytes = readFileSync(p);
    bytes[Math.floor(bytes.length / 2)] ^= 0x10; // one bit
    writeFileSync(p, bytes);
    oneError(cli(['analyze', d]), new RegExp(`${file.replace('.', '\\.')}: damaged \\(SHA-256`));
    oneError(cli(['plot', d, '--out', join(tmp, `${name}.svg`)]), /damaged/);
  }
  const t = join(tmp, 'truncated');
  cpSync(good, t, { recursive: true });
  truncateSync(join(t, 'routing.parquet'), statSync(join(t, 'routing.parquet')).size - 100);
  oneError(cli(['analyze', t]), /routing\.parquet: damaged \(size/);
  oneError(cli(['analyze', t, '--no-verify']), /routing\.parquet: damaged \(size/); // sizes are always checked
});

test('meta.json values are bounded; --layers ranges are bounded; trace paths are literal', async () => {
  const good = await writeDesign(join(tmp, 'good2'), { numLayers: 1, numExperts: 4, topK: 1, rows });
  for (const [name, patch, re] of [
    ['experts-1e5', { num_experts: 100000 }, /num_experts: 100000 is outside 1\.\.4096/],
    ['experts-1e6', { num_experts: 1e6 }, /num_experts: 1000000 is outside/],
    ['layers-1e9', { num_layers: 1e9 }, /num_layers: 1000000000 is outside/],
    ['topk-str', { top_k: '2' }, /top_k: expected an integer/],
    ['files-bad', { files: { 'routing.parquet': { bytes: -1, sha256: 'x' } } }, /files\["routing\.parquet"\] must be/],
    ['rows-neg', { rows: -1 }, /rows must be a count/],
    ['samples-str', { samples: '3' }, /samples must be a count/],
  ] as const) {
    const d = join(tmp, name);
    cpSync(good, d, { recursive: true });
    const meta = JSON.parse(readFileSync(join(d, 'meta.json'), 'utf8'));
    writeFileSync(join(d, 'meta.json'), JSON.stringify({ ...meta, ...patch }));
    oneError(cli(['analyze', d]), re);
  }
  oneError(cli(['analyze', good, '--layers', '0-1000000000']), /--layers: 0-1000000000 is outside 0\.\.1023/);
  // 'good*' must not read the sibling folders good, good2 ...
  oneError(cli(['analyze', 'good*'], tmp), /good\*: trace paths are literal/);
});

test('the same rows give the same bytes: aggregates and meta.json files', async () => {
  const gated = rows.map((x, i) => ({ ...x, experts: [i % 4, (i + 1) % 4], gates: [0.55 + (i % 7) / 100, 0.45 - (i % 7) / 100] }));
  const a = await writeDesign(join(tmp, 'det-a'), { numLayers: 1, numExperts: 4, topK: 2, rows: gated });
  const b = await writeDesign(join(tmp, 'det-b'), { numLayers: 1, numExperts: 4, topK: 2, rows: gated });
  const ma = JSON.parse(readFileSync(join(a, 'meta.json'), 'utf8')), mb = JSON.parse(readFileSync(join(b, 'meta.json'), 'utf8'));
  assert.deepEqual(ma.files, mb.files);
  assert.ok(Object.keys(ma.files).length >= 7);
});

test('opening a trace hashes its aggregates, and its routing rows only up to HASH_CHECK_MAX_BYTES in all (the rest by size)', () => {
  const d = join(tmp, 'budget');
  mkdirSync(join(d, 'routing'), { recursive: true });
  const shard = Math.floor(HASH_CHECK_MAX_BYTES * 0.6); // one shard fits the budget, two do not
  writeFileSync(join(d, 'agg-counts.parquet'), Buffer.alloc(1000, 1));
  for (const i of [0, 1, 2]) writeFileSync(join(d, 'routing', `part-0000${i}.parquet`), Buffer.alloc(shard, i + 1));
  const files = recordFiles(d);
  assert.deepEqual(Object.keys(files).sort(), ['agg-counts.parquet', 'routing/part-00000.parquet', 'routing/part-00001.parquet', 'routing/part-00002.parquet']);
  const flip = (rel: string) => {
    const p = join(d, ...rel.split('/'));
    const b = readFileSync(p);
    b[b.length >> 1] ^= 0x10;
    writeFileSync(p, b);
  };
  const check = () => verifyFiles(d, files, { hashes: true });
  check();
  // a flipped bit past the budget is not read (that shard's size still is)
  flip('routing/part-00002.parquet');
  check();
  truncateSync(join(d, 'routing', 'part-00002.parquet'), shard - 1);
  assert.throws(check, /part-00002\.parquet: damaged \(size/);
  writeFileSync(join(d, 'routing', 'part-00002.parquet'), Buffer.alloc(shard, 3));
  // within the budget, and the aggregates, always
  flip('routing/part-00000.parquet');
  assert.throws(check, /part-00000\.parquet: damaged \(SHA-256/);
  assert.doesNotThrow(() => verifyFiles(d, files, { hashes: false }));
  flip('routing/part-00000.parquet');
  flip('agg-counts.parquet');
  assert.throws(check, /agg-counts\.parquet: damaged \(SHA-256/);
});
