/**
 * The WASM-resident inference pass (src/model/resident.ts) against layerForward, the training pass's
 * steps (itself checked against PyTorch in efmoe-forward.test.ts): on the bundled model every product
 * runs on the same kernels in the same order, so routing, gates, probs and logits must agree bit for bit.
 * Also: weights changed in place are seen unless the workspace was promised fixed weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardInference, InferenceWorkspace } from '../../src/model/efmoe.js';
import { DEFAULT_MODEL_DIR, loadCheckpoint } from '../../src/io/checkpoint-files.js';
import { createParams } from '../../src/model/params.js';
import { encodeSample } from '../../src/data/encode.js';
import { shapesSample, SHAPES_EVAL_SEED } from '../../src/data/shapes.js';
import { loadFixture } from './fixture-util.js';

const ck = loadCheckpoint(DEFAULT_MODEL_DIR);
const seqs = Array.from({ length: 12 }, (_, i) => encodeSample(shapesSample(SHAPES_EVAL_SEED, i), ck.tokenizer, ck.config));

test('resident pass = layerForward bit for bit on the bundled model (routing, gates, probs, logits)', () => {
  const resident = new InferenceWorkspace(ck.config, { fixedWeights: true });
  assert.notEqual(resident.resident(), null, 'the resident pass runs here');
  const plain = new InferenceWorkspace(ck.config, { resident: false });
  // two batches through one workspace: stale activations of the first must not leak into the second
  for (const batch of [seqs.slice(0, 8), seqs.slice(8)]) {
    const a = forwardInference(ck, batch, { probs: true, logits: true }, resident);
    const b = forwardInference(ck, batch, { probs: true, logits: true }, plain);
    assert.equal(a.layers.length, b.layers.length);
    a.layers.forEach((l, i) => {
      assert.deepEqual(l.experts, b.layers[i].experts, `layer ${i} experts`);
      assert.deepEqual(l.gates, b.layers[i].gates, `layer ${i} gates`);
      assert.deepEqual(l.probs, b.layers[i].probs, `layer ${i} probs`);
    });
    assert.deepEqual(a.logits, b.logits);
  }
});

test('weights changed in place: seen on the next call, except by a workspace promised fixed weights', () => {
  const fx = loadFixture('tiny-k1');
  const params = createParams(fx.model.config, fx.model.params.flat.slice());
  const model = { config: fx.model.config, params };
  const fresh = new InferenceWorkspace(model.config);
  const fixed = new InferenceWorkspace(model.config, { fixedWeights: true });
  const before = forwardInference(model, fx.seqs, { probs: true }, fresh);
  forwardInference(model, fx.seqs, { probs: true }, fixed);
  params.layers[0].router.fill(0); // every row: uniform probs in layer 0
  const after = forwardInference(model, fx.seqs, { probs: true }, fresh);
  const E = model.config.num_local_experts;
  assert.ok(after.layers[0].probs!.every((p) => Math.abs(p - 1 / E) < 1e-6));
  assert.ok(!before.layers[0].probs!.every((p) => Math.abs(p - 1 / E) < 1e-6));
  const stale = forwardInference(model, fx.seqs, { probs: true }, fixed);
  assert.deepEqual(stale.layers[0].probs, before.layers[0].probs);
});
