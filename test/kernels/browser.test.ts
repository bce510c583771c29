import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import { matmulForward, matmulBackward, matmulBackends, setMatmulBackend } from '../../src/model/kernels/matmul.js';
import { attentionForward, attentionBackward } from '../../src/model/kernels/attention.js';
import { rmsnormForward } from '../../src/model/kernels/rmsnorm.js';
import { swigluForward } from '../../src/model/kernels/swiglu.js';
import { createForwardKernels } from '../../src/model/kernels/wasm.js';

/** dist/ (this file is dist/test/kernels/browser.test.js) */
const DIST = fileURLToPath(new URL('../../', import.meta.url));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** The same inputs on both sides: a tiny LCG, no dependencies. */
function inputs(N: number, C: number, OC: number) {
  let s = 12345;
  const fill = (n: number) => Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 31 - 1));
  return { inp: fill(N * C), weight: fill(OC * C), dout: fill(N * OC) };
}
const [N, C, OC] = [37, 64, 24];

/** Attention, RMSNorm and SwiGLU (their WASM paths) on the same inputs; runs in Node and, as source text, in the page. */
function otherKernels(m: { attentionForward: typeof attentionForward; attentionBackward: typeof attentionBackward; rmsnormForward: typeof rmsnormForward; swigluForward: typeof swigluForward }) {
  let s = 777;
  const fill = (n: number) => Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 31 - 1));
  const T = 21, H = 2, hd = 16, C = H * hd;
  const part = Int32Array.from({ length: T }, (_, t) => (t >= 3 && t < 12 ? 0 : t >= 12 && t < 20 ? 1 : -1));
  const q = fill(T * C), k = fill(T * C), v = fill(T * C), dout = fill(T * C);
  const out = new Float32Array(T * C), att = new Float32Array(H * T * T);
  m.attentionForward(out, att, q, k, v, part, T, H, hd);
  const dq = new Float32Array(T * C), dk = new Float32Array(T * C), dv = new Float32Array(T * C);
  m.attentionBackward(dq, dk, dv, dout, q, k, v, att, part, T, H, hd);
  const rms = new Float32Array(T * C), rstd = new Float32Array(T);
  m.rmsnormForward(rms, rstd, q, fill(C), T, C, 1e-5);
  const sw = new Float32Array(T * C);
  m.swigluForward(sw, q, k, T, C);
  return [out, att, dq, dk, dv, rms, rstd, sw].map((a) => Array.from(a));
}

test('the matmul module runs its WebAssembly SIMD kernel in Chromium, bit-identical to Node', async () => {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]));
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>kernels</title>');
      return;
    }
    try {
      const body = await readFile(join(DIST, path));
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS, headless: true });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    const got = await page.evaluate(
      async ({ src, N, C, OC, otherSrc }) => {
        const m = await import(src);
        let s = 12345;
        const fill = (n: number) => Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 31 - 1));
        const inp = fill(N * C), weight = fill(OC * C), dout = fill(N * OC);
        const out = new Float32Array(N * OC), dinp = new Float32Array(N * C), dw = new Float32Array(OC * C);
        const backends = m.matmulBackends();
        m.setMatmulBackend(backends.at(-1));
        m.matmulForward(out, inp, weight, null, N, C, OC);
        m.matmulBackward(dinp, dw, null, dout, inp, weight, N, C, OC);
        const k = await import(src.replace('matmul.js', 'index.js'));
        const others = new Function('return ' + otherSrc)()(k);
        // the resident pass's module (forward.wat) compiles synchronously on the page's thread too (under 4 KB)
        const fk = (await import(src.replace('matmul.js', 'wasm.js'))).createForwardKernels();
        const peak = fk === null ? null : fk.peak(1000, 0.999, 0.001);
        return { names: backends.map((b: { name: string }) => b.name), out: Array.from(out), dinp: Array.from(dinp), dw: Array.from(dw), others, peak };
      },
      { src: '/src/model/kernels/matmul.js', N, C, OC, otherSrc: otherKernels.toString() },
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(got.names, ['js', 'wasm-simd'], 'Chromium loads the SIMD kernel');
    const { inp, weight, dout } = inputs(N, C, OC);
    const out = new Float32Array(N * OC), dinp = new Float32Array(N * C), dw = new Float32Array(OC * C);
    setMatmulBackend(matmulBackends().at(-1)!);
    try {
      matmulForward(out, inp, weight, null, N, C, OC);
      matmulBackward(dinp, dw, null, dout, inp, weight, N, C, OC);
    } finally {
      setMatmulBackend(null);
    }
    // baseline WASM SIMD arithmetic is exact IEEE float32 (no fused multiply-add): same bits everywhere
    assert.deepEqual(got.out, Array.from(out));
    assert.deepEqual(got.dinp, Array.from(dinp));
    assert.deepEqual(got.dw, Array.from(dw));
    const others = otherKernels({ attentionForward, attentionBackward, rmsnormForward, swigluForward });
    ['attention out', 'att', 'dq', 'dk', 'dv', 'rmsnorm', 'rstd', 'swiglu'].forEach((name, i) => assert.deepEqual(got.others[i], others[i], name));
    assert.notEqual(got.peak, null, 'Chromium loads the resident pass kernels');
    assert.equal(got.peak, createForwardKernels()!.peak(1000, 0.999, 0.001));
  } finally {
    await browser.close();
    server.close();
  }
});
