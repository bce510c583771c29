import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';
import { ropeTable, ropeForward, ropeBackward } from '../../src/model/kernels/rope.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

/** SPEC §1 literally: x' = x*cos + rotate_half(x)*sin with rotate_half([a, b]) = [-b, a], cos/sin over hd. */
function refRope(x: ArrayLike<number>, pos: Int32Array, N: number, H: number, hd: number, theta: number): Float64Array {
  const half = hd / 2;
  const out = new Float64Array(N * H * hd);
  for (let n = 0; n < N; n++)
    for (let h = 0; h < H; h++) {
      const base = (n * H + h) * hd;
      for (let i = 0; i < hd; i++) {
        const j = i % half;
        const angle = pos[n] * Math.pow(theta, (-2 * j) / hd);
        const rot = i < half ? -x[base + i + half] : x[base + i - half];
        out[base + i] = x[base + i] * Math.cos(angle) + rot * Math.sin(angle);
      }
    }
  return out;
}

test('ropeTable holds cos/sin of pos * theta^(-2j/hd)', () => {
  const hd = 8, maxPos = 40, theta = 10000;
  const t = ropeTable(maxPos, hd, theta);
  assert.equal(t.cos.length, maxPos * hd / 2);
  for (let p = 0; p < maxPos; p++)
    for (let j = 0; j < hd / 2; j++) {
      const a = p * Math.pow(theta, (-2 * j) / hd);
      assert.ok(Math.abs(t.cos[p * 4 + j] - Math.cos(a)) < 1e-5 && Math.abs(t.sin[p * 4 + j] - Math.sin(a)) < 1e-5, `p=${p} j=${j}`);
    }
});

test('ropeForward is rotate-half (not interleaved) and uses each row position', () => {
  const hd = 4, table = ropeTable(16, hd, 10000);
  // x = e0 at position p: the first frequency is 1, so e0 -> cos(p) e0 + sin(p) e2 (rotate-half pairs i with i+hd/2)
  const x = new Float32Array([1, 0, 0, 0, 1, 0, 0, 0]);
  const out = new Float32Array(8);
  ropeForward(out, x, new Int32Array([0, 3]), table, 2, 1, hd);
  assertClose(out, [1, 0, 0, 0, Math.cos(3), 0, Math.sin(3), 0], 0, 1e-6, 'e0 rotation');
});

test('ropeForward matches SPEC formula on random input, also in place', () => {
  const rng = new Rng(40);
  const [N, H, hd, theta] = [7, 3, 6, 500];
  const pos = Int32Array.from({ length: N }, (_, i) => (i * 5 + 3) % 29);
  const table = ropeTable(32, hd, theta);
  const x = randn(rng, N * H * hd);
  const out = new Float32Array(x.length);
  ropeForward(out, x, pos, table, N, H, hd);
  const want = refRope(x, pos, N, H, hd, theta);
  assertClose(out, want, 0, 2e-5, 'out');
  const inPlace = x.slice();
  ropeForward(inPlace, inPlace, pos, table, N, H, hd);
  assert.deepEqual(inPlace, out);
});

test('rope makes q.k depend only on the position difference', () => {
  const rng = new Rng(41);
  const hd = 8, table = ropeTable(64, hd, 10000);
  const q = randn(rng, hd), k = randn(rng, hd);
  const score = (pq: number, pk: number) => {
    const a = new Float32Array(hd), b = new Float32Array(hd);
    ropeForward(a, q, new Int32Array([pq]), table, 1, 1, hd);
    ropeForward(b, k, new Int32Array([pk]), table, 1, 1, hd);
    return dot(a, b);
  };
  assert.ok(Math.abs(score(10, 3) - score(30, 23)) < 1e-4);
  assert.ok(Math.abs(score(10, 3) - score(10, 4)) > 1e-3, 'different offsets give different scores');
});

test('ropeBackward matches finite differences; accumulates, or replaces when in place', () => {
  const rng = new Rng(42);
  const [N, H, hd] = [5, 2, 6];
  const pos = new Int32Array([0, 4, 1, 9, 2]);
  const table = ropeTable(10, hd, 100);
  const x = randn(rng, N * H * hd), dout = randn(rng, N * H * hd);
  const x64 = f64(x);
  const loss = () => {
    const out = f64(new Float32Array(x.length));
    ropeForward(out, x64, pos, table, N, H, hd);
    return dot(out, dout);
  };
  const g = numericGrad(x64, loss, 1e-6);
  const dinp = new Float32Array(x.length).fill(2);
  ropeBackward(dinp, dout, pos, table, N, H, hd);
  assertClose(dinp, g.map((v) => v + 2), 1e-6, 1e-6, 'accumulated dinp');
  const inPlace = dout.slice();
  ropeBackward(inPlace, inPlace, pos, table, N, H, hd);
  assertClose(inPlace, g, 1e-6, 1e-6, 'in-place dinp');
});

test('rope rejects positions outside the table', () => {
  const table = ropeTable(4, 2, 10000);
  assert.throws(() => ropeForward(new Float32Array(2), new Float32Array(2), new Int32Array([4]), table, 1, 1, 2), RangeError);
});
