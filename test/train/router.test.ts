/**
 * Issue 14: the router's state in training (log, figure, eval), the router knobs of the training
 * config (init std, decay, learning-rate scale) and --init (start from a checkpoint, routers re-drawn).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { moescope, tinyConfig, tempDir, writeConfig } from './helpers.js';
import { routerStatsSums, layerBands } from '../../src/model/router-stats.js';
import { adamwStep, createAdamW, decayRanges } from '../../src/train/adamw.js';
import { initParams, paramSpecs } from '../../src/model/params.js';
import { parseTrainConfig } from '../../src/train/train-config.js';
import { lossCurveSpec, type LogRow } from '../../src/train/loss-curve.js';
import { loadCheckpoint } from '../../src/io/checkpoint-files.js';
import type { ModelConfig } from '../../src/model/config.js';

test('router stats: top-1 gate and entropy in bits, summed over rows', () => {
  const probs = Float32Array.from([0.25, 0.25, 0.25, 0.25, 1, 0, 0, 0]); // a tie, then a decided row
  const gates = Float32Array.from([0.25, 0.25, 1, 0]); // K = 2: only the first gate of a row counts
  const s = routerStatsSums(probs, gates, 2, 4, 2);
  assert.equal(s.gate, 1.25);
  assert.equal(s.entropy, 2); // log2 4 + 0
  assert.deepEqual(layerBands(24).map((b) => b.label), ['0-7', '8-15', '16-23']);
  assert.deepEqual(layerBands(2).map((b) => [b.from, b.to]), [[0, 0], [1, 1]]);
});

test('router knobs: init std, and decay and learning-rate scale on router matrices only', () => {
  const cfg = parseTrainConfig(tinyConfig({ router_init_std: 0.5, router_weight_decay: 0, router_lr_scale: 2 }), 'c.json');
  assert.equal(cfg.train.router_init_std, 0.5);
  assert.throws(() => parseTrainConfig(tinyConfig({ router_lr_scale: -1 }), 'c.json'), /router_lr_scale must be a non-negative number/);
  const model = cfg.model as ModelConfig;
  const p = initParams(model, 3, 0.5), q = initParams(model, 3);
  const std = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
  const r = p.byName.get('layers.0.block_sparse_moe.gate.weight')!.view;
  assert.ok(std(r) > 0.3 && std(r) < 0.7, `router std ${std(r)}`);
  assert.deepEqual(p.byName.get('layers.0.self_attn.q_proj.weight')!.view, q.byName.get('layers.0.self_attn.q_proj.weight')!.view, 'other weights unchanged');
  // one AdamW step with gradient 1 everywhere: |update| = lr (times the scale), decay lr*wd*p (router: its own)
  const n = p.flat.length;
  const before = p.flat.slice();
  const st = createAdamW(n);
  adamwStep(p.flat, new Float32Array(n).fill(1), st, 0.01, { beta1: 0.9, beta2: 0.95, eps: 0, weightDecay: 0.1, routerWeightDecay: 0, routerLrScale: 2 }, decayRanges(model));
  let off = 0;
  for (const s of paramSpecs(model)) {
    const len = s.shape.reduce((a, b) => a * b, 1);
    const i = off; // first element of each tensor
    const router = s.name.endsWith('block_sparse_moe.gate.weight');
    const decays = !/norm\.weight$|\.bias$|^embed_tokens/.test(s.name);
    const want = router ? before[i] - 0.02 : before[i] * (decays ? 1 - 0.01 * 0.1 : 1) - 0.01;
    assert.ok(Math.abs(p.flat[i] - want) < 1e-6, `${s.name}: ${p.flat[i]} vs ${want}`);
    off += len;
  }
});

test('the loss curve shows the router per layer band, with the level of a tie', () => {
  const row = (step: number, g: number): LogRow => ({
    kind: 'train', step, loss: 1, ce: 1, aux: 0, z: 0, lr: 0, grad_norm: 0, tokens: 1, text_targets: 1, tokens_per_s: 1, elapsed_s: 0,
    router_bands: ['0-0', '1-1'], gate_top1: [g, g + 0.125], router_entropy: [1.5, 1.25],
  });
  const spec = lossCurveSpec([row(1, 0.25), row(2, 0.5)], { experts: 4, smooth: 1 }) as { vconcat: { layer?: { data: { values: Record<string, unknown>[] } }[] }[] };
  assert.equal(spec.vconcat.length, 3);
  const gate = spec.vconcat[1].layer!;
  assert.deepEqual(gate[0].data.values.map((v) => [v.step, v.band, v.value]), [[1, 'layers 0-0', 0.25], [2, 'layers 0-0', 0.5], [1, 'layers 1-1', 0.375], [2, 'layers 1-1', 0.625]]);
  assert.deepEqual(gate[1].data.values, [{ tie: 0.25 }]);
  assert.deepEqual(spec.vconcat[2].layer![1].data.values, [{ tie: 2 }]);
  // logs of older runs have no router fields: the plain loss chart
  const old = lossCurveSpec([{ kind: 'train', step: 1, loss: 1, ce: 1, aux: 0, z: 0, lr: 0, grad_norm: 0, tokens: 1, text_targets: 1, tokens_per_s: 1, elapsed_s: 0 }]);
  assert.equal('vconcat' in old, false);
});

test('train logs the router per band, evaluates it, and --init starts from a checkpoint with routers re-drawn', () => {
  const dir = tempDir('router');
  const cfg = writeConfig(dir, 'c.json', tinyConfig({ steps: 2, eval_every: 0, checkpoint_every: 0 }));
  const first = join(dir, 'first');
  let r = moescope(['train', '--config', cfg, '--out', first]);
  assert.equal(r.code, 0, r.stderr);
  const rows = readFileSync(join(first, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const t = rows.find((x) => x.kind === 'train');
  assert.deepEqual(t.router_bands, ['0-0', '1-1']);
  for (const g of t.gate_top1) assert.ok(g >= 0.25 && g <= 1, `gate ${g}`);
  for (const h of t.router_entropy) assert.ok(h >= 0 && h <= 2, `entropy ${h}`);
  const ev = JSON.parse(readFileSync(join(first, 'eval.json'), 'utf8'));
  assert.equal(ev.router.gate_top1.length, 2);
  assert.equal(ev.router.S.length, 2);
  // --init: same model config required (nothing written otherwise)
  const other = writeConfig(dir, 'o.json', tinyConfig({ hidden_size: 32 }));
  r = moescope(['train', '--config', other, '--out', join(dir, 'bad'), '--init', join(first, 'model')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^moescope: error: --init .*differs from the training config in hidden_size/);
  assert.equal(existsSync(join(dir, 'bad')), false);
  // --init with router_init_std: routers new, everything else from the checkpoint (0 steps of training: --stop-at 0 is not a run, so 1 step at lr 0)
  const warm = writeConfig(dir, 'w.json', tinyConfig({ steps: 1, lr: 0, min_lr: 0, weight_decay: 0, eval_every: 0, checkpoint_every: 0, router_init_std: 0.5, router_z_loss_coef: 0 }));
  const second = join(dir, 'second');
  r = moescope(['train', '--config', warm, '--out', second, '--init', join(first, 'model')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /routers re-drawn with std 0\.5/);
  const a = loadCheckpoint(join(first, 'model')), b = loadCheckpoint(join(second, 'model'));
  for (const [name, { view }] of a.params.byName) {
    const same = view.every((x, i) => x === b.params.byName.get(name)!.view[i]);
    assert.equal(same, !name.includes('block_sparse_moe.gate'), name);
  }
  assert.ok(JSON.parse(readFileSync(join(second, 'init.json'), 'utf8')).model_safetensors_sha256.match(/^[0-9a-f]{64}$/));
});

test('top-1 with norm_topk_prob: the gate is always 1 and the LM loss sends the router no gradient', async () => {
  const { routerForward, routerBackward } = await import('../../src/model/kernels/router.js');
  const N = 3, E = 4, K = 1;
  const logits = Float32Array.from([0.3, -1, 2, 0.1, 1, 1.5, -0.2, 0, -3, 0.5, 0.4, 2]);
  const experts = new Int32Array(N * K), gates = new Float32Array(N * K), probs = new Float32Array(N * E);
  for (const norm of [true, false]) {
    routerForward(experts, gates, probs, logits, N, E, K, norm);
    const dlogits = new Float32Array(N * E);
    routerBackward(dlogits, Float32Array.from([0.7, -1.2, 0.4]), probs, experts, N, E, K, norm);
    if (norm) {
      assert.deepEqual([...gates], [1, 1, 1]);
      assert.ok(dlogits.every((x) => x === 0), 'normalised top-1: no gradient reaches the router');
    } else {
      assert.ok(gates.every((g) => g > 0.25 && g < 1));
      assert.ok(dlogits.some((x) => Math.abs(x) > 1e-3), 'raw top-1 gate: the router gets the gate gradient');
    }
  }
});
