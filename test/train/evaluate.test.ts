import test from 'node:test';
import assert from 'node:assert/strict';
import { parseTrainConfig } from '../../src/train/train-config.js';
import { buildEvalSet, shapesTokenizer, streamSample, COLOUR_WORDS, SHAPE_WORDS } from '../../src/train/batches.js';
import { evaluate } from '../../src/train/evaluate.js';
import { initParams } from '../../src/model/params.js';
import { WordTokenizer } from '../../src/model/tokenizer.js';
import { tinyConfig } from './helpers.js';

const cfg = parseTrainConfig(tinyConfig({ eval_samples: 24 }), 'tiny');

test('held-out samples come from the eval seed only and keep the configured text-only share', () => {
  const n = 400;
  let textOnly = 0;
  for (let i = 0; i < n; i++) {
    const s = streamSample(cfg.train.eval_seed, i, 0.5);
    assert.match(s.source, new RegExp(`^shapes:seed=${cfg.train.eval_seed}:`));
    if (s.parts.every((p) => 'text' in p)) textOnly++;
  }
  assert.ok(Math.abs(textOnly / n - 0.5) < 0.08, `text-only share ${textOnly / n}`);
});

test('evaluation of a model that cannot prefer any word: CE ln V, no word right, positions counted after images', () => {
  const tokenizer = shapesTokenizer();
  const set = buildEvalSet(cfg.train, tokenizer, cfg.model);
  const params = initParams(cfg.model, 1);
  params.norm.fill(0); // final RMSNorm output 0 -> all logits 0 -> uniform prediction, argmax = id 0
  const r = evaluate(cfg.model, params, set, true);
  const lnV = Math.log(cfg.model.vocab_size);
  assert.ok(Math.abs(r.ce - lnV) < 1e-5, `ce ${r.ce}`);
  assert.ok(Math.abs(r.caption_ce! - lnV) < 1e-5 && Math.abs(r.caption_ce_swapped_image! - lnV) < 1e-5);
  // count the colour / shape words that follow an image, from the sample texts themselves
  const want = { colour: 0, shape: 0 };
  for (let i = 0; i < cfg.train.eval_samples; i++) {
    const s = streamSample(cfg.train.eval_seed, i, cfg.train.text_only_share);
    let seen = false;
    for (const p of s.parts) {
      if ('image' in p) seen = true;
      else if (seen) {
        for (const w of WordTokenizer.split(p.text)) {
          if ((COLOUR_WORDS as readonly string[]).includes(w)) want.colour++;
          if ((SHAPE_WORDS as readonly string[]).includes(w)) want.shape++;
        }
      }
    }
  }
  assert.ok(want.colour > 5 && want.shape > 5);
  const [colour, shape] = r.words!;
  assert.deepEqual([colour.name, colour.n, shape.name, shape.n], ['colour', want.colour, 'shape', want.shape]);
  for (const w of r.words!) {
    assert.equal(w.accuracy, 0);
    assert.equal(w.accuracy_swapped_image, 0);
    assert.ok(Math.abs(w.ce - lnV) < 1e-5);
  }
  assert.ok(Math.abs(colour.chance - 1 / 7) < 1e-12 && Math.abs(shape.chance - 1 / 4) < 1e-12);
});

test('swapped images: every image sample gets another sample image, text unchanged', () => {
  const set = buildEvalSet(cfg.train, shapesTokenizer(), cfg.model);
  assert.equal(set.swappedSeqs.length, set.imageSeqs.length);
  let differing = 0;
  set.imageSeqs.forEach((a, i) => {
    const b = set.swappedSeqs[i];
    assert.deepEqual([...b.ids], [...a.ids]); // same tokens and layout
    assert.deepEqual([...b.patches], [...set.imageSeqs[(i + 1) % set.imageSeqs.length].patches]); // the next sample's image
    if (a.patches.some((v, j) => v !== b.patches[j])) differing++;
  });
  assert.equal(differing, set.imageSeqs.length);
});
