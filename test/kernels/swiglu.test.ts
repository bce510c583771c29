import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';
import { swigluForward, swigluForwardJs, swigluBackward, setSwigluWasm } from '../../src/model/kernels/swiglu.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

const impls: [string, boolean][] = [['js', false], ['wasm', true]];

for (const [impl, wasm] of impls) {
  test(`swigluForward (${impl}) matches silu(g) * u, also for large |g|`, () => {
    setSwigluWasm(wasm);
    try {
      const rng = new Rng(20);
      for (const [N, F] of [[7, 13], [33, 128], [1, 5]]) {
        const g = randn(rng, N * F, 3), u = randn(rng, N * F);
        g[0] = 95; // exp(-g) underflows
        if (g.length > 1) g[1] = -95; // exp(-g) would overflow float32
        const out = new Float32Array(N * F);
        swigluForward(out, g, u, N, F);
        const want = Array.from(g, (x, i) => (x / (1 + Math.exp(-x))) * u[i]);
        assertClose(out, want, 1e-6, 1e-12, `out N=${N} F=${F}`);
        // and entry by entry: float32 rounding of a few operations, not an approximate exp
        for (let i = 0; i < want.length; i++) {
          assert.ok(Math.abs(out[i] - want[i]) <= 1e-6 * Math.abs(want[i]) + 1e-30, `entry ${i}: ${out[i]} vs ${want[i]}`);
        }
      }
    } finally {
      setSwigluWasm(true);
    }
  });

  test(`swigluBackward (${impl}) matches central finite differences and accumulates`, () => {
    setSwigluWasm(wasm);
    try {
      const rng = new Rng(21);
      for (const [N, F] of [[3, 7], [9, 31]]) {
        const g = randn(rng, N * F, 3), u = randn(rng, N * F), dout = randn(rng, N * F);
        const g64 = f64(g), u64 = f64(u);
        const loss = () => {
          const out = f64(new Float32Array(N * F));
          swigluForwardJs(out, g64, u64, N, F); // float64 all the way
          return dot(out, dout);
        };
        const dg = new Float32Array(N * F).fill(1), du = new Float32Array(N * F).fill(-1);
        swigluBackward(dg, du, dout, g, u, N, F);
        assertClose(dg, numericGrad(g64, loss, 1e-6).map((x) => x + 1), 2e-6, 1e-6, `dg N=${N} F=${F}`);
        assertClose(du, numericGrad(u64, loss, 1e-6).map((x) => x - 1), 2e-6, 1e-6, `du N=${N} F=${F}`);
      }
    } finally {
      setSwigluWasm(true);
    }
  });
}
