import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeTrace } from '../../src/analysis/analyze.js';
import { expertOrder } from '../../src/analysis/allocation.js';
import { compareTraces } from '../../src/analysis/compare.js';
import { H, rng, writeDesign, writeDesignByHand, type Design, type Row } from './planted.js';

const tmp = mkdtempSync(join(tmpdir(), 'moescope-planted-'));
const near = (a: number | null | undefined, b: number, what: string, eps = 1e-9) => assert.ok(a !== null && a !== undefined && Math.abs(a - b) <= eps, `${what}: ${a} vs ${b}`);

/** Both writers (TraceWriter with aggregates; by hand, computed from rows) must give the same analysis. */
async function both(name: string, d: Design) {
  return [await writeDesign(join(tmp, name + '-w'), d), await writeDesignByHand(join(tmp, name + '-h'), d)];
}

test('a domain-specialised text-only trace: falls back to domains, S and the figure order as computed by hand', async () => {
  const domains = ['arxiv', 'github', 'captions'];
  const E = 6, r = rng(1);
  const rows: Row[] = [];
  const dom = new Map<number, string>();
  // arxiv 12 samples, github 8, captions 5 (the default group order is by size)
  const sizes = [12, 8, 5];
  let s = 0;
  domains.forEach((d, di) => {
    for (let i = 0; i < sizes[di]; i++, s++) {
      dom.set(s, d);
      for (let p = 0; p < 20; p++) {
        // 80% to the domain's own pair of experts, else anywhere
        const e = r() < 0.8 ? 2 * di + (r() < 0.5 ? 0 : 1) : Math.floor(r() * E);
        rows.push({ sample: s, pos: p, modality: 'text', token: p, layer: 0, experts: [e], gates: [0.5] });
      }
    }
  });
  // by hand: n[e][d], S = mean over experts with tokens of 1 - H(share_e)/log2 G
  const n = Array.from({ length: E }, () => [0, 0, 0]);
  for (const row of rows) n[row.experts[0]][domains.indexOf(dom.get(row.sample)!)]++;
  const used = n.filter((x) => x.some((v) => v > 0));
  const S = used.reduce((a, x) => a + 1 - H(x) / Math.log2(3), 0) / used.length;
  const pi = [0, 1, 2].map((d) => n.reduce((a, x) => a + x[d], 0));
  const S0 = 1 - H(pi) / Math.log2(3);
  const share = n.map((x) => x[0] / (x[0] + x[1] + x[2] || 1));
  const order = [...Array(E).keys()].sort((a, b) => share[b] - share[a] || a - b);
  for (const dir of await both('domains', { numLayers: 1, numExperts: E, topK: 1, rows, domains: dom })) {
    const a = await analyzeTrace(dir);
    assert.equal(a.by, 'domain');
    assert.match(a.notes.join(' '), /text-only trace: grouping by domain/);
    assert.deepEqual(a.counts.modalities, domains);
    near(a.metrics[0].S, S, 'S');
    near(a.metrics[0].S0, S0, 'S0');
    assert.ok(a.metrics[0].S! > a.metrics[0].S0! + 0.3, 'planted specialisation is found');
    assert.deepEqual(expertOrder(a.counts, 0, 'text'), order);
  }
});

test('a text-only trace without domains falls back to load and says so', async () => {
  const rows: Row[] = Array.from({ length: 40 }, (_, i) => ({ sample: 0, pos: i, modality: 'text', token: i, layer: 0, experts: [i % 3], gates: [0.4] }));
  const a = await analyzeTrace(await writeDesign(join(tmp, 'load-only'), { numLayers: 1, numExperts: 4, topK: 1, rows }));
  assert.equal(a.by, 'modality');
  assert.deepEqual(a.counts.modalities, ['text']);
  assert.match(a.notes.join(' '), /load only/);
  assert.equal(a.metrics[0].S, null);
  assert.equal(a.metrics[0].load.dead, 1);
  assert.deepEqual(a.metrics[0].load.dead_ids, [3]);
  near(a.metrics[0].load.share[0], 14 / 40, 'share');
});

test('planted co-activation pairs give C[i][j] = #(i and j) / #(i)', async () => {
  const E = 5, r = rng(2);
  const planted: [number, number, number][] = [[0, 1, 30], [0, 2, 10], [3, 1, 20], [4, 2, 7]];
  const rows: Row[] = [];
  let pos = 0;
  for (const [i, j, c] of planted) for (let t = 0; t < c; t++) {
    const first = r() < 0.5; // which of the two comes first must not matter
    rows.push({ sample: 0, pos: pos, modality: 'text', token: pos++, layer: 0, experts: first ? [i, j] : [j, i], gates: [0.6, 0.4] });
  }
  const count = new Array(E).fill(0), pair = Array.from({ length: E }, () => new Array(E).fill(0));
  for (const row of rows) {
    for (const a of row.experts) count[a]++;
    for (const a of row.experts) for (const b of row.experts) if (a !== b) pair[a][b]++;
  }
  for (const dir of await both('coact', { numLayers: 1, numExperts: E, topK: 2, rows })) {
    const C = (await analyzeTrace(dir, { groups: ['text'] })).metrics[0].coactivation!;
    for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) {
      if (i === j) continue;
      near(C[i][j], pair[i][j] / count[i], `C[${i}][${j}]`, 1e-5);
    }
    near(C[0][1], 30 / 40, 'C[0][1] by design', 1e-5);
    near(C[1][0], 30 / 50, 'C[1][0] by design', 1e-5);
  }
});

test('a planted repeat rate and its chance level; a token id always routed to one expert', async () => {
  const E = 4, r = rng(3);
  const rows: Row[] = [];
  for (let s = 0; s < 30; s++) {
    let prev = Math.floor(r() * E);
    for (let p = 0; p < 25; p++) {
      const token = p % 5 === 0 ? 42 : 100 + Math.floor(r() * 50);
      // stay with the previous expert 70% of the time; token 42 always goes to expert 3
      const e = token === 42 ? 3 : r() < 0.7 ? prev : Math.floor(r() * E);
      rows.push({ sample: s, pos: p, modality: p === 0 ? 'special' : 'text', token, layer: 0, experts: [e], gates: [0.9] });
      prev = e;
    }
  }
  // by hand over the analysed group (text): consecutive positions of one sample, both text
  let pairs = 0, same = 0;
  const f = new Array(E).fill(0);
  const byKey = new Map(rows.map((x) => [`${x.sample}:${x.pos}`, x]));
  for (const x of rows) {
    if (x.modality !== 'text') continue;
    f[x.experts[0]]++;
    const prev = byKey.get(`${x.sample}:${x.pos - 1}`);
    if (prev && prev.modality === 'text') {
      pairs++;
      if (prev.experts[0] === x.experts[0]) same++;
    }
  }
  const tot = f.reduce((a, b) => a + b, 0);
  const chance = f.reduce((a, v) => a + (v / tot) ** 2, 0);
  // token specialisation by hand: token ids with >= 8 text routings
  const perTok = new Map<number, number[]>();
  for (const x of rows) if (x.modality === 'text') {
    if (!perTok.has(x.token)) perTok.set(x.token, new Array(E).fill(0));
    perTok.get(x.token)![x.experts[0]]++;
  }
  let mx = 0, tt = 0;
  for (const c of perTok.values()) {
    const sum = c.reduce((a, b) => a + b, 0);
    if (sum >= 8) { mx += Math.max(...c); tt += sum; }
  }
  for (const dir of await both('repeat', { numLayers: 1, numExperts: E, topK: 1, rows })) {
    const m = (await analyzeTrace(dir, { groups: ['text'] })).metrics[0];
    near(m.repeat_rate, same / pairs, 'repeat rate');
    near(m.repeat_rate_chance, chance, 'chance');
    assert.ok(m.repeat_rate! > m.repeat_rate_chance! + 0.2, 'planted locality is above chance');
    near(m.token_specialisation, mx / tt, 'token specialisation');
    assert.ok(perTok.get(42)!.every((v, e) => (e === 3 ? v > 0 : v === 0)), 'token 42 planted on expert 3');
  }
  // token 42 alone: specialisation 1
  const only42 = rows.map((x) => (x.token === 42 ? x : { ...x, modality: 'special' }));
  const m42 = (await analyzeTrace(await writeDesign(join(tmp, 'tok42'), { numLayers: 1, numExperts: E, topK: 1, rows: only42 }), { groups: ['text'] })).metrics[0];
  near(m42.token_specialisation, 1, 'a token id always routed to one expert');
});

test('a near-uniform router is flagged; a confident one is not', async () => {
  const E = 8;
  const rows: Row[] = [];
  for (let p = 0; p < 64; p++) {
    rows.push({ sample: 0, pos: p, modality: p % 2 ? 'text' : 'image', token: p, layer: 0, experts: [p % E], gates: [0.13] }); // 1/8 = 0.125
    rows.push({ sample: 0, pos: p, modality: p % 2 ? 'text' : 'image', token: p, layer: 1, experts: [p % E], gates: [0.8] });
  }
  const a = await analyzeTrace(await writeDesign(join(tmp, 'uniform'), { numLayers: 2, numExperts: E, topK: 1, rows }));
  near(a.metrics[0].router.gate_top1_mean, 0.13, 'top-1 gate', 1e-6);
  assert.equal(a.metrics[0].router.near_uniform, true);
  assert.equal(a.metrics[1].router.near_uniform, false);
});

test('two checkpoints with a known saturation', async () => {
  const E = 8, r = rng(5);
  const A: Row[] = [], B: Row[] = [];
  let inter = 0, chosen = 0;
  for (let p = 0; p < 200; p++) {
    const a1 = Math.floor(r() * E), a2 = (a1 + 1 + Math.floor(r() * (E - 1))) % E;
    const keep = r();
    // B keeps both (40%), one (40%) or none (20%) of A's choices
    const others = [...Array(E).keys()].filter((e) => e !== a1 && e !== a2);
    const b = keep < 0.4 ? [a2, a1] : keep < 0.8 ? [a1, others[p % others.length]] : [others[p % others.length], others[(p + 1) % others.length]];
    const base = { sample: Math.floor(p / 20), pos: p % 20, modality: 'text', token: p, layer: 0 };
    A.push({ ...base, experts: [a1, a2], gates: [0.6, 0.4] });
    B.push({ ...base, experts: b, gates: [0.7, 0.3] });
    inter += b.filter((e) => e === a1 || e === a2).length;
    chosen += b.length;
  }
  const a = await writeDesign(join(tmp, 'ckpt-a'), { numLayers: 1, numExperts: E, topK: 2, rows: A });
  const b = await writeDesign(join(tmp, 'ckpt-b'), { numLayers: 1, numExperts: E, topK: 2, rows: B });
  const c = await compareTraces([a, b], { groups: ['text'] });
  near(c.saturation.get(0)![1], inter / chosen, 'saturation');
  assert.equal(c.saturation.get(0)![0], null);
  const self = await compareTraces([a, a], { groups: ['text'] });
  near(self.saturation.get(0)![1], 1, 'a trace against itself');
});

test('bootstrap intervals over samples cover the planted share', async () => {
  const r = rng(7);
  const rows: Row[] = [];
  // per token: text goes to expert 0 with p 0.6, image with p 0.3; equal numbers of each -> share of text at expert 0 = 2/3
  for (let s = 0; s < 150; s++) for (let p = 0; p < 20; p++) {
    const mod = p % 2 ? 'text' : 'image';
    const e = r() < (mod === 'text' ? 0.6 : 0.3) ? 0 : 1 + Math.floor(r() * 3);
    rows.push({ sample: s, pos: p, modality: mod, token: p, layer: 0, experts: [e], gates: [0.5] });
  }
  const a = await analyzeTrace(await writeDesign(join(tmp, 'ci'), { numLayers: 1, numExperts: 4, topK: 1, rows }), { ci: 95 });
  const ci = a.metrics[0].share_ci!;
  const [lo, hi] = [ci.lo[0][0]!, ci.hi[0][0]!];
  assert.ok(lo <= 2 / 3 && 2 / 3 <= hi, `[${lo}, ${hi}] covers 2/3`);
  assert.ok(hi - lo < 0.12 && hi - lo > 0.005, `width ${hi - lo}`);
  const n = a.counts.n;
  const point = n[0] / (n[0] + n[1]);
  assert.ok(lo <= point && point <= hi, 'the estimate lies inside its interval');
  // deterministic for a seed
  const again = await analyzeTrace(join(tmp, 'ci'), { ci: 95 });
  assert.deepEqual(again.metrics[0].share_ci, ci);
});

test('top1 and gate counts are refused without gates on unranked ids, and follow ranked ids', async () => {
  const rows: Row[] = Array.from({ length: 30 }, (_, i) => ({ sample: 0, pos: i, modality: i % 2 ? 'text' : 'image', token: i, layer: 0, experts: [i % 4, (i + 1) % 4], gates: [0.5, 0.5] }));
  const d: Design = { numLayers: 1, numExperts: 4, topK: 2, rows, meta: { gates: 'not recorded by the producer' } };
  const unranked = await writeDesignByHand(join(tmp, 'unranked'), d, { gatesNull: true });
  await assert.rejects(analyzeTrace(unranked, { count: 'top1' }), /--count top1: the top-1 expert is unknown/);
  await assert.rejects(analyzeTrace(unranked, { count: 'gate' }), /--count gate: the trace has no router gates/);
  const all = await analyzeTrace(unranked, { count: 'all' });
  assert.equal(all.metrics[0].repeat_rate, null, 'no top-1, no repeat rate');
  const ranked = await writeDesignByHand(join(tmp, 'ranked'), { ...d, meta: { gates: 'not recorded', expert_order: 'ranked' } }, { gatesNull: true });
  const t = await analyzeTrace(ranked, { count: 'top1' });
  const want = [0, 0, 0, 0];
  for (const x of rows) want[x.experts[0]]++;
  assert.deepEqual([0, 1, 2, 3].map((e) => t.counts.n[e * 2] + t.counts.n[e * 2 + 1]), want);
});

test('--by COLUMN groups by any VARCHAR column (source of samples)', async () => {
  const rows: Row[] = [];
  for (let s = 0; s < 4; s++) for (let p = 0; p < 10; p++) rows.push({ sample: s, pos: p, modality: 'text', token: p, layer: 0, experts: [s], gates: [0.5] });
  const a = await analyzeTrace(await writeDesign(join(tmp, 'bysource'), { numLayers: 1, numExperts: 4, topK: 1, rows }), { by: 'source' });
  assert.deepEqual(a.counts.modalities.sort(), ['test:0', 'test:1', 'test:2', 'test:3']);
  near(a.metrics[0].S, 1, 'each source on one expert');
  await assert.rejects(analyzeTrace(join(tmp, 'bysource'), { by: 'nosuch' }), /--by: the trace has no column nosuch/);
  await assert.rejects(analyzeTrace(join(tmp, 'bysource'), { by: 'x; DROP' }), /--by/);
});
