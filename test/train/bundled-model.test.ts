import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL_DIR, loadCheckpoint } from '../../src/io/checkpoint-files.js';
import { parseTrainConfig } from '../../src/train/train-config.js';
import { buildEvalSet } from '../../src/train/batches.js';
import { evaluate } from '../../src/train/evaluate.js';

// the bundled model is stage 2 of its recipe (docs/training.md): this config, started from stage 1 with --init
const CONFIG = fileURLToPath(new URL('../../../configs/efmoe-shapes-routers.json', import.meta.url));

test('the bundled trained model reads the image: colour and shape words far above chance, worse with swapped images', () => {
  const ck = loadCheckpoint(DEFAULT_MODEL_DIR);
  const cfg = parseTrainConfig(JSON.parse(readFileSync(CONFIG, 'utf8')), CONFIG);
  // the training config describes the bundled model
  for (const [k, v] of Object.entries(ck.config)) assert.deepEqual(v, (cfg.model as unknown as Record<string, unknown>)[k], k);
  const set = buildEvalSet({ ...cfg.train, eval_samples: 64 }, ck.tokenizer, ck.config);
  const r = evaluate(ck.config, ck.params, set, true);
  for (const w of r.words!) {
    assert.ok(w.n >= 40, `${w.name}: only ${w.n} positions`);
    assert.ok(w.accuracy > 2 * w.chance, `${w.name}: accuracy ${w.accuracy} vs chance ${w.chance}`);
    assert.ok(w.accuracy > w.accuracy_swapped_image + 0.15, `${w.name}: ${w.accuracy} with own image, ${w.accuracy_swapped_image} swapped`);
  }
  assert.ok(r.caption_ce_swapped_image! > r.caption_ce! + 0.5, `caption CE ${r.caption_ce} own image, ${r.caption_ce_swapped_image} swapped`);
});

test('the bundled model\'s routers decide (issue 14): top-1 gate >= 2/E at 20+ of 24 layers, entropy <= 2.5 bits', () => {
  const ck = loadCheckpoint(DEFAULT_MODEL_DIR);
  const cfg = parseTrainConfig(JSON.parse(readFileSync(CONFIG, 'utf8')), CONFIG);
  // held-out samples of another seed than the one evaluated during training
  const set = buildEvalSet({ ...cfg.train, eval_samples: 48, eval_seed: 1_000_777 }, ck.tokenizer, ck.config);
  const r = evaluate(ck.config, ck.params, set, true);
  const E = ck.config.num_local_experts;
  assert.equal(r.router!.gate_top1.length, 24);
  assert.ok(r.router!.layers_gate_over_2x_uniform >= 20, `gate >= ${2 / E} at only ${r.router!.layers_gate_over_2x_uniform} layers`);
  assert.ok(r.router!.mean_entropy_bits <= 2.5, `mean router entropy ${r.router!.mean_entropy_bits}`);
  assert.ok(r.caption_ce_swapped_image! >= 2 * r.caption_ce!, `caption CE ${r.caption_ce} own image, ${r.caption_ce_swapped_image} swapped`);
});
