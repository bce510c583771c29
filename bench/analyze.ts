import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { BenchRow } from './report.js';
import { analyzeTrace } from '../src/analysis/analyze.js';
import { openDuck } from '../src/analysis/db.js';
import { openTrace } from '../src/analysis/trace.js';
import { indexTrace } from '../src/trace/store-aggregates.js';

/**
 * SPEC §7 / issue 13: `analyze`, `plot` and `serve`'s start must cost the same on a small trace and
 * on one 100x larger, because they read only the aggregates. Two synthetic traces of one layer
 * (top-1 of 8, text/image/special, a 1000-word vocabulary): SMALL and 100 x SMALL tokens (defaults
 * 1M and 100M rows; MOESCOPE_BENCH_SMALL_TOKENS changes it, e.g. 200000 for 200k vs 20M). Each is written
 * with DuckDB and indexed once by moescope (aggregates + file records), cached in bench-out/. The
 * rows are shards of about 384 KB in routing/, as moescope's writer leaves a large trace (~130k rows
 * a shard: ~760 at 100M rows; DuckDB makes 5 and ~400 here): opening a trace checks its files, and a check per
 * shard is a cost that grows with N (it did: hashing each shard, and reading each one's footer).
 * Beside them, the bare DuckDB GROUP BY over the rows, which grows with N.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const SMALL = Number(process.env.MOESCOPE_BENCH_SMALL_TOKENS ?? 1_000_000);
const E = 8;
const REPS = 5;
const dirFor = (tokens: number) => join(root, 'bench-out', `analyze-shards-${tokens}`);

async function makeTrace(conn: DuckDBConnection, tokens: number): Promise<string> {
  const dir = dirFor(tokens);
  if (existsSync(join(dir, 'agg-token.parquet')) && existsSync(join(dir, 'meta.json'))) return dir;
  process.stderr.write(`bench analyze: generating ${tokens} routing rows in ${dir} and indexing them (once) ...\n`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, 'routing.tmp');
  // samples of 500 tokens: bos, text, 256 image patches, text, eos; the expert depends on modality and a hash
  await conn.run(`COPY (
    SELECT (i // 500)::INTEGER AS "sample", (i % 500)::INTEGER AS pos,
      CASE WHEN i % 500 = 0 OR i % 500 = 499 THEN 'special' WHEN i % 500 BETWEEN 100 AND 355 THEN 'image' ELSE 'text' END AS modality,
      (hash(i // 3) % 1000)::INTEGER AS token, 0::SMALLINT AS layer,
      [((hash(i) % 8 + (CASE WHEN i % 500 BETWEEN 100 AND 355 THEN 3 ELSE 0 END)) % ${E})::SMALLINT] AS expert,
      [(0.3 + (hash(i) % 1000) / 1500.0)::FLOAT] AS gate
    FROM range(${tokens}) r(i)) TO '${tmp}' (FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES '384KB')`);
  renameSync(tmp, join(dir, 'routing'));
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ moescope_version: '0.1.0', num_layers: 1, num_experts: E, top_k: 1, router_scoring: 'softmax', gates: 'router', model: null, data: 'bench synthetic', tokens: {}, rows: tokens }, null, 2));
  await indexTrace(conn, dir, await openTrace(conn, dir));
  return dir;
}

/** Best of REPS for each of two functions, run alternately so that load on a shared machine hits both alike. */
async function bestPair(a: () => unknown, b: () => unknown): Promise<[number, number]> {
  await a();
  await b();
  let ba = Infinity, bb = Infinity;
  for (let i = 0; i < REPS; i++) {
    let t = performance.now();
    await a();
    ba = Math.min(ba, performance.now() - t);
    t = performance.now();
    await b();
    bb = Math.min(bb, performance.now() - t);
  }
  return [ba, bb];
}

const cli = (args: string[]) => {
  const r = spawnSync(process.execPath, [join(root, 'bin/moescope'), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`moescope ${args[0]}: ${r.stderr.trim()}`);
};

/** `moescope serve DIR`: spawn to its serving line (the dashboard is up), then stop it. */
function serveStart(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(root, 'bin/moescope'), 'serve', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('moescope: serving')) p.kill('SIGTERM');
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', () => (out.includes('moescope: serving') ? resolve() : reject(new Error(`moescope serve: ${err.trim()}`))));
  });
}

export async function bench(): Promise<BenchRow[]> {
  const { conn, close } = await openDuck({ memoryLimit: '512MB' });
  try {
    const small = await makeTrace(conn, SMALL);
    const large = await makeTrace(conn, SMALL * 100);
    const label = `${(SMALL / 1e6).toPrecision(2)}M vs ${((SMALL * 100) / 1e6).toPrecision(3)}M tokens x 1 layer`;
    const out: BenchRow[] = [];
    let check = 0;
    const [aLarge, aSmall] = await bestPair(async () => {
      const a = await analyzeTrace(large, { groups: ['text', 'image', 'special'] });
      check = a.counts.n.reduce((s, v) => s + v, 0);
    }, () => analyzeTrace(small));
    if (check !== SMALL * 100) throw new Error(`analyze counted ${check} of ${SMALL * 100} rows`);
    out.push({ name: 'analyze, 100x larger trace (ms)', ours: aLarge, peer: aSmall, unit: 'ms', higherIsBetter: false, peerName: 'the small trace', target: '>= 0.67x (large/small <= 1.5)', note: `${label}; library call end to end (DuckDB open, checks, metrics)` });
    const svg = (d: string) => join(root, 'bench-out', `${d.split('/').pop()}.svg`);
    const [pLarge, pSmall] = await bestPair(() => cli(['plot', large, '--out', svg(large)]), () => cli(['plot', small, '--out', svg(small)]));
    out.push({ name: 'plot, 100x larger trace (ms)', ours: pLarge, peer: pSmall, unit: 'ms', higherIsBetter: false, peerName: 'the small trace', target: '>= 0.67x (large/small <= 1.5)', note: `${label}; whole CLI run to SVG` });
    const [sLarge, sSmall] = await bestPair(() => serveStart(large), () => serveStart(small));
    out.push({ name: 'serve start, 100x larger trace (ms)', ours: sLarge, peer: sSmall, unit: 'ms', higherIsBetter: false, peerName: 'the small trace', target: '>= 0.67x (large/small <= 1.5)', note: `${label}; spawn to the serving line` });
    const bare = (d: string) => conn.runAndReadAll(`SELECT layer, modality, e, count(*) FROM (SELECT layer, modality, unnest(expert) AS e FROM read_parquet('${join(d, 'routing', '*.parquet')}')) GROUP BY ALL`);
    const [bLarge, bSmall] = await bestPair(() => bare(large), () => bare(small));
    out.push({ name: 'bare DuckDB GROUP BY, 100x rows (ms)', ours: bLarge, peer: bSmall, unit: 'ms', higherIsBetter: false, peerName: 'the small trace', note: `${label}; the row scan that analyze no longer does: it grows with N (analyze on the large trace: ${aLarge.toFixed(0)} ms vs ${bLarge.toFixed(0)} ms for this scan)` });
    return out;
  } finally {
    close();
  }
}

// `node dist/bench/analyze.js --clean` drops the cached traces
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--clean')) {
  for (const t of [SMALL, SMALL * 100]) rmSync(dirFor(t), { recursive: true, force: true });
}
