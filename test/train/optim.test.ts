import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { adamwStep, clipGradNorm, createAdamW, decayRanges } from '../../src/train/adamw.js';
import { learningRate } from '../../src/train/schedule.js';
import { paramSpecs } from '../../src/model/params.js';
import type { ModelConfig } from '../../src/model/config.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/train-adamw.json', import.meta.url));

test('AdamW with clipping matches torch.optim.AdamW + clip_grad_norm_ step by step', () => {
  const fx = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const n = fx.init.length;
  const params = Float32Array.from(fx.init);
  const ranges = [
    { offset: 0, length: fx.decay_length, decay: true },
    { offset: fx.decay_length, length: n - fx.decay_length, decay: false },
  ];
  const s = createAdamW(n);
  for (const st of fx.steps) {
    const grads = Float32Array.from(st.grad);
    const norm = clipGradNorm(grads, fx.clip);
    assert.ok(Math.abs(norm - st.norm) < 1e-5 * Math.max(1, st.norm), `norm ${norm} vs torch ${st.norm}`);
    adamwStep(params, grads, s, st.lr, { beta1: fx.beta1, beta2: fx.beta2, eps: fx.eps, weightDecay: fx.weight_decay }, ranges);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(params[i] - st.params[i]) < 2e-6, `step ${s.t} param ${i}: ${params[i]} vs torch ${st.params[i]}`);
  }
  assert.equal(s.t, fx.steps.length);
});

test('learning rate: linear warmup, then cosine from lr to min_lr', () => {
  const o = { lr: 1e-3, min_lr: 1e-4, warmup: 10, steps: 111 };
  assert.ok(Math.abs(learningRate(0, o) - 1e-4) < 1e-15); // (0+1)/10 of the peak
  assert.ok(Math.abs(learningRate(4, o) - 5e-4) < 1e-15);
  assert.ok(Math.abs(learningRate(10, o) - 1e-3) < 1e-15); // peak at the end of warmup
  assert.ok(Math.abs(learningRate(60, o) - 5.5e-4) < 1e-12); // half way through the decay: (lr + min)/2
  assert.ok(Math.abs(learningRate(110, o) - 1e-4) < 1e-15); // last step: min_lr
  for (let k = 11; k <= 110; k++) assert.ok(learningRate(k, o) <= learningRate(k - 1, o));
});

test('weight decay applies to linear weights, not to norms, biases or the token embedding', () => {
  const config = {
    model_type: 'efmoe', vocab_size: 10, hidden_size: 4, intermediate_size: 6, num_hidden_layers: 2, num_attention_heads: 2,
    num_local_experts: 2, num_experts_per_tok: 1, norm_topk_prob: false, rms_norm_eps: 1e-5, rope_theta: 10000, qk_norm: true,
    image_size: 4, patch_size: 2, num_channels: 3, max_position_embeddings: 32, router_aux_loss_coef: 0.01, router_z_loss_coef: 0.001,
    bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, unk_token_id: 3,
  } as ModelConfig;
  const ranges = decayRanges(config);
  const decayAt = (off: number) => ranges.find((r) => off >= r.offset && off < r.offset + r.length)!.decay;
  let off = 0;
  const expectNoDecay = new Set(['embed_tokens.weight', 'patch_embed.bias', 'norm.weight']);
  for (const s of paramSpecs(config)) {
    const len = s.shape.reduce((a, b) => a * b, 1);
    const want = !(expectNoDecay.has(s.name) || s.name.endsWith('_norm.weight') || s.name.endsWith('layernorm.weight'));
    for (const i of [off, off + len - 1]) assert.equal(decayAt(i), want, s.name);
    off += len;
  }
  assert.equal(ranges.reduce((a, r) => a + r.length, 0), off);
});
