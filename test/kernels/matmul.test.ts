import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';
import { matmulForward, matmulBackward, matmulBackends, setMatmulBackend } from '../../src/model/kernels/matmul.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

/** Reference: out[n,o] = sum_c inp[n,c] w[o,c] + b[o], float64, straightforward loops. */
function refForward(inp: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, N: number, C: number, OC: number): Float64Array {
  const out = new Float64Array(N * OC);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < OC; o++) {
      let s = b ? b[o] : 0;
      for (let c = 0; c < C; c++) s += inp[n * C + c] * w[o * C + c];
      out[n * OC + o] = s;
    }
  return out;
}

const shapes: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [4, 8, 4],
  [9, 16, 8],
  [33, 64, 100],
  [30, 64, 128],
  [13, 128, 64],
  [5, 3, 17],
  [517, 9, 11], // k = N > 256: the WASM weight gradient runs in k chunks
];

test('the WebAssembly SIMD backend loads in Node', () => {
  assert.deepEqual(matmulBackends().map((b) => b.name), ['js', 'wasm-simd']);
});

for (const be of [...matmulBackends(), null]) {
  const name = be ? be.name : 'auto';
  test(`matmulForward (${name}) matches a straightforward loop`, () => {
    setMatmulBackend(be);
    try {
      const rng = new Rng(1);
      for (const [N, C, OC] of shapes) {
        for (const withBias of [false, true]) {
          const inp = randn(rng, N * C), w = randn(rng, OC * C), b = withBias ? randn(rng, OC) : null;
          const out = new Float32Array(N * OC).fill(NaN); // forward overwrites
          matmulForward(out, inp, w, b, N, C, OC);
          assertClose(out, refForward(inp, w, b, N, C, OC), 1e-6, 1e-6, `N=${N} C=${C} OC=${OC} bias=${withBias}`);
        }
      }
    } finally {
      setMatmulBackend(null);
    }
  });

  test(`matmulBackward (${name}) matches the forward loop's products and accumulates`, () => {
    setMatmulBackend(be);
    try {
      const rng = new Rng(2);
      for (const [N, C, OC] of shapes) {
        const inp = randn(rng, N * C), w = randn(rng, OC * C), dout = randn(rng, N * OC);
        const dinp0 = randn(rng, N * C), dw0 = randn(rng, OC * C), db0 = randn(rng, OC);
        const dinp = dinp0.slice(), dw = dw0.slice(), db = db0.slice();
        matmulBackward(dinp, dw, db, dout, inp, w, N, C, OC);
        const wantDinp = new Float64Array(N * C), wantDw = new Float64Array(OC * C), wantDb = new Float64Array(OC);
        for (let n = 0; n < N; n++)
          for (let o = 0; o < OC; o++) {
            const d = dout[n * OC + o];
            wantDb[o] += d;
            for (let c = 0; c < C; c++) {
              wantDinp[n * C + c] += d * w[o * C + c];
              wantDw[o * C + c] += d * inp[n * C + c];
            }
          }
        for (let i = 0; i < wantDinp.length; i++) wantDinp[i] += dinp0[i];
        for (let i = 0; i < wantDw.length; i++) wantDw[i] += dw0[i];
        for (let i = 0; i < OC; i++) wantDb[i] += db0[i];
        const tag = `N=${N} C=${C} OC=${OC}`;
        assertClose(dinp, wantDinp, 1e-6, 1e-6, `dinp ${tag}`);
        assertClose(dw, wantDw, 1e-6, 1e-6, `dweight ${tag}`);
        assertClose(db, wantDb, 1e-6, 1e-6, `dbias ${tag}`);
      }
    } finally {
      setMatmulBackend(null);
    }
  });
}

test('matmulBackward matches central finite differences', () => {
  const rng = new Rng(3);
  const [N, C, OC] = [5, 7, 6];
  const inp = randn(rng, N * C), w = randn(rng, OC * C), b = randn(rng, OC), dout = randn(rng, N * OC);
  const x64 = f64(inp), w64 = f64(w), b64 = f64(b);
  const loss = () => dot(refForward(x64, w64, b64, N, C, OC), dout);
  const dinp = new Float32Array(N * C), dw = new Float32Array(OC * C), db = new Float32Array(OC);
  matmulBackward(dinp, dw, db, dout, inp, w, N, C, OC);
  assertClose(dinp, numericGrad(x64, loss, 1e-3), 1e-5, 1e-6, 'dinp');
  assertClose(dw, numericGrad(w64, loss, 1e-3), 1e-5, 1e-6, 'dweight');
  assertClose(db, numericGrad(b64, loss, 1e-3), 1e-5, 1e-6, 'dbias');
});

test('matmulBackward with null gradients touches nothing', () => {
  const rng = new Rng(4);
  const [N, C, OC] = [3, 4, 5];
  const dinp = new Float32Array(N * C);
  matmulBackward(dinp, null, null, randn(rng, N * OC), randn(rng, N * C), randn(rng, OC * C), N, C, OC);
  assert.ok(dinp.some((x) => x !== 0));
  const dw = new Float32Array(OC * C);
  matmulBackward(null, dw, null, randn(rng, N * OC), randn(rng, N * C), randn(rng, OC * C), N, C, OC);
  assert.ok(dw.some((x) => x !== 0));
});

test('matmul with N = 0 (an expert that got no tokens) is a no-op', () => {
  for (const be of matmulBackends()) {
    setMatmulBackend(be);
    try {
      const dw = new Float32Array(4 * 3).fill(1);
      matmulForward(new Float32Array(0), new Float32Array(0), new Float32Array(12), null, 0, 3, 4);
      matmulBackward(new Float32Array(0), dw, new Float32Array(4), new Float32Array(0), new Float32Array(0), new Float32Array(12), 0, 3, 4);
      assert.ok(dw.every((x) => x === 1), be.name);
    } finally {
      setMatmulBackend(null);
    }
  }
});

test('the backends agree at a model-sized shape on subarray views (WASM memory grows)', () => {
  const rng = new Rng(5);
  const [N, C, OC] = [3001, 64, 100];
  const pad = 3; // operands that start mid-buffer
  const inp = randn(rng, N * C + pad).subarray(pad), w = randn(rng, OC * C), dout = randn(rng, N * OC + pad).subarray(pad);
  const results = matmulBackends().map((be) => {
    setMatmulBackend(be);
    try {
      const out = new Float32Array(N * OC), dinp = new Float32Array(N * C), dw = new Float32Array(OC * C);
      matmulForward(out, inp, w, null, N, C, OC);
      matmulBackward(dinp, dw, null, dout, inp, w, N, C, OC);
      return { out, dinp, dw };
    } finally {
      setMatmulBackend(null);
    }
  });
  const [a, b] = [results[0], results.at(-1)!];
  assertClose(b.out, a.out, 1e-6, 1e-6, 'out');
  assertClose(b.dinp, a.dinp, 1e-6, 1e-6, 'dinp');
  assertClose(b.dw, a.dw, 1e-5, 0, 'dweight (sums over 3001 rows in float32)');
});

test('matmul rejects arrays shorter than their shape', () => {
  assert.throws(() => matmulForward(new Float32Array(6), new Float32Array(5), new Float32Array(6), null, 2, 3, 3), /inp has 5 elements, needs 6/);
  assert.throws(() => matmulBackward(null, new Float32Array(8), null, new Float32Array(6), new Float32Array(6), new Float32Array(9), 2, 3, 3), /dweight has 8/);
});
