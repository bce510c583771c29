import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';
import { routerForward, routerBackward } from '../../src/model/kernels/router.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

function route(logits: Float32Array, N: number, E: number, K: number, normTopk: boolean) {
  const experts = new Int32Array(N * K), gates = new Float32Array(N * K), probs = new Float32Array(N * E);
  routerForward(experts, gates, probs, logits, N, E, K, normTopk);
  return { experts, gates, probs };
}

test('routerForward: softmax probs, top-k descending, gates (normalised or not)', () => {
  const rng = new Rng(60);
  const [N, E] = [9, 7];
  const logits = randn(rng, N * E, 2);
  for (const K of [1, 2, 3]) {
    for (const norm of [false, true]) {
      const r = route(logits, N, E, K, norm);
      for (let n = 0; n < N; n++) {
        const row = Array.from(logits.subarray(n * E, n * E + E));
        const z = row.reduce((a, b) => a + Math.exp(b), 0);
        const p = row.map((l) => Math.exp(l) / z);
        assertClose(r.probs.subarray(n * E, n * E + E), p, 1e-6, 1e-7, `probs row ${n}`);
        const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b).slice(0, K);
        assert.deepEqual(Array.from(r.experts.subarray(n * K, n * K + K)), order, `experts row ${n} K=${K}`);
        const chosen = order.map((e) => p[e]);
        const s = chosen.reduce((a, b) => a + b, 0);
        const want = norm ? chosen.map((x) => x / s) : chosen;
        assertClose(r.gates.subarray(n * K, n * K + K), want, 1e-6, 1e-7, `gates row ${n} K=${K} norm=${norm}`);
      }
    }
  }
});

test('routerForward breaks ties toward the lower expert index', () => {
  const logits = new Float32Array([
    1, 3, 3, 0, 3, // three-way tie at the top: 1, 2, 4
    2, 2, 2, 2, 2, // all equal: 0, 1, 2
    0, 5, 1, 1, 5, // tie at the top (1, 4), then tie (2, 3)
  ]);
  const r = route(logits, 3, 5, 3, false);
  assert.deepEqual(Array.from(r.experts), [1, 2, 4, 0, 1, 2, 1, 4, 2]);
  const r1 = route(logits, 3, 5, 1, true);
  assert.deepEqual(Array.from(r1.experts), [1, 0, 1]);
  assert.deepEqual(Array.from(r1.gates), [1, 1, 1], 'top-1 with norm_topk_prob: gate is exactly 1');
});

test('norm_topk_prob: gates sum to 1 and keep the probs ratio', () => {
  const rng = new Rng(61);
  const logits = randn(rng, 4 * 8);
  const r = route(logits, 4, 8, 2, true);
  const u = route(logits, 4, 8, 2, false);
  for (let n = 0; n < 4; n++) {
    assert.ok(Math.abs(r.gates[2 * n] + r.gates[2 * n + 1] - 1) < 1e-6);
    assert.ok(Math.abs(r.gates[2 * n] / r.gates[2 * n + 1] - u.gates[2 * n] / u.gates[2 * n + 1]) < 1e-5);
    assert.ok(u.gates[2 * n] + u.gates[2 * n + 1] < 1, 'without norm the gates are the raw probs');
  }
});

test('routerBackward matches finite differences of the gates w.r.t. logits and accumulates', () => {
  const rng = new Rng(62);
  const [N, E] = [5, 6];
  for (const [K, norm] of [[1, false], [2, false], [2, true], [3, true], [1, true]] as [number, boolean][]) {
    const logits = randn(rng, N * E, 1.5), dgates = randn(rng, N * K);
    const l64 = f64(logits);
    const fixed = route(logits, N, E, K, norm).experts;
    const loss = () => {
      const ex = new Int32Array(N * K), g = f64(new Float32Array(N * K)), p = f64(new Float32Array(N * E));
      routerForward(ex, g, p, l64, N, E, K, norm);
      assert.deepEqual(ex, fixed, 'finite difference step changed the choice');
      return dot(g, dgates);
    };
    const r = route(logits, N, E, K, norm);
    const dl = new Float32Array(N * E).fill(0.25);
    routerBackward(dl, dgates, r.probs, r.experts, N, E, K, norm);
    assertClose(dl, numericGrad(l64, loss, 1e-6).map((g) => g + 0.25), 2e-6, 1e-6, `dlogits K=${K} norm=${norm}`);
  }
});
