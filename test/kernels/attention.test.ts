import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';
import { attentionForward, attentionForwardJs, attentionBackward, setAttentionWasm } from '../../src/model/kernels/attention.js';
import { wasmKernel } from '../../src/model/kernels/wasm.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

/** SPEC §1 mask, written independently: causal, or both in the same image part. */
function sees(part: Int32Array, t: number, s: number): boolean {
  if (s <= t) return true;
  return part[t] !== -1 && part[t] === part[s];
}

function refAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, part: Int32Array, T: number, H: number, hd: number) {
  const C = H * hd;
  const out = new Float64Array(T * C), att = new Float64Array(H * T * T);
  for (let h = 0; h < H; h++)
    for (let t = 0; t < T; t++) {
      const w = new Float64Array(T);
      let z = 0;
      for (let s = 0; s < T; s++) {
        if (!sees(part, t, s)) continue;
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[t * C + h * hd + i] * k[s * C + h * hd + i];
        w[s] = Math.exp(d / Math.sqrt(hd));
        z += w[s];
      }
      for (let s = 0; s < T; s++) {
        att[h * T * T + t * T + s] = w[s] / z;
        for (let i = 0; i < hd; i++) out[t * C + h * hd + i] += (w[s] / z) * v[s * C + h * hd + i];
      }
    }
  return { out, att };
}

// text, image 0, image 1 right after it (no text between), text, image 2, text
const layouts: Int32Array[] = [
  Int32Array.from([-1, -1, 0, 0, 0, 0, 1, 1, 1, -1, -1, 2, 2, -1]),
  Int32Array.from([-1, -1, -1, -1, -1, -1, -1]), // text only: plain causal
  Int32Array.from([0, 0, 0, 0, 0]), // one image only: fully bidirectional
];

const impls: [string, boolean][] = [['js', false], ['wasm', true]];

test('the WebAssembly attention path is available in Node', () => {
  assert.ok(wasmKernel !== null);
});

for (const [impl, wasm] of impls) {
test(`attentionForward (${impl}) matches a straightforward masked softmax`, () => {
  setAttentionWasm(wasm);
  const rng = new Rng(50);
  for (const part of layouts) {
    const T = part.length, H = 3, hd = 5, C = H * hd;
    const q = randn(rng, T * C), k = randn(rng, T * C), v = randn(rng, T * C);
    const out = new Float32Array(T * C), att = new Float32Array(H * T * T).fill(NaN);
    attentionForward(out, att, q, k, v, part, T, H, hd);
    const ref = refAttention(q, k, v, part, T, H, hd);
    assertClose(out, ref.out, 1e-6, 1e-6, `out T=${T}`);
    assertClose(att, ref.att, 1e-6, 1e-7, `att T=${T}`);
  }
  setAttentionWasm(true);
});

test(`attention mask (${impl}): causal text, bidirectional inside an image, never into another image's future`, () => {
  setAttentionWasm(wasm);
  const rng = new Rng(51);
  const part = layouts[0];
  const T = part.length, H = 2, hd = 4, C = H * hd;
  const q = randn(rng, T * C), k = randn(rng, T * C), v = randn(rng, T * C);
  const out = new Float32Array(T * C), att = new Float32Array(H * T * T);
  attentionForward(out, att, q, k, v, part, T, H, hd);
  const A = (h: number, t: number, s: number) => att[h * T * T + t * T + s];
  for (let h = 0; h < H; h++) {
    assert.ok(A(h, 2, 5) > 0, 'first patch of image 0 sees its last patch');
    assert.ok(A(h, 5, 2) > 0, 'last patch of image 0 sees its first patch');
    assert.equal(A(h, 5, 6), 0, 'image 0 does not see image 1 (its future)');
    assert.equal(A(h, 3, 8), 0, 'image 0 does not see the end of image 1');
    assert.ok(A(h, 6, 5) > 0, 'image 1 sees image 0 (its past)');
    assert.ok(A(h, 6, 8) > 0, 'image 1 is bidirectional');
    assert.equal(A(h, 1, 2), 0, 'text does not see a later image');
    assert.ok(A(h, 9, 8) > 0, 'text after an image sees it');
    assert.equal(A(h, 9, 10), 0, 'text is causal');
    assert.equal(A(h, 8, 11), 0, 'image 1 does not see image 2');
    let sum = 0;
    for (let s = 0; s < T; s++) sum += A(h, 4, s);
    assert.ok(Math.abs(sum - 1) < 1e-6, 'rows sum to 1');
  }
  // changing a value the mask hides leaves the output unchanged; changing a visible one does not
  const v2 = v.slice();
  for (let i = 0; i < C; i++) v2[7 * C + i] += 10; // a patch of image 1
  const out2 = new Float32Array(T * C);
  attentionForward(out2, new Float32Array(H * T * T), q, k, v2, part, T, H, hd);
  for (let t = 0; t < 6; t++) for (let i = 0; i < C; i++) assert.equal(out2[t * C + i], out[t * C + i], `row ${t} sees the future image`);
  assert.notEqual(out2[6 * C], out[6 * C], 'image 1 sees its own patch');
  setAttentionWasm(true);
});
}

test('attentionForward with a non-contiguous image part still masks by part (wasm and js agree)', () => {
  const rng = new Rng(53);
  const part = Int32Array.from([0, 0, -1, 1, 0, 0, 1, -1, -1]); // parts interleaved: the mask is by id
  const T = part.length, H = 2, hd = 6, C = H * hd;
  const q = randn(rng, T * C), k = randn(rng, T * C), v = randn(rng, T * C);
  const ref = refAttention(q, k, v, part, T, H, hd);
  for (const [impl, wasm] of impls) {
    setAttentionWasm(wasm);
    const out = new Float32Array(T * C), att = new Float32Array(H * T * T);
    attentionForward(out, att, q, k, v, part, T, H, hd);
    assertClose(out, ref.out, 1e-6, 1e-6, `out ${impl}`);
    assertClose(att, ref.att, 1e-6, 1e-7, `att ${impl}`);
  }
  setAttentionWasm(true);
});

for (const [impl, wasm] of impls) {
test(`attentionBackward (${impl}) matches central finite differences and accumulates`, () => {
  setAttentionWasm(wasm);
  const rng = new Rng(52);
  const part = Int32Array.from([-1, 0, 0, 0, 1, 1, -1, -1]);
  const T = part.length, H = 2, hd = 3, C = H * hd;
  const q = randn(rng, T * C), k = randn(rng, T * C), v = randn(rng, T * C), dout = randn(rng, T * C);
  const q64 = f64(q), k64 = f64(k), v64 = f64(v);
  const loss = () => {
    const out = f64(new Float32Array(T * C)), att = f64(new Float32Array(H * T * T));
    attentionForwardJs(out, att, q64, k64, v64, part, T, H, hd); // float64 all the way
    return dot(out, dout);
  };
  const out = new Float32Array(T * C), att = new Float32Array(H * T * T);
  attentionForward(out, att, q, k, v, part, T, H, hd);
  const dq = new Float32Array(T * C).fill(1), dk = new Float32Array(T * C).fill(-1), dv = new Float32Array(T * C).fill(0.5);
  attentionBackward(dq, dk, dv, dout, q, k, v, att, part, T, H, hd);
  assertClose(dq, numericGrad(q64, loss, 1e-6).map((g) => g + 1), 2e-6, 1e-6, 'dq');
  assertClose(dk, numericGrad(k64, loss, 1e-6).map((g) => g - 1), 2e-6, 1e-6, 'dk');
  assertClose(dv, numericGrad(v64, loss, 1e-6).map((g) => g + 0.5), 2e-6, 1e-6, 'dv');
  setAttentionWasm(true);
});
}

test('wasm and js attention agree at a model-like size (padded heads and rows)', () => {
  const rng = new Rng(54);
  const T = 37, H = 3, hd = 12, C = H * hd;
  const part = new Int32Array(T).fill(-1);
  for (let t = 3; t < 19; t++) part[t] = 0;
  for (let t = 19; t < 35; t++) part[t] = 1;
  const q = randn(rng, T * C), k = randn(rng, T * C), v = randn(rng, T * C), dout = randn(rng, T * C);
  const run = (wasm: boolean) => {
    setAttentionWasm(wasm);
    const out = new Float32Array(T * C), att = new Float32Array(H * T * T);
    attentionForward(out, att, q, k, v, part, T, H, hd);
    const dq = new Float32Array(T * C), dk = new Float32Array(T * C), dv = new Float32Array(T * C);
    attentionBackward(dq, dk, dv, dout, q, k, v, att, part, T, H, hd);
    setAttentionWasm(true);
    return { out, att, dq, dk, dv };
  };
  const js = run(false), wa = run(true);
  for (const key of ['out', 'att', 'dq', 'dk', 'dv'] as const) assertClose(wa[key], js[key], 1e-5, 1e-6, key);
});
