import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeTrace } from '../../src/analysis/analyze.js';
import { allocationCsv, allocationRows } from '../../src/analysis/allocation.js';
import type { Counts } from '../../src/analysis/types.js';
import { makeTrace, type TokenGroup } from './make-trace.js';

const tmp = mkdtempSync(join(tmpdir(), 'moescope-counts-'));

/**
 * A top-2 trace with 8 experts, layer 0:
 *   4 text tokens  -> [2, 5] gates [0.6, 0.2]  (renormalised: 0.75, 0.25)
 *   2 text tokens  -> [5, 1] gates [0.5, 0.5]
 *   3 image tokens -> [1, 2] gates [0.9, 0.1]
 *   5 special      -> [0, 3]                  (excluded by default)
 * and layer 1: 1 text token -> [7, 6].
 */
const TOP2: TokenGroup[] = [
  { layer: 0, modality: 'text', expert: [2, 5], gate: [0.6, 0.2], rep: 4 },
  { layer: 0, modality: 'text', expert: [5, 1], gate: [0.5, 0.5], rep: 2 },
  { layer: 0, modality: 'image', expert: [1, 2], gate: [0.9, 0.1], rep: 3 },
  { layer: 0, modality: 'special', expert: [0, 3], gate: [0.7, 0.3], rep: 5 },
  { layer: 1, modality: 'text', expert: [7, 6], gate: [0.8, 0.2], rep: 1 },
];

/** n[layer][expert][modality] as a plain object for readable comparisons; zero entries left out. */
function table(c: Counts): Record<string, number> {
  const out: Record<string, number> = {};
  const E = c.numExperts, M = c.modalities.length;
  c.layers.forEach((l, li) => {
    for (let e = 0; e < E; e++)
      c.modalities.forEach((m, mi) => {
        const v = c.n[(li * E + e) * M + mi];
        if (v !== 0) out[`${l}/${e}/${m}`] = Math.round(v * 1e6) / 1e6;
      });
  });
  return out;
}

test('top-2 counts under each counting mode match the hand count', async () => {
  const dir = await makeTrace(join(tmp, 'top2'), TOP2);
  const all = await analyzeTrace(dir, { count: 'all' });
  assert.deepEqual(all.counts.layers, [0, 1]);
  assert.deepEqual(all.counts.modalities, ['text', 'image']);
  assert.deepEqual(table(all.counts), { '0/2/text': 4, '0/5/text': 6, '0/1/text': 2, '0/1/image': 3, '0/2/image': 3, '1/7/text': 1, '1/6/text': 1 });

  const top1 = await analyzeTrace(dir, { count: 'top1' });
  assert.deepEqual(table(top1.counts), { '0/2/text': 4, '0/5/text': 2, '0/1/image': 3, '1/7/text': 1 });

  const gate = await analyzeTrace(dir, { count: 'gate' });
  // text: e2 4*0.75 = 3, e5 4*0.25 + 2*0.5 = 2, e1 2*0.5 = 1; image: e1 3*0.9 = 2.7, e2 3*0.1 = 0.3
  assert.deepEqual(table(gate.counts), { '0/2/text': 3, '0/5/text': 2, '0/1/text': 1, '0/1/image': 2.7, '0/2/image': 0.3, '1/7/text': 0.8, '1/6/text': 0.2 });

  // tokens are counted once whatever the mode: 6 text and 3 image in layer 0
  for (const a of [all, top1, gate]) {
    assert.ok(Math.abs(a.metrics[0].tokens.text - 6) < 1e-9, `${a.counts.mode} text tokens ${a.metrics[0].tokens.text}`);
    assert.ok(Math.abs(a.metrics[0].tokens.image - 3) < 1e-9);
  }
});

test('modality filter: special is excluded unless asked for, order follows the request', async () => {
  const dir = join(tmp, 'top2');
  const withSpecial = await analyzeTrace(dir, { modalities: ['image', 'special', 'text'], layers: '0' });
  assert.deepEqual(withSpecial.counts.modalities, ['image', 'special', 'text']);
  assert.deepEqual(table(withSpecial.counts), { '0/2/text': 4, '0/5/text': 6, '0/1/text': 2, '0/1/image': 3, '0/2/image': 3, '0/0/special': 5, '0/3/special': 5 });
  const textOnly = await analyzeTrace(dir, { modalities: ['text'], layers: '0' });
  assert.deepEqual(table(textOnly.counts), { '0/2/text': 4, '0/5/text': 6, '0/1/text': 2 });
  // a text-only trace: the default keeps the default modalities it has; asking for image fails
  const tdir = await makeTrace(join(tmp, 'text-only'), [{ layer: 0, modality: 'text', expert: [1], rep: 2 }, { layer: 0, modality: 'special', expert: [0], rep: 1 }]);
  const t = await analyzeTrace(tdir);
  assert.deepEqual(t.counts.modalities, ['text']);
  assert.equal(t.metrics[0].S, null, 'S needs two modalities');
  await assert.rejects(analyzeTrace(tdir, { modalities: ['text', 'image'] }), /modality "image" is not in the trace/);
});

test('normalisations expert / modality / balanced and allocation.csv', async () => {
  const a = await analyzeTrace(join(tmp, 'top2'), { layers: '0' });
  const rows = allocationRows(a.counts, 'expert');
  const share = (rs: typeof rows, e: number, m: string) => rs.find((r) => r.expert === e && r.modality === m)!.share;
  // expert 2: text 4, image 3 -> 4/7, 3/7; expert 5: text only; expert 0: no text/image token -> null
  assert.ok(Math.abs(share(rows, 2, 'text')! - 400 / 7) < 1e-9);
  assert.ok(Math.abs(share(rows, 2, 'image')! - 300 / 7) < 1e-9);
  assert.equal(share(rows, 5, 'text'), 100);
  assert.equal(share(rows, 5, 'image'), 0);
  assert.equal(share(rows, 0, 'text'), null);
  // modality: text total 12, image total 6 -> P(2|text) = 4/12, P(2|image) = 3/6
  const mod = allocationRows(a.counts, 'modality');
  assert.ok(Math.abs(share(mod, 2, 'text')! - 100 / 3) < 1e-9);
  assert.ok(Math.abs(share(mod, 2, 'image')! - 50) < 1e-9);
  const sumText = mod.filter((r) => r.modality === 'text').reduce((s, r) => s + (r.share ?? 0), 0);
  assert.ok(Math.abs(sumText - 100) < 1e-9);
  // balanced: text 4/12 = 1/3, image 3/6 = 1/2 -> text share (1/3) / (1/3 + 1/2) = 40%
  const bal = allocationRows(a.counts, 'balanced');
  assert.ok(Math.abs(share(bal, 2, 'text')! - 40) < 1e-9);
  assert.ok(Math.abs(share(bal, 1, 'text')! - 100 * (2 / 12) / (2 / 12 + 3 / 6)) < 1e-9);

  const csv = allocationCsv(rows).trim().split('\n');
  assert.equal(csv[0], 'layer,expert,modality,count,share');
  assert.equal(csv.length, 1 + 8 * 2);
  assert.ok(csv.includes('0,5,text,6,100'), csv.join('\n'));
  assert.ok(csv.includes('0,0,text,0,'), 'an expert with no tokens has an empty share');
  assert.ok(csv.includes('0,2,image,3,42.85714286'), csv.join('\n'));
});
