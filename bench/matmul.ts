import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './report.js';
import { matmulForward, matmulBackward, setMatmulBackend, matmulBackends } from '../src/model/kernels/matmul.js';
import { jsBackend } from '../src/model/kernels/gemm-js.js';
import { createForwardKernels } from '../src/model/kernels/wasm.js';

/**
 * Matmul GFLOP/s at the model's shapes vs NumPy's OpenBLAS, single-threaded, same products and FLOP
 * counts (bench/py/matmul_numpy.py). fwd: out = inp @ weight^T (2*N*C*OC); bwd: dinp and dweight
 * (4*N*C*OC). Each side's figure is its fastest single call; the two sides take turns, shape by shape,
 * for several rounds, so on a shared machine both see the same load.
 *
 * OpenBLAS uses this machine's 512-bit FMA; WebAssembly has 128-bit SIMD without FMA. So the matmul is
 * also given as a fraction of the 128-bit SIMD limit: the peer is the attainable f32x4 mul + add rate,
 * measured by forward.wat's `peak` probe (independent mul + add chains in registers, no memory traffic)
 * in the same engine, in the same rounds; ours is the gemm kernel as the capture's resident pass calls
 * it (operands already in WASM memory) and matmulForward as a call from JS (copies in and out).
 */
type Kind = 'fwd' | 'bwd';
interface Shape {
  kind: Kind;
  N: number;
  C: number;
  OC: number;
  what: string;
  js?: boolean; // measure the plain-JS fallback instead of the default backend
}

const SHAPES: Shape[] = [
  { kind: 'fwd', N: 2048, C: 64, OC: 128, what: 'expert up w1/w3' },
  { kind: 'fwd', N: 2048, C: 128, OC: 64, what: 'expert down w2' },
  { kind: 'fwd', N: 2048, C: 64, OC: 64, what: 'attention q/k/v/o' },
  { kind: 'fwd', N: 2048, C: 64, OC: 100, what: 'lm head' },
  { kind: 'fwd', N: 2048, C: 64, OC: 8, what: 'router' },
  { kind: 'fwd', N: 256, C: 64, OC: 128, what: 'one expert\'s tokens' },
  { kind: 'bwd', N: 2048, C: 64, OC: 128, what: 'expert up' },
  { kind: 'bwd', N: 2048, C: 128, OC: 64, what: 'expert down' },
  { kind: 'fwd', N: 2048, C: 64, OC: 128, what: 'JS fallback, no WASM', js: true },
];
const ROUNDS = 4;
const SECONDS = 0.25; // per shape, side and round: the group takes about 2 * 9 * 4 * 0.25 * 1.5 s

function randn(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/**
 * flops / the fastest single call within `seconds`. On a shared machine a call that ran undisturbed
 * is the best estimate of the kernel's speed; the peer is timed the same way.
 */
function bestRate(fn: () => void, flops: number, seconds: number): number {
  for (let i = 0; i < 3; i++) fn(); // warm up (JIT, WASM tier-up, memory growth)
  let best = Infinity;
  const end = performance.now() + seconds * 1e3;
  for (let calls = 0; calls < 5 || performance.now() < end; calls++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return flops / (best / 1e3) / 1e9;
}

function ours(s: Shape): () => number {
  const { kind, N, C, OC } = s;
  const inp = randn(N * C, 1), weight = randn(OC * C, 2), dout = randn(N * OC, 3);
  const out = new Float32Array(N * OC), dinp = new Float32Array(N * C), dweight = new Float32Array(OC * C);
  const fn =
    kind === 'fwd'
      ? () => matmulForward(out, inp, weight, null, N, C, OC)
      : () => matmulBackward(dinp, dweight, null, dout, inp, weight, N, C, OC);
  const flops = (kind === 'fwd' ? 2 : 4) * N * C * OC;
  return () => {
    setMatmulBackend(s.js ? jsBackend : null);
    try {
      return bestRate(fn, flops, s.js ? SECONDS / 2 : SECONDS);
    } finally {
      setMatmulBackend(null);
    }
  };
}

/** The NumPy side: a long-lived /usr/bin/python3 that answers one timing request per line. */
async function numpyPeer(): Promise<{ setup: string; time: (s: Shape) => Promise<number>; close: () => void } | string> {
  const script = fileURLToPath(new URL('../../bench/py/matmul_numpy.py', import.meta.url));
  const proc = spawn('/usr/bin/python3', [script], {
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string | null> => {
    const r = await lines.next();
    return r.done ? null : r.value;
  };
  const failed = await new Promise<string | null>((resolve) => {
    proc.once('error', (e) => resolve(e.message));
    proc.once('spawn', () => resolve(null));
  });
  if (failed) return `numpy peer did not start: ${failed}`;
  const first = await next();
  if (first === null) return `numpy peer failed: ${stderr.trim().split('\n').pop() ?? ''}`;
  const setup = JSON.parse(first) as { numpy: string; blas: string };
  return {
    setup: `numpy ${setup.numpy}, ${setup.blas}`,
    async time(s) {
      proc.stdin.write(JSON.stringify({ kind: s.kind, N: s.N, C: s.C, OC: s.OC, seconds: SECONDS }) + '\n');
      const line = await next();
      if (line === null) throw new Error(`numpy peer died: ${stderr.trim().split('\n').pop() ?? ''}`);
      return (JSON.parse(line) as { gflops: number }).gflops;
    },
    close: () => proc.stdin.end(),
  };
}

/** The peak probe and the bare gemm4 kernel on resident operands (the capture's matmul). */
function simdLimit(): { peak: () => number; kernel: () => number; shape: string } | null {
  const fk = createForwardKernels();
  if (fk === null) return null;
  const { N, C, OC } = SHAPES[0];
  const k = fk.k;
  const mem = k.heap(N * C + C * OC + N * OC);
  mem.set(randn(N * C + C * OC, 4)); // packed A [N/4][C][4], then B [C][OC]
  const steps = 1 << 18;
  return {
    peak: () => bestRate(() => fk.peak(steps, 0.999, 0.001), steps * fk.PEAK_FLOPS_PER_STEP, SECONDS),
    kernel: () => bestRate(() => k.gemm4(0, 16 * C, 16, N * C * 4, OC * 4, (N * C + C * OC) * 4, OC * 4, N, C, OC, 0), 2 * N * C * OC, SECONDS),
    shape: `N=${N} C=${C}->${OC}`,
  };
}

export async function bench(): Promise<BenchRow[]> {
  const backend = matmulBackends().at(-1)!.name;
  const runs = SHAPES.map(ours);
  const mine = SHAPES.map(() => 0);
  const limit = simdLimit();
  let peak = 0, kernel = 0;
  const peer = await numpyPeer();
  const theirs: (number | null)[] = SHAPES.map(() => (typeof peer === 'string' ? null : 0));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < SHAPES.length; i++) {
        mine[i] = Math.max(mine[i], runs[i]());
        if (typeof peer !== 'string') theirs[i] = Math.max(theirs[i]!, await peer.time(SHAPES[i]));
      }
      if (limit) {
        peak = Math.max(peak, limit.peak());
        kernel = Math.max(kernel, limit.kernel());
      }
    }
  } finally {
    if (typeof peer !== 'string') peer.close();
  }
  const rows: BenchRow[] = SHAPES.map((s, i) => ({
    name: `matmul ${s.kind} N=${s.N} C=${s.C}->${s.OC} (${s.what})`,
    ours: mine[i],
    peer: theirs[i],
    unit: 'GFLOP/s',
    higherIsBetter: true,
    peerName: 'NumPy OpenBLAS 1 thread',
    note: i === 0 ? `ours: ${backend}; peer: ${typeof peer === 'string' ? peer : peer.setup}` : undefined,
    target: s.js ? undefined : '>= 0.25x',
  }));
  if (limit) {
    const peakName = '128-bit SIMD limit (f32x4 mul+add peak probe, WASM)';
    const note = `limit: ${PEAK_NOTE}`;
    rows.push(
      { name: `matmul fraction of SIMD limit: gemm4 kernel (${limit.shape})`, ours: kernel, peer: peak, unit: 'GFLOP/s', higherIsBetter: true, peerName: peakName, note: `ours: the capture's resident matmul (operands in WASM memory); ${note}` },
      { name: `matmul fraction of SIMD limit: matmulForward (${limit.shape})`, ours: mine[0], peer: peak, unit: 'GFLOP/s', higherIsBetter: true, peerName: peakName, note: 'ours: a call from JS, with the copies in and out of WASM memory' },
    );
  }
  return rows;
}

const PEAK_NOTE = 'the fastest rate of 12 independent c = c*m + a f32x4 chains in registers (no loads, no FMA, as baseline WASM SIMD)';
