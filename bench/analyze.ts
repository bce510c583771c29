import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, writeSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { BenchRow } from './report.js';
import { analyzeTrace } from '../src/analysis/analyze.js';
import { openDuck } from '../src/analysis/db.js';

/**
 * `moescope analyze` (the library call behind it, end to end: open DuckDB, check meta and columns,
 * count, metrics for all 24 layers) on a ~24M-row trace, vs the bare DuckDB GROUP BY of the same
 * counts (connection already open, query only) and vs NumPy bincount of the same columns (file
 * reading not timed). The trace is generated once with DuckDB SQL and cached in bench-out/.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const OUT = join(root, 'bench-out', 'analyze-24m');
const L = 24, E = 8, TOKENS = 1_000_000, M = 3; // modalities: text, image, special
const REPS = 5;

async function makeTrace(conn: DuckDBConnection): Promise<void> {
  if (existsSync(join(OUT, 'meta.json'))) return;
  process.stderr.write(`bench analyze: generating ${L * TOKENS} routing rows in ${OUT} (once) ...\n`);
  mkdirSync(OUT, { recursive: true });
  const tmp = join(OUT, 'routing.parquet.tmp');
  // token-major then layer, as capture writes; samples of 500 tokens: 256 image patches between text.
  // The expert depends on layer, modality and a hash, so every (layer, modality, expert) group is filled.
  await conn.run(`COPY (
    WITH t AS (SELECT i // ${L} AS tok, (i % ${L})::SMALLINT AS layer, hash(i) AS h FROM range(${L * TOKENS}) r(i))
    SELECT (tok // 500)::INTEGER AS "sample", (tok % 500)::INTEGER AS pos,
      CASE WHEN tok % 500 = 0 OR tok % 500 = 499 THEN 'special' WHEN tok % 500 BETWEEN 100 AND 355 THEN 'image' ELSE 'text' END AS modality,
      (tok % 1000)::INTEGER AS token, layer,
      [((h % 8 + (CASE WHEN tok % 500 BETWEEN 100 AND 355 THEN layer ELSE 0 END)) % ${E})::SMALLINT] AS expert,
      [(0.3 + (h % 1000) / 1500.0)::FLOAT] AS gate
    FROM t) TO '${tmp}' (FORMAT parquet)`);
  renameSync(tmp, join(OUT, 'routing.parquet'));
  // raw columns for NumPy (one value per choice; top-1 here)
  const files = { layer: 'layer.i16', modality: 'modality.u8', expert: 'expert.i16' } as const;
  const fds = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, openSync(join(OUT, f), 'w')])) as Record<keyof typeof files, number>;
  const res = await conn.stream(`SELECT layer, CASE modality WHEN 'text' THEN 0 WHEN 'image' THEN 1 ELSE 2 END::UTINYINT AS m, expert[1] AS e FROM read_parquet('${join(OUT, 'routing.parquet')}')`);
  for (;;) {
    const chunk = await res.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const n = chunk.rowCount;
    const col = <T extends Int16Array | Uint8Array>(i: number, A: new (n: number) => T): T => {
      const v = chunk.getColumnVector(i);
      // the vector's typed array when exposed (fast), else item by item
      const items = (v as unknown as { items?: unknown }).items;
      if (items instanceof A && items.length >= n) return items.slice(0, n) as T;
      const a = new A(n);
      for (let j = 0; j < n; j++) a[j] = v.getItem(j) as number;
      return a;
    };
    writeSync(fds.layer, col(0, Int16Array));
    writeSync(fds.modality, col(1, Uint8Array));
    writeSync(fds.expert, col(2, Int16Array));
  }
  for (const fd of Object.values(fds)) closeSync(fd);
  writeFileSync(join(OUT, 'meta.json'), JSON.stringify({ moescope_version: '0.1.0', num_layers: L, num_experts: E, top_k: 1, router_scoring: 'softmax', model: null, data: 'bench synthetic', tokens: {}, rows: L * TOKENS }, null, 2));
}

/** Best of REPS for each of two functions, run alternately so that load on a shared machine hits both alike. */
async function bestPair(a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number, number]> {
  await a(); // warm up (file cache, JIT)
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

export async function bench(): Promise<BenchRow[]> {
  const { conn, close } = await openDuck();
  try {
    await makeTrace(conn);
    const R = `read_parquet('${join(OUT, 'routing.parquet')}')`;
    const bareAll = `SELECT layer, modality, e, count(*) AS n FROM (SELECT layer, modality, unnest(expert) AS e FROM ${R}) GROUP BY ALL`;
    const bareGate = `SELECT layer, modality, e, sum(w) AS n FROM (SELECT layer, modality, unnest(expert) AS e, unnest(gate) / list_sum(gate) AS w FROM ${R}) GROUP BY ALL`;
    const rows = L * TOKENS;
    const out: BenchRow[] = [];
    for (const [mode, bare] of [['all', bareAll], ['gate', bareGate]] as const) {
      let check = 0;
      const [ours, peer] = await bestPair(async () => {
        const a = await analyzeTrace(OUT, { count: mode, modalities: ['text', 'image', 'special'] });
        check = a.counts.n.reduce((s, v) => s + v, 0);
      }, () => conn.runAndReadAll(bare));
      if (Math.abs(check - rows) > 1e-3 * rows) throw new Error(`analyze counted ${check} of ${rows} rows`);
      out.push({
        name: `analyze 24M rows, --count ${mode} (ms)`,
        ours,
        peer,
        unit: 'ms',
        higherIsBetter: false,
        peerName: 'bare DuckDB GROUP BY',
        target: '>= 0.67x (within 1.5x)',
        note: `ours end to end (DuckDB open, checks, counts, metrics of ${L} layers); peer: query only; ${(rows / ours / 1e3).toFixed(1)}M rows/s`,
      });
      if (mode === 'all') {
        const py = spawnSync('/usr/bin/python3', [join(root, 'bench/py/analyze_numpy.py'), OUT, String(L), String(M), String(E), String(REPS)], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
        if (py.status !== 0) {
          out.push({ name: 'analyze 24M rows vs NumPy (ms)', ours, peer: null, unit: 'ms', higherIsBetter: false, peerName: 'NumPy bincount', note: `numpy failed: ${py.stderr.trim().split('\n').pop()}` });
        } else {
          const r = JSON.parse(py.stdout) as { seconds: number; seconds_bincount_only: number; total: number; numpy: string };
          if (r.total !== rows) throw new Error(`numpy counted ${r.total} of ${rows}`);
          out.push({
            name: 'analyze 24M rows, --count all (ms)',
            ours,
            peer: r.seconds * 1e3,
            unit: 'ms',
            higherIsBetter: false,
            peerName: `NumPy ${r.numpy} bincount`,
            note: `NumPy times key + bincount over in-memory arrays, reading the .npy-like files excluded (bincount alone ${(r.seconds_bincount_only * 1e3).toFixed(0)} ms); ours reads Parquet`,
          });
        }
      }
    }
    return out;
  } finally {
    close();
  }
}

// `node dist/bench/analyze.js --clean` drops the cached trace
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--clean')) rmSync(OUT, { recursive: true, force: true });
