/**
 * The efmoe inference forward (src/model/efmoe.ts) against the independent PyTorch implementation
 * (scripts/torch_efmoe.py, fixture written by scripts/make-model-fixture.py), plus batching
 * invariance and determinism.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardInference, InferenceWorkspace } from '../../src/model/efmoe.js';
import { InputError } from '../../src/util/errors.js';
import { createParams } from '../../src/model/params.js';
import { loadFixture, relMaxErr } from './fixture-util.js';

// resident: the WASM-resident pass (resident.ts, the default); layerForward: the training pass's steps
for (const [name, resident] of ['tiny-k2', 'tiny-k1', 'tiny-plain'].flatMap((n) => [[n, true], [n, false]] as const)) {
  test(`forward matches PyTorch: logits, routing, gates, probs (${name}, ${resident ? 'resident' : 'layerForward'})`, () => {
    const fx = loadFixture(name);
    const { config } = fx.model;
    const ws = new InferenceWorkspace(config, { resident });
    assert.equal(ws.resident() !== null, resident, 'the path under test runs');
    const r = forwardInference(fx.model, fx.seqs, { logits: true, probs: true }, ws);
    const N = fx.seqs.reduce((n, s) => n + s.T, 0);
    assert.equal(r.N, N);
    assert.deepEqual([...r.rowStart], fx.seqs.reduce((acc, s) => [...acc, acc[acc.length - 1] + s.T], [0]));
    assert.equal(r.logits!.length, N * config.vocab_size);
    assert.ok(relMaxErr(r.logits!, fx.expected.get('logits')!.data) < 1e-4, 'logits');
    assert.equal(r.layers.length, config.num_hidden_layers);
    r.layers.forEach((l, i) => {
      assert.deepEqual([...l.experts], [...fx.expected.get(`layers.${i}.experts`)!.data], `layer ${i} experts`);
      assert.ok(relMaxErr(l.gates, fx.expected.get(`layers.${i}.gates`)!.data) < 1e-4, `layer ${i} gates`);
      assert.ok(relMaxErr(l.probs!, fx.expected.get(`layers.${i}.probs`)!.data) < 1e-4, `layer ${i} probs`);
    });
    // without the options: the same routing, and no probs or logits
    const r2 = forwardInference(fx.model, fx.seqs, {}, ws);
    assert.equal(r2.logits, undefined);
    r2.layers.forEach((l, i) => {
      assert.equal(l.probs, undefined);
      assert.deepEqual(l.experts, r.layers[i].experts);
    });
  });
}

test('gates: descending, summing to 1 with norm_topk_prob, equal to the chosen probs without', () => {
  for (const name of ['tiny-k2', 'tiny-k1', 'tiny-plain']) {
    const fx = loadFixture(name);
    const { num_experts_per_tok: K, num_local_experts: E, norm_topk_prob } = fx.model.config;
    const r = forwardInference(fx.model, fx.seqs, { probs: true });
    for (const l of r.layers) {
      for (let n = 0; n < r.N; n++) {
        let sum = 0;
        for (let k = 0; k < K; k++) {
          sum += l.gates[n * K + k];
          if (k > 0) assert.ok(l.gates[n * K + k] <= l.gates[n * K + k - 1]);
          if (!norm_topk_prob) assert.equal(l.gates[n * K + k], l.probs![n * E + l.experts[n * K + k]]);
        }
        if (norm_topk_prob) assert.ok(Math.abs(sum - 1) < 1e-6);
      }
    }
  }
});

test('batching invariance: a sequence routes the same alone, in a batch, and at another place in the batch', () => {
  const fx = loadFixture('tiny-k2');
  const { num_experts_per_tok: K } = fx.model.config;
  const batch = forwardInference(fx.model, fx.seqs, { logits: true });
  const reversed = [...fx.seqs].reverse();
  const rev = forwardInference(fx.model, reversed, { logits: true });
  const V = fx.model.config.vocab_size;
  fx.seqs.forEach((s, b) => {
    const alone = forwardInference(fx.model, [s], { logits: true });
    const r0 = batch.rowStart[b];
    const rb = rev.rowStart[fx.seqs.length - 1 - b];
    for (let l = 0; l < alone.layers.length; l++) {
      const inBatch = batch.layers[l].experts.subarray(r0 * K, (r0 + s.T) * K);
      assert.deepEqual(alone.layers[l].experts, inBatch, `seq ${b} layer ${l} experts`);
      assert.deepEqual(rev.layers[l].experts.subarray(rb * K, (rb + s.T) * K), inBatch, `seq ${b} layer ${l} experts (reversed batch)`);
      assert.ok(relMaxErr(alone.layers[l].gates, batch.layers[l].gates.subarray(r0 * K, (r0 + s.T) * K)) < 1e-6);
    }
    assert.ok(relMaxErr(alone.logits!, batch.logits!.subarray(r0 * V, (r0 + s.T) * V)) < 1e-5, `seq ${b} logits`);
  });
});

test('determinism: repeated calls, fresh or reused workspaces give the same bits', () => {
  const fx = loadFixture('tiny-k1');
  const a = forwardInference(fx.model, fx.seqs, { logits: true, probs: true }, new InferenceWorkspace(fx.model.config));
  const ws = new InferenceWorkspace(fx.model.config);
  forwardInference(fx.model, [...fx.seqs, ...fx.seqs], { probs: true }, ws); // a larger batch first leaves stale data in ws
  const b = forwardInference(fx.model, fx.seqs, { logits: true, probs: true }, ws);
  const c = forwardInference(fx.model, fx.seqs, { logits: true, probs: true });
  for (const r of [b, c]) {
    assert.deepEqual(r.logits, a.logits);
    r.layers.forEach((l, i) => {
      assert.deepEqual(l.experts, a.layers[i].experts);
      assert.deepEqual(l.gates, a.layers[i].gates);
      assert.deepEqual(l.probs, a.layers[i].probs);
    });
  }
});

test('a sequence longer than max_position_embeddings is an InputError', () => {
  const fx = loadFixture('tiny-k2');
  const config = { ...fx.model.config, max_position_embeddings: 10 };
  assert.throws(() => forwardInference({ config, params: fx.model.params }, fx.seqs), (e: unknown) => e instanceof InputError && /max_position_embeddings 10/.test(e.message));
});

test('an empty batch gives no rows', () => {
  const fx = loadFixture('tiny-k2');
  const r = forwardInference(fx.model, [], { logits: true });
  assert.equal(r.N, 0);
  assert.deepEqual([...r.rowStart], [0]);
  assert.equal(r.logits!.length, 0);
});

test('router ties go to the lower expert index (all-zero router: experts 0..K-1, gates uniform)', () => {
  for (const name of ['tiny-k2', 'tiny-k1']) {
    const fx = loadFixture(name);
    const { num_experts_per_tok: K, num_local_experts: E, norm_topk_prob } = fx.model.config;
    const params = createParams(fx.model.config, fx.model.params.flat.slice());
    params.layers[0].router.fill(0);
    const r = forwardInference({ config: fx.model.config, params }, fx.seqs);
    for (let n = 0; n < r.N; n++) {
      for (let k = 0; k < K; k++) {
        assert.equal(r.layers[0].experts[n * K + k], k);
        assert.ok(Math.abs(r.layers[0].gates[n * K + k] - (norm_topk_prob ? 1 / K : 1 / E)) < 1e-6);
      }
    }
  }
});
