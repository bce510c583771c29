import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeTrace } from '../../src/analysis/analyze.js';
import type { LayerMetrics } from '../../src/analysis/types.js';
import { makeTrace, type TokenGroup } from './make-trace.js';

const tmp = mkdtempSync(join(tmpdir(), 'moescope-metrics-'));
const near = (a: number | null, b: number, what: string, tol = 1e-9) => {
  assert.ok(a !== null && Math.abs(a - b) < tol, `${what}: got ${a}, want ${b}`);
};
const H2 = (p: number) => -(p > 0 ? p * Math.log2(p) : 0) - (p < 1 ? (1 - p) * Math.log2(1 - p) : 0);

test('perfectly specialised experts: S = 1, I = H(M), JSD = 1 bit', async () => {
  // experts 0..3 get 10 text tokens each, experts 4..7 get 5 image tokens each
  const groups: TokenGroup[] = [];
  for (let e = 0; e < 4; e++) groups.push({ layer: 0, modality: 'text', expert: [e], rep: 10 });
  for (let e = 4; e < 8; e++) groups.push({ layer: 0, modality: 'image', expert: [e], rep: 5 });
  const m = (await analyzeTrace(await makeTrace(join(tmp, 'spec'), groups))).metrics[0];
  near(m.S, 1, 'S');
  near(m.S0, 1 - H2(40 / 60), 'S0'); // pi = (2/3, 1/3): H = 0.918296 bits
  near(m.S0, 0.0817041659455102, 'S0 by hand');
  near(m.mi, H2(2 / 3), 'I = H(M) when the expert decides the modality');
  near(m.mi_norm, 1, 'I/H(M)');
  near(m.jsd, 1, 'JSD of disjoint supports');
  // load: f = 1/6 (x4), 1/12 (x4); mean 1/8; |f - 1/8| = 1/24 -> CV = (1/24)/(1/8) = 1/3
  near(m.load.cv, 1 / 3, 'CV');
  near(m.load.max_over_mean, (1 / 6) / (1 / 8), 'max/mean');
  assert.equal(m.load.active_fraction, 1);
  assert.deepEqual(m.load.dead_ids, []);
  assert.equal(m.router.entropy_mean, null, 'no prob column');
});

test('a modality-blind router: S = S0, I = 0, JSD = 0; a dead expert is reported and skipped by S', async () => {
  // expert e (0..6) gets 3(e+1) text and (e+1) image tokens: the same 3:1 mix everywhere; expert 7 gets nothing
  const groups: TokenGroup[] = [];
  for (let e = 0; e < 7; e++) {
    groups.push({ layer: 2, modality: 'text', expert: [e], rep: 3 * (e + 1) });
    groups.push({ layer: 2, modality: 'image', expert: [e], rep: e + 1 });
  }
  groups.push({ layer: 2, modality: 'special', expert: [7], rep: 4 }); // special only: dead under text,image
  const a = await analyzeTrace(await makeTrace(join(tmp, 'blind'), groups, { numLayers: 4 }));
  assert.deepEqual(a.counts.layers, [2]);
  const m = a.metrics[0];
  near(m.S, 1 - H2(0.75), 'S');
  near(m.S0, 1 - H2(0.75), 'S0');
  near(m.mi, 0, 'I', 1e-12);
  near(m.jsd, 0, 'JSD', 1e-12);
  assert.deepEqual(m.load.dead_ids, [7]);
  near(m.load.active_fraction, 7 / 8, 'active');
  // load by a straightforward loop: f_e = 4(e+1) / 112 for e < 7, 0 for e = 7
  const f = Array.from({ length: 8 }, (_, e) => (e < 7 ? (4 * (e + 1)) / 112 : 0));
  let v = 0;
  for (const x of f) v += (x - 1 / 8) ** 2;
  near(m.load.cv, Math.sqrt(v / 8) / (1 / 8), 'CV');
  near(m.load.max_over_mean, (28 / 112) * 8, 'max/mean');
  for (let e = 0; e < 8; e++) near(m.load.share[e], f[e], `f_${e}`);
});

/** I(M;E) = H(M) + H(E) - H(M,E) and JSD via KL to the mixture: other formulas than the library's. */
function independent(n: number[][]): { I: number; jsd: number; S: number; S0: number } {
  const H = (ps: number[]) => {
    const s = ps.reduce((a, b) => a + b, 0);
    return ps.reduce((h, p) => (p > 0 ? h - (p / s) * Math.log2(p / s) : h), 0);
  };
  const E = n.length;
  const text = n.map((r) => r[0]), image = n.map((r) => r[1]);
  const N = text.reduce((a, b) => a + b, 0) + image.reduce((a, b) => a + b, 0);
  const I = H([sum(text), sum(image)]) + H(n.map(sum)) - H(n.flat());
  const P = text.map((x) => x / sum(text)), Q = image.map((x) => x / sum(image));
  let kl1 = 0, kl2 = 0;
  for (let e = 0; e < E; e++) {
    const mix = (P[e] + Q[e]) / 2;
    if (P[e] > 0) kl1 += P[e] * Math.log2(P[e] / mix);
    if (Q[e] > 0) kl2 += Q[e] * Math.log2(Q[e] / mix);
  }
  const live = n.filter((r) => sum(r) > 0);
  const S = live.reduce((s, r) => s + 1 - H(r), 0) / live.length; // log2 M = 1
  return { I, jsd: (kl1 + kl2) / 2, S, S0: 1 - H([sum(text) / N, sum(image) / N]) };
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

test('every metric of an irregular top-2 trace, under all three counting modes, against an independent computation', async () => {
  const groups: TokenGroup[] = [
    { layer: 0, modality: 'text', expert: [2, 5], gate: [0.6, 0.2], rep: 4 },
    { layer: 0, modality: 'text', expert: [5, 1], gate: [0.5, 0.5], rep: 2 },
    { layer: 0, modality: 'image', expert: [1, 2], gate: [0.9, 0.1], rep: 3 },
    { layer: 0, modality: 'image', expert: [3, 2], gate: [0.7, 0.3], rep: 7 },
  ];
  const dir = await makeTrace(join(tmp, 'irregular'), groups);
  // hand counts per mode, [expert][text, image], experts 0..7
  const hand: Record<string, number[][]> = {
    all: [[0, 0], [2, 3], [4, 10], [0, 7], [0, 0], [6, 0], [0, 0], [0, 0]],
    top1: [[0, 0], [0, 3], [4, 0], [0, 7], [0, 0], [2, 0], [0, 0], [0, 0]],
    gate: [[0, 0], [1, 2.7], [3, 0.3 + 2.1], [0, 4.9], [0, 0], [2, 0], [0, 0], [0, 0]],
  };
  for (const mode of ['all', 'top1', 'gate'] as const) {
    const m: LayerMetrics = (await analyzeTrace(dir, { count: mode })).metrics[0];
    const want = independent(hand[mode]);
    near(m.mi, want.I, `${mode} I`, 1e-6);
    near(m.jsd, want.jsd, `${mode} JSD`, 1e-6);
    near(m.S, want.S, `${mode} S`, 1e-6);
    near(m.S0, want.S0, `${mode} S0`, 1e-6);
    near(m.mi_norm, want.I / (1 - want.S0), `${mode} I/H`, 1e-6);
    const dead = hand[mode].flatMap((r, e) => (sum(r) === 0 ? [e] : []));
    assert.deepEqual(m.load.dead_ids, dead, mode);
  }
});

test('router entropy: mean per-token entropy of prob, in bits, over the analysed modalities', async () => {
  const u4 = [0.25, 0.25, 0.25, 0.25];
  const groups: TokenGroup[] = [
    { layer: 0, modality: 'text', expert: [0], prob: [1, 0, 0, 0], rep: 3 }, // 0 bits
    { layer: 0, modality: 'image', expert: [1], prob: [0.5, 0.5, 0, 0], rep: 1 }, // 1 bit
    { layer: 0, modality: 'special', expert: [2], prob: u4, rep: 10 }, // excluded
    { layer: 1, modality: 'text', expert: [3], prob: u4, rep: 2 }, // 2 bits
  ];
  const a = await analyzeTrace(await makeTrace(join(tmp, 'probs'), groups, { numExperts: 4 }));
  near(a.metrics[0].router.entropy_mean, (3 * 0 + 1 * 1) / 4, 'layer 0', 1e-6);
  near(a.metrics[1].router.entropy_mean, 2, 'layer 1', 1e-6);
});
