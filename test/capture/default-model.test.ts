import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MODEL_DIR, loadCheckpoint } from '../../src/io/checkpoint-files.js';
import { shapesSample, shapesVocabulary, SHAPES_EVAL_SEED } from '../../src/data/shapes.js';
import { WordTokenizer } from '../../src/model/tokenizer.js';
import { runCli } from './helpers.js';

test('the bundled checkpoint has the seed figure\'s shape and the shapes vocabulary', () => {
  const ck = loadCheckpoint(DEFAULT_MODEL_DIR);
  const c = ck.config;
  assert.deepEqual(
    [c.num_hidden_layers, c.num_local_experts, c.num_experts_per_tok, c.norm_topk_prob, c.qk_norm],
    [24, 8, 1, false, true],
  );
  assert.ok(c.hidden_size >= 64 && c.hidden_size <= 128);
  assert.equal(c.image_size % c.patch_size, 0);
  assert.deepEqual(ck.tokenizer.vocab, ['<pad>', '<bos>', '<eos>', '<unk>', ...shapesVocabulary()]);
  assert.equal(c.vocab_size, ck.tokenizer.vocab.length);
  assert.deepEqual([c.pad_token_id, c.bos_token_id, c.eos_token_id, c.unk_token_id], [0, 1, 2, 3]);
  // no shapes text falls back to <unk>
  for (let i = 0; i < 300; i++) {
    for (const p of shapesSample(SHAPES_EVAL_SEED, i).parts) {
      if ('text' in p) assert.ok(!ck.tokenizer.encode(p.text).includes(c.unk_token_id), p.text);
    }
  }
  assert.ok(ck.params.flat.every(Number.isFinite));
});

test('capture with the default model (no --model) on shapes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-default-'));
  try {
    const out = join(dir, 't');
    const r = runCli(['capture', '--data', 'shapes:3', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /captured 3 samples .* x 24 layers/);
    const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
    assert.equal(meta.model.path, DEFAULT_MODEL_DIR);
    assert.equal(meta.data, `shapes:3:${SHAPES_EVAL_SEED}`);
    assert.equal(meta.num_layers, 24);
    assert.equal(meta.top_k, 1);
    let text = 0;
    for (let i = 0; i < 3; i++) for (const p of shapesSample(SHAPES_EVAL_SEED, i).parts) if ('text' in p) text += WordTokenizer.split(p.text).length;
    assert.equal(meta.tokens.text, text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
