import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import type { BenchRow } from './report.js';
import { listRoutingFiles } from '../src/trace/files.js';

/**
 * `moescope import` throughput (routing rows/s, the whole CLI run: Node start, parsing, top-k,
 * checks, Parquet, aggregates) on the largest inputs engines write — HF router logits
 * (safetensors, [T, E] floats per layer, top-k on import), vLLM routed_experts (base64 int16
 * [T, L, 8]) and OLMoE's analysis JSONL (nested lists [T][K][L]) — beside DuckDB COPYing the same
 * rows (the trace just written, loaded into a DuckDB table first) to Parquet, timed in the same
 * run. Inputs are serving-log scale, 10.5M rows of each (a day of one model's routing is hundreds
 * of millions): an import's start and end cost about half a second whatever its size (Node, the
 * threads' modules, the aggregates' final merge), which at the 1-3M rows this bench used before
 * was a third of the run. Each side runs three times, alternating (this machine's speed drifts
 * by tens of percent within minutes), and the median of each is compared. Token ids are drawn
 * Zipf-distributed (s = 1.1) over a 50k vocabulary, as text is; router choices uniformly.
 * Plus peak RSS of a vLLM import at N and 10N rows (N = 1M, past the writer's buffers): streaming
 * keeps them about equal (the threads' young generations are held small for that: see docs/limits.md).
 * `BENCH_IMPORT_SCALE` (default 1) scales every input.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const PY = '/usr/bin/python3';
const T = 2048, K = 8, L = 16, E = 64;

const GEN = String.raw`
import base64, json, sys, os, numpy as np
sys.path.insert(0, os.path.join(sys.argv[1], "python"))
from moescope_capture import save_safetensors
out, n_windows, kind = sys.argv[2], int(sys.argv[3]), sys.argv[4]
T, K, L, E = ${T}, ${K}, ${L}, ${E}
rng = np.random.default_rng(0)
def token_ids(n):
    return (np.minimum(rng.zipf(1.1, n), 50000) - 1).tolist()
# router choices: a pool of distinct random blocks, reused across windows (drawing them is the slow part)
POOL = 8
if kind == "olmoe":
    pool = [json.dumps(np.argsort(-rng.random((T, E, L), dtype=np.float32), axis=1)[:, :K, :].tolist()) for _ in range(min(POOL, n_windows))]
    with open(out, "w") as f:
        for w in range(n_windows):
            f.write('{"input_ids": ' + json.dumps(token_ids(T)) + ', "exp_ids": ' + pool[w % len(pool)] + "}\n")
elif kind == "vllm":
    pool = [np.argsort(-rng.random((T, L, E), dtype=np.float32), axis=2)[:, :, :K].astype(np.int16) for _ in range(min(POOL, n_windows))]
    with open(out, "w") as f:
        for w in range(n_windows):
            P = T // 2
            ids = token_ids(T + 1)
            re = pool[w % len(pool)]
            f.write(json.dumps({"request_id": f"r{w}", "prompt_token_ids": ids[:P], "outputs": [{"index": 0, "token_ids": ids[P:],
                     "routed_experts": {"dtype": "int16", "shape": list(re.shape), "data": base64.b64encode(re.tobytes()).decode()}}]}) + "\n")
else:
    os.makedirs(out, exist_ok=True)
    for w in range(n_windows):
        t = {"input_ids": np.array([token_ids(T)], dtype=np.int64)}
        for l in range(L):
            t[f"router_logits.{l}"] = rng.normal(size=(T, E)).astype(np.float32)
        save_safetensors(os.path.join(out, f"batch{w:04d}.safetensors"), t)
`;

function py(code: string, args: string[]): string {
  const r = spawnSync(PY, ['-c', code, ...args], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`python: ${r.stderr || r.error}`);
  return r.stdout;
}

/** Run `moescope import` in a child; wall seconds and its own peak RSS in MB (peak-rss.ts). Keeps the trace when asked. */
function runImport(dir: string, format: string, input: string, flags: string[], keep = false): { seconds: number; rssMB: number; rows: number; out: string } {
  const wrapper = join(dir, 'wrap.mjs');
  const peak = JSON.stringify(join(root, 'dist/bench/peak-rss.js'));
  writeFileSync(wrapper, `import { peakRssMB } from ${peak};\nprocess.on('exit', () => process.stderr.write('\\nPEAKRSS ' + peakRssMB() + '\\n'));\nawait import(${JSON.stringify(join(root, 'bin/moescope'))});\n`);
  const out = join(dir, `trace-${format}`);
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [wrapper, 'import', format, input, '--out', out, ...flags], { encoding: 'utf8', timeout: 600_000 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`import ${format}: ${r.stderr}`);
  if (!keep) rmSync(out, { recursive: true, force: true });
  const rows = Number(/imported (\d+) routing rows/.exec(r.stdout)?.[1]);
  return { seconds, rssMB: Number(/PEAKRSS ([\d.]+)/.exec(r.stderr)?.[1]), rows, out };
}

/** DuckDB writing a trace's routing rows to Parquet: the rows loaded into a table once, then each COPY timed. */
async function duckdbPeer(trace: string): Promise<{ rows: number; copy: (dir: string) => Promise<number>; close: () => void }> {
  const inst = await DuckDBInstance.create(':memory:', { threads: '2' });
  const conn = await inst.connect();
  const close = () => {
    conn.closeSync();
    inst.closeSync();
  };
  try {
    const files = listRoutingFiles(trace).files.map((f) => `'${f}'`).join(', ');
    await conn.run(`CREATE TABLE r AS SELECT * FROM read_parquet([${files}])`);
    const rows = Number((await conn.runAndReadAll('SELECT count(*) FROM r')).getRows()[0][0]);
    const copy = async (dir: string) => {
      const out = join(dir, 'peer.parquet');
      try {
        const t0 = performance.now();
        await conn.run(`COPY r TO '${out}' (FORMAT parquet, COMPRESSION zstd)`);
        return (performance.now() - t0) / 1000;
      } finally {
        rmSync(out, { force: true });
      }
    };
    return { rows, copy, close };
  } catch (e) {
    close();
    throw e;
  }
}

const RUNS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1];
}

/** Our import and DuckDB's COPY of the rows it wrote, RUNS times each, alternating; the medians. */
async function throughput(dir: string, what: string, format: string, input: string, flags: string[]): Promise<BenchRow> {
  const first = runImport(dir, format, input, flags, true);
  const peer = await duckdbPeer(first.out);
  const ours = [first.seconds], theirs: number[] = [];
  try {
    rmSync(first.out, { recursive: true, force: true });
    if (peer.rows !== first.rows) throw new Error(`import ${what}: ${first.rows} rows, DuckDB copied ${peer.rows}`);
    for (let i = 0; i < RUNS; i++) {
      theirs.push(await peer.copy(dir));
      if (i + 1 < RUNS) ours.push(runImport(dir, format, input, flags).seconds);
    }
  } finally {
    peer.close();
  }
  const spread = (xs: number[]) => xs.map((x) => (first.rows / x / 1e6).toFixed(2)).join('/');
  return {
    name: `import ${what} (${first.rows} rows)`,
    ours: first.rows / median(ours),
    peer: peer.rows / median(theirs),
    unit: 'rows/s',
    higherIsBetter: true,
    peerName: 'DuckDB COPY to Parquet',
    target: '>= 0.5x',
    note: `medians of ${RUNS} alternating runs (M rows/s: ours ${spread(ours)}, peer ${spread(theirs)}); ours: whole CLI run (start, parse, top-k, checks, Parquet, aggregates); peer: COPY of the same rows from a table`,
  };
}

function rssRow(what: string, one: { rssMB: number }, ten: { rssMB: number }, n: number): BenchRow {
  return {
    name: `import ${what} peak RSS, ${10 * n} vs ${n} rows`,
    ours: ten.rssMB,
    peer: one.rssMB,
    unit: 'MB',
    higherIsBetter: false,
    peerName: `same import at ${n} rows`,
    target: '>= 0.91x (10N within 1.1x of N)',
  };
}

export async function bench(): Promise<BenchRow[]> {
  const hasNumpy = spawnSync(PY, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
  if (!hasNumpy) return [{ name: 'import', ours: 0, peer: null, unit: 'rows/s', higherIsBetter: true, peerName: 'DuckDB COPY', note: `${PY} has no numpy to write the inputs` }];
  const scale = Number(process.env.BENCH_IMPORT_SCALE ?? 1);
  const windows = (n: number) => Math.max(1, Math.round(n * scale)); // a window: T x L = 32768 rows
  const dir = mkdtempSync(join(tmpdir(), 'moescope-bench-import-'));
  try {
    const rows: BenchRow[] = [];
    // windows of T x L = 32768 rows: 10.5M rows of each format (the logits take 2.6 GB)
    for (const [what, format, n, flags] of [
      ['olmoe JSONL', 'olmoe', 320, ['--num-experts', String(E)]],
      ['vLLM top-8 base64', 'vllm', 320, ['--num-experts', String(E)]],
    ] as const) {
      const input = join(dir, `${format}.jsonl`);
      py(GEN, [root, input, String(windows(n)), format]);
      rows.push(await throughput(dir, what, format, input, [...flags]));
      rmSync(input, { force: true });
    }
    const hf = join(dir, 'hf');
    py(GEN, [root, hf, String(windows(320)), 'hf']);
    rows.push(await throughput(dir, 'hf logits safetensors', 'hf', hf, ['--top-k', String(K)]));
    rmSync(hf, { recursive: true, force: true });
    // memory: N and 10N rows of vLLM
    const N = windows(32);
    const small = join(dir, 'small-vllm.jsonl');
    const big = join(dir, 'big-vllm.jsonl');
    py(GEN, [root, small, String(N), 'vllm']);
    py(GEN, [root, big, String(10 * N), 'vllm']);
    const flags = ['--num-experts', String(E)];
    rows.push(rssRow('vLLM top-8', runImport(dir, 'vllm', small, flags), runImport(dir, 'vllm', big, flags), N * T * L));
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
