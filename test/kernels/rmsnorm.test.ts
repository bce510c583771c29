import { test } from 'node:test';
import { Rng } from '../../src/model/rng.js';
import { rmsnormForward, rmsnormForwardJs, rmsnormBackward, setRmsnormWasm } from '../../src/model/kernels/rmsnorm.js';
import { randn, f64, assertClose, numericGrad, dot } from './helpers.js';

for (const [impl, wasm] of [['js', false], ['wasm', true]] as [string, boolean][]) {
test(`rmsnormForward (${impl}) matches a straightforward loop`, () => {
  setRmsnormWasm(wasm);
  const rng = new Rng(10);
  for (const [N, C] of [[1, 1], [7, 13], [4, 64], [3, 8], [37, 64], [70, 16], [9, 12]]) {
    const eps = 1e-5;
    const inp = randn(rng, N * C, 2), w = randn(rng, C);
    const out = new Float32Array(N * C), rstd = new Float32Array(N);
    rmsnormForward(out, rstd, inp, w, N, C, eps);
    const want = new Float64Array(N * C), wantR = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      let ms = 0;
      for (let c = 0; c < C; c++) ms += inp[n * C + c] ** 2 / C;
      wantR[n] = 1 / Math.sqrt(ms + eps);
      for (let c = 0; c < C; c++) want[n * C + c] = (inp[n * C + c] / Math.sqrt(ms + eps)) * w[c];
    }
    assertClose(out, want, 1e-6, 0, `out N=${N} C=${C}`);
    assertClose(rstd, wantR, 1e-6, 0, `rstd N=${N} C=${C}`);
  }
  setRmsnormWasm(true);
});
}

test('rmsnormBackward matches central finite differences and accumulates', () => {
  const rng = new Rng(11);
  for (const [N, C] of [[3, 7], [2, 13], [1, 2]]) {
    const eps = 1e-5;
    const inp = randn(rng, N * C), w = randn(rng, C), dout = randn(rng, N * C);
    const x64 = f64(inp), w64 = f64(w);
    const loss = () => {
      const out = f64(new Float32Array(N * C)), r = f64(new Float32Array(N));
      rmsnormForwardJs(out, r, x64, w64, N, C, eps); // float64 all the way
      return dot(out, dout);
    };
    const out = new Float32Array(N * C), rstd = new Float32Array(N);
    rmsnormForward(out, rstd, inp, w, N, C, eps);
    const dinp = new Float32Array(N * C).fill(0.5), dw = new Float32Array(C).fill(-0.25);
    rmsnormBackward(dinp, dw, dout, inp, w, rstd, N, C);
    const gx = numericGrad(x64, loss, 1e-6).map((g) => g + 0.5);
    const gw = numericGrad(w64, loss, 1e-6).map((g) => g - 0.25);
    assertClose(dinp, gx, 2e-6, 1e-6, `dinp N=${N} C=${C}`);
    assertClose(dw, gw, 2e-6, 1e-6, `dweight N=${N} C=${C}`);
  }
});
