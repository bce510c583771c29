import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';
import {
  softmaxForward,
  softmaxBackward,
  crossEntropyForward,
  crossEntropySoftmaxBackward,
} from '../../src/model/kernels/softmax.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

function refSoftmax(l: ArrayLike<number>, N: number, V: number): Float64Array {
  const p = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(l[n * V + v]);
    for (let v = 0; v < V; v++) p[n * V + v] = Math.exp(l[n * V + v]) / z;
  }
  return p;
}

test('softmaxForward matches exp/sum and survives large logits', () => {
  const rng = new Rng(30);
  const [N, V] = [7, 13];
  const logits = randn(rng, N * V, 3);
  const probs = new Float32Array(N * V);
  softmaxForward(probs, logits, N, V);
  assertClose(probs, refSoftmax(logits, N, V), 1e-6, 1e-7, 'probs');
  const big = new Float32Array([1000, 1001, 999]);
  const pb = new Float32Array(3);
  softmaxForward(pb, big, 1, 3);
  assertClose(pb, refSoftmax([0, 1, -1], 1, 3), 1e-6, 1e-7, 'max-subtracted');
});

test('crossEntropyForward: -log p[target], ignored targets give 0', () => {
  const rng = new Rng(31);
  const [N, V] = [5, 11];
  const probs = new Float32Array(N * V);
  softmaxForward(probs, randn(rng, N * V), N, V);
  const targets = new Int32Array([3, -1, 0, 10, -100]);
  const losses = new Float32Array(N).fill(NaN);
  crossEntropyForward(losses, probs, targets, N, V);
  for (let n = 0; n < N; n++) {
    const want = targets[n] < 0 ? 0 : -Math.log(probs[n * V + targets[n]]);
    assert.ok(Math.abs(losses[n] - want) <= 1e-6 * Math.max(1, want), `row ${n}`);
  }
});

test('crossEntropySoftmaxBackward matches finite differences of the loss w.r.t. logits', () => {
  const rng = new Rng(32);
  const [N, V] = [4, 7];
  const logits = randn(rng, N * V, 2);
  const targets = new Int32Array([2, -1, 6, 0]);
  const dlosses = randn(rng, N);
  const l64 = f64(logits);
  const loss = () => {
    const p = f64(new Float32Array(N * V)), ls = f64(new Float32Array(N));
    softmaxForward(p, l64, N, V);
    crossEntropyForward(ls, p, targets, N, V);
    return dot(ls, dlosses);
  };
  const probs = new Float32Array(N * V);
  softmaxForward(probs, logits, N, V);
  const dl = new Float32Array(N * V).fill(0.125);
  crossEntropySoftmaxBackward(dl, dlosses, probs, targets, N, V);
  assertClose(dl, numericGrad(l64, loss, 1e-6).map((g) => g + 0.125), 2e-6, 1e-6, 'dlogits');
  for (let v = 0; v < V; v++) assert.equal(dl[1 * V + v], 0.125, 'ignored row has no gradient');
});

test('softmaxBackward matches finite differences', () => {
  const rng = new Rng(33);
  const [N, V] = [3, 9];
  const logits = randn(rng, N * V), dprobs = randn(rng, N * V);
  const l64 = f64(logits);
  const loss = () => {
    const p = f64(new Float32Array(N * V));
    softmaxForward(p, l64, N, V);
    return dot(p, dprobs);
  };
  const probs = new Float32Array(N * V);
  softmaxForward(probs, logits, N, V);
  const dl = new Float32Array(N * V);
  softmaxBackward(dl, dprobs, probs, N, V);
  assertClose(dl, numericGrad(l64, loss, 1e-6), 2e-6, 1e-6, 'dlogits');
});
