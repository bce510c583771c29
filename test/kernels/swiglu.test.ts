import { test } from 'node:test';
import { Rng } from '../../src/model/rng.js';
import { swigluForward, swigluBackward } from '../../src/model/kernels/swiglu.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

test('swigluForward matches silu(g) * u', () => {
  const rng = new Rng(20);
  const [N, F] = [7, 13];
  const g = randn(rng, N * F, 3), u = randn(rng, N * F);
  const out = new Float32Array(N * F);
  swigluForward(out, g, u, N, F);
  const want = Array.from(g, (x, i) => (x / (1 + Math.exp(-x))) * u[i]);
  assertClose(out, want, 1e-6, 0, 'out');
});

test('swigluBackward matches central finite differences and accumulates', () => {
  const rng = new Rng(21);
  const [N, F] = [3, 7];
  const g = randn(rng, N * F, 3), u = randn(rng, N * F), dout = randn(rng, N * F);
  const g64 = f64(g), u64 = f64(u);
  const loss = () => {
    const out = f64(new Float32Array(N * F));
    swigluForward(out, g64, u64, N, F);
    return dot(out, dout);
  };
  const dg = new Float32Array(N * F).fill(1), du = new Float32Array(N * F).fill(-1);
  swigluBackward(dg, du, dout, g, u, N, F);
  assertClose(dg, numericGrad(g64, loss, 1e-6).map((x) => x + 1), 2e-6, 1e-6, 'dg');
  assertClose(du, numericGrad(u64, loss, 1e-6).map((x) => x - 1), 2e-6, 1e-6, 'du');
});
