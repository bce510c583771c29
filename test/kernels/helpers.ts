import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';

/** Random Float32Array with normal entries times `scale`. */
export function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** A float64 copy, to run a kernel's loops in double precision for finite differences. */
export function f64(a: Float32Array): Float32Array {
  return Float64Array.from(a) as unknown as Float32Array;
}

/** max |a - b| <= atol + rtol * max|b|  (one scale for the whole tensor, so tiny entries don't dominate). */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  let maxRef = 0;
  for (let i = 0; i < b.length; i++) maxRef = Math.max(maxRef, Math.abs(b[i]));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  const tol = atol + rtol * maxRef;
  assert.ok(worst <= tol, `${what}: max error ${worst.toExponential(3)} at ${at} (got ${a[at]}, want ${b[at]}) > tol ${tol.toExponential(3)}`);
}

/**
 * Central finite differences of the scalar loss(x) w.r.t. every entry of x (x is modified and restored).
 * `loss` should compute in float64 so that h can be small.
 */
export function numericGrad(x: Float32Array, loss: () => number, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i];
    x[i] = old + h;
    const lp = loss();
    x[i] = old - h;
    const lm = loss();
    x[i] = old;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

/** sum_i a[i] * w[i] in float64: the scalar whose gradient w.r.t. a is w. */
export function dot(a: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * w[i];
  return s;
}
