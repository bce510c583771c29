import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './report.js';

/**
 * `moescope import` throughput on the biggest inputs engines write (OLMoE's analysis JSONL, JSON
 * nested lists [T][K][L]; and HF router logits in safetensors, [T, E] floats per layer) in routing
 * rows/s, beside the time NumPy takes just to read the same data (json.loads + np.asarray, or
 * np.frombuffer). Ours includes Node start, top-k, checks and writing Parquet. Plus the peak RSS of
 * the import at N and 10N windows: streaming means the two are about the same.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const PY = '/usr/bin/python3';
const T = 2048, K = 8, L = 16, E = 64;

const GEN = String.raw`
import json, sys, os, numpy as np
sys.path.insert(0, os.path.join(sys.argv[1], "python"))
from moescope_capture import save_safetensors
out, n_windows, kind = sys.argv[2], int(sys.argv[3]), sys.argv[4]
T, K, L, E = ${T}, ${K}, ${L}, ${E}
rng = np.random.default_rng(0)
if kind == "olmoe":
    with open(out, "w") as f:
        for w in range(n_windows):
            ids = rng.integers(0, 50000, T).tolist()
            ex = np.argsort(-rng.random((T, E, L), dtype=np.float32), axis=1)[:, :K, :]
            f.write(json.dumps({"input_ids": ids, "exp_ids": ex.tolist()}) + "\n")
else:
    os.makedirs(out, exist_ok=True)
    for w in range(n_windows):
        t = {"input_ids": rng.integers(0, 50000, (1, T)).astype(np.int64)}
        for l in range(L):
            t[f"router_logits.{l}"] = rng.normal(size=(T, E)).astype(np.float32)
        save_safetensors(os.path.join(out, f"batch{w:04d}.safetensors"), t)
`;

const READ = String.raw`
import json, sys, os, time, numpy as np
path, kind = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
rows = 0
if kind == "olmoe":
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            ids = np.asarray(o["input_ids"], dtype=np.int32)
            ex = np.asarray(o["exp_ids"], dtype=np.int16)
            rows += ex.shape[0] * ex.shape[2]
else:
    for fn in sorted(os.listdir(path)):
        b = open(os.path.join(path, fn), "rb").read()
        n = int.from_bytes(b[:8], "little")
        h = json.loads(b[8:8 + n])
        for k, v in h.items():
            s, e = v["data_offsets"]
            a = np.frombuffer(b, dtype=np.float32 if v["dtype"] == "F32" else np.int64, count=(e - s) // (4 if v["dtype"] == "F32" else 8), offset=8 + n + s).reshape(v["shape"])
            if k.startswith("router_logits"):
                rows += a.shape[0]
print(rows, time.perf_counter() - t0)
`;

function py(code: string, args: string[]): string {
  const r = spawnSync(PY, ['-c', code, ...args], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`python: ${r.stderr || r.error}`);
  return r.stdout;
}

/** Run `moescope import` in a child; wall seconds and its peak RSS in MB. */
function runImport(dir: string, format: string, input: string, flags: string[]): { seconds: number; rssMB: number; rows: number } {
  const wrapper = join(dir, 'wrap.mjs');
  writeFileSync(wrapper, `process.on('exit', () => process.stderr.write('\\nMAXRSS ' + process.resourceUsage().maxRSS + '\\n'));\nawait import(${JSON.stringify(join(root, 'bin/moescope'))});\n`);
  const out = join(dir, `trace-${format}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [wrapper, 'import', format, input, '--out', out, ...flags], { encoding: 'utf8', timeout: 600_000 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`import ${format}: ${r.stderr}`);
  rmSync(out, { recursive: true, force: true });
  const rows = Number(/imported (\d+) routing rows/.exec(r.stdout)?.[1]);
  return { seconds, rssMB: Number(/MAXRSS (\d+)/.exec(r.stderr)?.[1]) / 1024, rows };
}

function throughputRow(what: string, ours: { seconds: number; rows: number }, peerOut: string, peerName: string): BenchRow {
  const [peerRows, peerSec] = peerOut.trim().split(/\s+/).map(Number);
  if (peerRows !== ours.rows) throw new Error(`import ${what}: ${ours.rows} rows, NumPy read ${peerRows}`);
  return {
    name: `import ${what} (${ours.rows} rows)`,
    ours: ours.rows / ours.seconds,
    peer: peerRows / peerSec,
    unit: 'rows/s',
    higherIsBetter: true,
    peerName,
    note: 'ours: whole CLI run (start, top-k, checks, Parquet); peer: reading only',
  };
}

export async function bench(): Promise<BenchRow[]> {
  const hasNumpy = spawnSync(PY, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
  if (!hasNumpy) return [{ name: 'import olmoe JSONL', ours: 0, peer: null, unit: 'rows/s', higherIsBetter: true, peerName: 'NumPy', note: `${PY} has no numpy` }];
  const dir = mkdtempSync(join(tmpdir(), 'moescope-bench-import-'));
  try {
    const rows: BenchRow[] = [];
    const N = 4;
    // olmoe: throughput on 10N windows; peak RSS at N and 10N (streaming: about the same)
    const small = join(dir, 'small.jsonl');
    const big = join(dir, 'c4_results.jsonl');
    py(GEN, [root, small, String(N), 'olmoe']);
    py(GEN, [root, big, String(10 * N), 'olmoe']);
    const flags = ['--num-experts', String(E)];
    const one = runImport(dir, 'olmoe', small, flags);
    const ten = runImport(dir, 'olmoe', big, flags);
    rows.push(throughputRow('olmoe JSONL', ten, py(READ, [big, 'olmoe']), 'json.loads+np.asarray'));
    rows.push({
      name: `import peak RSS, ${10 * N} vs ${N} windows`,
      ours: ten.rssMB,
      peer: one.rssMB,
      unit: 'MB',
      higherIsBetter: false,
      peerName: `same import at ${N} windows`,
      target: 'bounded (DuckDB 64MB + one record)',
    });
    rmSync(small, { force: true });
    rmSync(big, { force: true });
    // hf: router logits, top-k computed on import
    const hf = join(dir, 'hf');
    py(GEN, [root, hf, String(2 * N), 'hf']);
    rows.push(throughputRow('hf logits safetensors', runImport(dir, 'hf', hf, ['--top-k', String(K)]), py(READ, [hf, 'hf']), 'np.frombuffer'));
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
