/**
 * The forward/backward pairs of the MoE block (gather, experts, combine), the embedding and the LM head
 * (src/model/{moe,embedding,lm-head}.ts), each against central finite differences of its own forward,
 * run in float64 (JS kernels) so that the differences are precise. The whole-model PyTorch autograd
 * check of these pairs is test/model/efmoe-train.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/model/rng.js';
import { moeDispatch, moeGatherForward, moeGatherBackward, expertsForward, expertsBackward, moeCombineForward, moeCombineBackward } from '../../src/model/moe.js';
import { embedForward, embedBackward } from '../../src/model/embedding.js';
import { lmHeadForward, lmHeadBackward } from '../../src/model/lm-head.js';
import { matmulBackends, setMatmulBackend } from '../../src/model/kernels/matmul.js';
import { setRmsnormWasm } from '../../src/model/kernels/rmsnorm.js';
import { setSwigluWasm } from '../../src/model/kernels/swiglu.js';
import { randn, f64, assertClose, numericGrad, dot } from '../kernels/helpers.js';

/** Float64 everywhere: the JS kernels (the WASM ones are float32 only). */
function inFloat64(fn: () => void): void {
  setMatmulBackend(matmulBackends()[0]);
  setRmsnormWasm(false);
  setSwigluWasm(false);
  try {
    fn();
  } finally {
    setMatmulBackend(null);
    setRmsnormWasm(true);
    setSwigluWasm(true);
  }
}
const zeros = (n: number) => f64(new Float32Array(n));
// the JS matmul transposes a weight into a float32 scratch: nudge weights (float32 values) by a power of
// two, which keeps them exact in float32, so the difference sees the nudge and not a rounding
const HW = 2 ** -12;

test('moeDispatch sorts assignments by expert, stable, and covers every one once', () => {
  const experts = Int32Array.from([2, 0, 2, 1, 0, 2]);
  const start = new Int32Array(4), slots = new Int32Array(6), fill = new Int32Array(3);
  moeDispatch(start, slots, fill, experts, 6, 3);
  assert.deepEqual([...start], [0, 2, 3, 6]);
  assert.deepEqual([...slots], [1, 4, 3, 0, 2, 5]);
});

test('gather and combine backward agree with finite differences (K = 2)', () => {
  inFloat64(() => {
    const rng = new Rng(31);
    const N = 5, K = 2, C = 3, E = 3, NK = N * K;
    const experts = Int32Array.from([0, 2, 1, 0, 2, 1, 1, 2, 0, 1]);
    const start = new Int32Array(E + 1), slots = new Int32Array(NK), fill = new Int32Array(E);
    moeDispatch(start, slots, fill, experts, NK, E);
    const ln2 = f64(randn(rng, N * C)), h = f64(randn(rng, N * C)), ye = f64(randn(rng, NK * C)), gates = f64(randn(rng, NK));
    const wx = randn(rng, NK * C), wo = randn(rng, N * C);
    // gather: loss = <xe, wx>
    const gatherLoss = () => {
      const xe = zeros(NK * C);
      moeGatherForward(xe, ln2, slots, NK, K, C);
      return dot(xe, wx);
    };
    const dln2 = zeros(N * C);
    moeGatherBackward(dln2, wx, slots, NK, K, C);
    assertClose(dln2, numericGrad(ln2, gatherLoss, 1e-6), 1e-7, 1e-9, 'd ln2');
    // combine: loss = <out, wo>
    const combineLoss = () => {
      const out = zeros(N * C);
      moeCombineForward(out, h, ye, gates, slots, N, NK, K, C);
      return dot(out, wo);
    };
    const dh = zeros(N * C), dye = zeros(NK * C), dgates = zeros(NK);
    moeCombineBackward(dh, dye, dgates, f64(wo), ye, gates, slots, NK, K, C);
    assertClose(dh, numericGrad(h, combineLoss, 1e-6), 1e-7, 1e-9, 'd h');
    assertClose(dye, numericGrad(ye, combineLoss, 1e-6), 1e-7, 1e-9, 'd ye');
    assertClose(dgates, numericGrad(gates, combineLoss, 1e-6), 1e-7, 1e-9, 'd gates');
    // in place (inference): out aliases h and gives the same result
    const out = zeros(N * C);
    moeCombineForward(out, h, ye, gates, slots, N, NK, K, C);
    const inPlace = Float64Array.from(h) as unknown as Float32Array;
    moeCombineForward(inPlace, inPlace, ye, gates, slots, N, NK, K, C);
    assertClose(inPlace, out, 0, 0, 'in place');
  });
});

test('experts backward agrees with finite differences, and an expert without rows gets no gradient', () => {
  inFloat64(() => {
    const rng = new Rng(32);
    const E = 3, C = 4, F = 5, NK = 6;
    const start = Int32Array.from([0, 4, 4, 6]); // expert 1 has no rows
    const w = { w1: [0, 1, 2].map(() => f64(randn(rng, F * C, 0.5))), w3: [0, 1, 2].map(() => f64(randn(rng, F * C, 0.5))), w2: [0, 1, 2].map(() => f64(randn(rng, C * F, 0.5))) };
    const xe = f64(randn(rng, NK * C));
    const wy = randn(rng, NK * C);
    const loss = () => {
      const ye = zeros(NK * C), g = zeros(NK * F), u = zeros(NK * F), s = zeros(NK * F);
      expertsForward(ye, g, u, s, xe, w, start, E, C, F);
      return dot(ye, wy);
    };
    const ye = zeros(NK * C), g = zeros(NK * F), u = zeros(NK * F), s = zeros(NK * F);
    expertsForward(ye, g, u, s, xe, w, start, E, C, F);
    const gw = { w1: [0, 1, 2].map(() => zeros(F * C)), w3: [0, 1, 2].map(() => zeros(F * C)), w2: [0, 1, 2].map(() => zeros(C * F)) };
    const dxe = zeros(NK * C);
    expertsBackward(dxe, zeros(NK * F), zeros(NK * F), zeros(NK * F), gw, f64(wy), xe, g, u, s, w, start, E, C, F);
    assertClose(dxe, numericGrad(xe, loss, 1e-6), 1e-6, 1e-8, 'd xe');
    for (const k of ['w1', 'w3', 'w2'] as const) {
      for (const e of [0, 2]) assertClose(gw[k][e], numericGrad(w[k][e], loss, HW), 1e-5, 1e-8, `d ${k}[${e}]`);
      assert.ok(gw[k][1].every((x) => x === 0), `${k}[1] has no rows: zero gradient`);
    }
  });
});

test('embedding backward agrees with finite differences (text rows, image rows, a repeated token)', () => {
  inFloat64(() => {
    const rng = new Rng(33);
    const V = 6, C = 4, P = 3, N = 6, Np = 2;
    const rowIds = Int32Array.from([1, 4, -1, -1, 4, 2]);
    const patchRows = Int32Array.from([2, 3]);
    const w = { embedTokens: f64(randn(rng, V * C)), patchW: f64(randn(rng, C * P)), patchB: f64(randn(rng, C)) };
    const patches = f64(randn(rng, Np * P));
    const wx = randn(rng, N * C);
    const loss = () => {
      const x = zeros(N * C);
      embedForward(x, zeros(Np * C), w, rowIds, patches, patchRows, N, Np, C, P);
      return dot(x, wx);
    };
    const gw = { embedTokens: zeros(V * C), patchW: zeros(C * P), patchB: zeros(C) };
    embedBackward(gw, zeros(Np * C), f64(wx), w, rowIds, patches, patchRows, N, Np, C, P);
    for (const k of ['embedTokens', 'patchW', 'patchB'] as const) assertClose(gw[k], numericGrad(w[k], loss, HW), 1e-6, 1e-9, `d ${k}`);
    assert.ok(gw.embedTokens.subarray(0, C).every((x) => x === 0), 'an unused token row gets no gradient');
  });
});

test('LM head backward agrees with finite differences of the mean cross-entropy', () => {
  inFloat64(() => {
    const rng = new Rng(34);
    const N = 5, C = 4, V = 7, Nt = 3;
    const targetRows = Int32Array.from([0, 2, 3]), targets = Int32Array.from([6, 1, 6]);
    const x = f64(randn(rng, N * C));
    const w = { norm: f64(randn(rng, C)), lmHead: f64(randn(rng, V * C)) };
    const acts = () => ({ lnf: zeros(N * C), rstdf: zeros(N), lnfT: zeros(Nt * C), probsT: zeros(Nt * V), logitsT: zeros(Nt * V), losses: zeros(Nt) });
    const loss = () => lmHeadForward(acts(), x, w, targetRows, targets, N, Nt, C, V, 1e-5);
    const a = acts();
    const ce = lmHeadForward(a, x, w, targetRows, targets, N, Nt, C, V, 1e-5);
    // the CE itself, independently: -log softmax(lm_head RMSNorm(x))[target], averaged
    let want = 0;
    for (let i = 0; i < Nt; i++) {
      const r = targetRows[i];
      let ms = 0;
      for (let c = 0; c < C; c++) ms += x[r * C + c] ** 2 / C;
      const y = Array.from({ length: C }, (_, c) => (x[r * C + c] / Math.sqrt(ms + 1e-5)) * w.norm[c]);
      const logits = Array.from({ length: V }, (_, v) => y.reduce((s, yc, c) => s + yc * w.lmHead[v * C + c], 0));
      const m = Math.max(...logits);
      want += (Math.log(logits.reduce((s, l) => s + Math.exp(l - m), 0)) + m - logits[targets[i]]) / Nt;
    }
    assert.ok(Math.abs(ce - want) < 1e-12, `ce ${ce} vs ${want}`);
    const dx = zeros(N * C), gw = { norm: zeros(C), lmHead: zeros(V * C) };
    const scratch = { dlosses: zeros(Nt), dlogitsT: zeros(Nt * V), dlnfT: zeros(Nt * C), dlnf: zeros(N * C) };
    lmHeadBackward(dx, gw, scratch, a, x, w, targetRows, targets, N, Nt, C, V);
    assertClose(dx, numericGrad(x, loss, 1e-6), 1e-6, 1e-9, 'd x');
    assertClose(gw.norm, numericGrad(w.norm, loss, HW), 1e-5, 1e-9, 'd norm');
    assertClose(gw.lmHead, numericGrad(w.lmHead, loss, HW), 1e-5, 1e-9, 'd lm_head');
    assert.ok(dx.subarray(1 * C, 2 * C).every((v) => v === 0), 'a row that is not a target gets no gradient');
  });
});
