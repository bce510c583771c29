import test from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig, CONFIG_KEYS, dims } from '../../src/model/config.js';
import { WordTokenizer } from '../../src/model/tokenizer.js';
import { createParams, initParams, numParams, paramsFromTensors, paramsToTensors, paramSpecs } from '../../src/model/params.js';
import { Rng, deriveSeed } from '../../src/model/rng.js';
import { InputError } from '../../src/util/errors.js';

export const tinyConfig = {
  model_type: 'efmoe', vocab_size: 20, hidden_size: 8, intermediate_size: 6, num_hidden_layers: 2,
  num_attention_heads: 2, num_local_experts: 4, num_experts_per_tok: 2, norm_topk_prob: true,
  rms_norm_eps: 1e-5, rope_theta: 10000, qk_norm: true, image_size: 8, patch_size: 4, num_channels: 3,
  max_position_embeddings: 64, router_aux_loss_coef: 0.01, router_z_loss_coef: 0.001,
  bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, unk_token_id: 3,
};

test('config: valid config parses and derives dims', () => {
  const c = parseModelConfig(tinyConfig, 'c.json');
  const d = dims(c);
  assert.equal(d.hd, 4);
  assert.equal(d.patchDim, 4 * 4 * 3);
  assert.equal(d.patchesPerImage, 4);
  assert.equal(CONFIG_KEYS.length, Object.keys(tinyConfig).length);
});

test('config: missing, unknown and inconsistent keys are InputErrors', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...tinyConfig, hidden_size: 10, num_attention_heads: 4 }, /not divisible by num_attention_heads/],
    [{ ...tinyConfig, image_size: 10 }, /not divisible by patch_size/],
    [{ ...tinyConfig, extra_key: 1 }, /unknown key extra_key/],
    [{ ...tinyConfig, num_experts_per_tok: 5 }, /exceeds/],
    [{ ...tinyConfig, qk_norm: 'yes' }, /true or false/],
    [{ ...tinyConfig, model_type: 'mixtral' }, /efmoe/],
  ];
  const { rope_theta: _, ...noRope } = tinyConfig;
  bad.push([noRope, /missing key rope_theta/]);
  for (const [raw, re] of bad) {
    assert.throws(() => parseModelConfig(raw, 'cfg.json'), (e: unknown) => e instanceof InputError && /^cfg\.json: /.test(e.message) && re.test(e.message));
  }
});

test('tokenizer: lowercases, splits words and punctuation, maps unknown words to <unk>', () => {
  const t = new WordTokenizer(['<pad>', '<bos>', '<eos>', '<unk>', 'a', 'red', 'circle', ',', '.', '3']);
  assert.deepEqual(WordTokenizer.split('A Red-circle, 3x!'), ['a', 'red', '-', 'circle', ',', '3x', '!']);
  assert.deepEqual(t.encode('A red circle, 3.'), [4, 5, 6, 7, 9, 8]);
  assert.deepEqual(t.encode('blue'), [3]);
  assert.throws(() => WordTokenizer.parse({ type: 'word', vocab: ['a'] }, 'tok.json'), /tok\.json: vocab\[0\]/);
});

test('params: SPEC names and shapes, one flat buffer, checked on load', () => {
  const c = parseModelConfig(tinyConfig, 'c.json');
  const specs = paramSpecs(c);
  assert.equal(specs[0].name, 'embed_tokens.weight');
  assert.ok(specs.some((s) => s.name === 'layers.1.block_sparse_moe.experts.3.w2.weight' && s.shape.join() === '8,6'));
  assert.ok(specs.some((s) => s.name === 'layers.0.self_attn.q_norm.weight' && s.shape.join() === '4'));
  const p = initParams(c, 7);
  assert.equal(p.flat.length, numParams(c));
  // views alias the flat buffer
  p.layers[1].w1[2][0] = 42;
  assert.equal(p.byName.get('layers.1.block_sparse_moe.experts.2.w1.weight')!.view[0], 42);
  // deterministic
  assert.deepEqual(initParams(c, 7).flat.subarray(0, 50), initParams(c, 7).flat.subarray(0, 50));
  assert.notDeepEqual(initParams(c, 8).flat.subarray(0, 50), initParams(c, 7).flat.subarray(0, 50));
  const tensors = new Map(paramsToTensors(p));
  const q = paramsFromTensors(c, tensors, 'm');
  assert.deepEqual(q.flat, p.flat);
  const missing = new Map(tensors);
  missing.delete('norm.weight');
  assert.throws(() => paramsFromTensors(c, missing, 'm'), /missing tensor norm\.weight/);
  const extra = new Map(tensors).set('bogus', { shape: [1], data: new Float32Array(1) });
  assert.throws(() => paramsFromTensors(c, extra, 'm'), /unexpected tensor bogus/);
  const wrong = new Map(tensors).set('norm.weight', { shape: [9], data: new Float32Array(9) });
  assert.throws(() => paramsFromTensors(c, wrong, 'm'), /norm\.weight has shape \[9\], config needs \[8\]/);
  assert.equal(createParams(c).flat.every((x) => x === 0), true);
});

test('rng: same seed same stream, uniform-ish, normal moments', () => {
  const a = new Rng(123), b = new Rng(123), c = new Rng(124);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.nextU32()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => c.nextU32()));
  const r = new Rng(1);
  let s = 0, s2 = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    s += z;
    s2 += z * z;
  }
  assert.ok(Math.abs(s / n) < 0.03);
  assert.ok(Math.abs(s2 / n - 1) < 0.05);
  assert.notEqual(deriveSeed(1, 'train', 0), deriveSeed(1, 'train', 1));
  assert.equal(deriveSeed(5, 'x', 3), deriveSeed(5, 'x', 3));
});
