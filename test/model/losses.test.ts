/** Router auxiliary losses (src/model/losses.ts): known values, and backward vs finite differences. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBalanceForward, loadBalanceBackward, zLossForward, zLossBackward } from '../../src/model/losses.js';
import { Rng } from '../../src/model/rng.js';

function softmaxRows(logits: Float32Array, N: number, E: number): Float32Array {
  const p = new Float32Array(N * E);
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let e = 0; e < E; e++) s += Math.exp(logits[n * E + e]);
    for (let e = 0; e < E; e++) p[n * E + e] = Math.exp(logits[n * E + e]) / s;
  }
  return p;
}

test('load balance: E for total collapse onto a sure expert, 1 for a uniform router', () => {
  const N = 3, E = 4, K = 1;
  const f = new Float64Array(E);
  const collapsed = new Float32Array(N * E);
  for (let n = 0; n < N; n++) collapsed[n * E + 2] = 1;
  assert.ok(Math.abs(loadBalanceForward(f, collapsed, new Int32Array(N).fill(2), N, E, K) - E) < 1e-6);
  assert.deepEqual([...f], [0, 0, 1, 0]);
  const uniform = new Float32Array(N * E).fill(1 / E);
  assert.ok(Math.abs(loadBalanceForward(f, uniform, Int32Array.from([0, 1, 3]), N, E, K) - 1) < 1e-6);
});

test('z-loss: mean squared logsumexp', () => {
  const logits = Float32Array.from([0, 0, Math.log(3), 0]); // rows: lse = log 2, log 4
  const lse = new Float32Array(2);
  const z = zLossForward(lse, logits, 2, 2);
  assert.ok(Math.abs(z - (Math.log(2) ** 2 + Math.log(4) ** 2) / 2) < 1e-6);
});

test('load-balance and z-loss backward agree with finite differences through the softmax', () => {
  const N = 5, E = 4, K = 2;
  const rng = new Rng(3);
  const logits = Float32Array.from({ length: N * E }, () => rng.normal());
  const experts = Int32Array.from({ length: N * K }, (_, j) => (j * 3 + 1) % E); // fixed choice: f is a constant
  const loss = (lg: Float32Array) => {
    const p = softmaxRows(lg, N, E);
    return 0.3 * loadBalanceForward(new Float64Array(E), p, experts, N, E, K) + 0.05 * zLossForward(new Float32Array(N), lg, N, E);
  };
  const probs = softmaxRows(logits, N, E);
  const f = new Float64Array(E);
  loadBalanceForward(f, probs, experts, N, E, K);
  const lse = new Float32Array(N);
  zLossForward(lse, logits, N, E);
  const d = new Float32Array(N * E);
  loadBalanceBackward(d, new Float32Array(N * E), 0.3, f, probs, N, E);
  zLossBackward(d, 0.05, lse, probs, N, E);
  for (let i = 0; i < N * E; i++) {
    const h = 1e-2;
    const up = logits.slice(), dn = logits.slice();
    up[i] += h;
    dn[i] -= h;
    const fd = (loss(up) - loss(dn)) / (up[i] - dn[i]);
    assert.ok(Math.abs(fd - d[i]) < 1e-3 * Math.abs(d[i]) + 2e-4, `logit ${i}: fd ${fd} vs ${d[i]}`);
  }
});
