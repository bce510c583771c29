import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { moescope, root, sorted, tmp, traceCounts, type Expected } from './helpers.js';

// End to end: a tiny torch MoE (test/import/tiny_moe_capture.py: dense layers 0 and 2, Mixtral-style
// gates returning logits in 1 and 4, a DeepSeek-style gate returning (ids, weights) in id order in 3)
// captured with python/moescope_capture.py, imported with `moescope import hf`, analysed with
// `moescope analyze`. Expected counts come from the model's own routing decisions.

const PY = '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const skip = hasTorch ? false : `${PY} has no torch (apt install python3-torch python3-numpy, or scripts/install-system-deps.sh)`;

function capture(fmt: 'safetensors' | 'npy'): { dir: string; want: Expected } {
  const dir = tmp('moescope-pycap-');
  const r = spawnSync(PY, [join(root, 'test/import/tiny_moe_capture.py'), dir, fmt], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return { dir, want: JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected };
}

/** Per-layer counts n[e][m] over text+image from "layer/expert/modality" keys. */
function perLayer(counts: Record<string, number>, layer: number, E: number): { text: number[]; image: number[] } {
  const out = { text: new Array<number>(E).fill(0), image: new Array<number>(E).fill(0) };
  for (const [k, n] of Object.entries(counts)) {
    const [l, e, m] = k.split('/');
    if (Number(l) === layer && (m === 'text' || m === 'image')) out[m][Number(e)] += n;
  }
  return out;
}

test('python helper -> import hf -> analyze (safetensors)', { skip }, async () => {
  const { dir, want } = capture('safetensors');
  const out = join(dir, 'trace');
  const r = moescope(['import', 'hf', join(dir, 'capture'), '--out', out]);
  assert.equal(r.code, 0, r.stderr);

  const got = await traceCounts(out);
  assert.equal(got.rows, want.rows);
  assert.deepEqual(sorted(got.tokens), sorted(want.tokens), 'special/image ids from the manifest, padding dropped');
  assert.deepEqual(sorted(got.all), sorted(want.all));
  assert.deepEqual(sorted(got.top1), sorted(want.top1), 'DeepSeek-style ids in id order are re-sorted by weight');
  assert.deepEqual(got.meta.layers, [1, 3, 4], 'decoder layer indices, dense layers 0 and 2 skipped');
  assert.equal(got.meta.num_layers, 5);
  assert.equal(got.meta.num_experts, 6);
  assert.equal(got.meta.router_scoring, 'softmax');
  assert.equal((got.meta.model as { config: { model_type: string } }).config.model_type, 'tiny_moe');

  // analyze: per-layer tokens, load shares and specialisation from the expected counts by plain loops
  const E = 6;
  for (const [mode, counts] of [['all', want.all], ['top1', want.top1]] as const) {
    const a = moescope(['analyze', out, '--json', '--count', mode]);
    assert.equal(a.code, 0, a.stderr);
    const doc = JSON.parse(a.stdout) as { layers: { layer: number; tokens: Record<string, number>; load: { share: number[] }; S: number }[] };
    assert.deepEqual(doc.layers.map((l) => l.layer), [1, 3, 4]);
    for (const L of doc.layers) {
      const n = perLayer(counts, L.layer, E);
      const total = n.text.reduce((s, x) => s + x, 0) + n.image.reduce((s, x) => s + x, 0);
      const share = n.text.map((t, e) => (t + n.image[e]) / total);
      L.load.share.forEach((s, e) => assert.ok(Math.abs(s - share[e]) < 1e-9, `layer ${L.layer} expert ${e} load (${mode})`));
      let S = 0;
      let used = 0;
      for (let e = 0; e < E; e++) {
        const tot = n.text[e] + n.image[e];
        if (tot === 0) continue;
        let h = 0;
        for (const x of [n.text[e] / tot, n.image[e] / tot]) if (x > 0) h -= x * Math.log2(x);
        S += 1 - h; // log2 M = 1 for two modalities
        used++;
      }
      assert.ok(Math.abs(L.S - S / used) < 1e-9, `layer ${L.layer} specialisation (${mode})`);
      assert.equal(L.tokens.text, want.tokens.text);
      assert.equal(L.tokens.image, want.tokens.image);
    }
  }
});

test('python helper with fmt="npy" (a folder of .npy per batch) imports to the same counts', { skip }, async () => {
  const { dir, want } = capture('npy');
  const out = join(dir, 'trace');
  // the DeepSeek-style gate returned no scores: --full-probs cannot be honoured, and says where
  const bad = moescope(['import', 'hf', join(dir, 'capture'), '--out', out, '--full-probs']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^moescope: error: .*topk_ids\.3.*--full-probs/);
  const r = moescope(['import', 'hf', join(dir, 'capture'), '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const got = await traceCounts(out);
  assert.deepEqual(sorted(got.all), sorted(want.all));
  assert.deepEqual(sorted(got.top1), sorted(want.top1));
  assert.equal(got.meta.full_probs, false);
});
