import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeSample, sampleText } from '../../src/data/encode.js';
import { MODALITY_IMAGE, MODALITY_SPECIAL, MODALITY_TEXT, type RGBImage } from '../../src/data/sample.js';
import { parseModelConfig, type ModelConfig } from '../../src/model/config.js';
import { WordTokenizer } from '../../src/model/tokenizer.js';

const tok = new WordTokenizer(['<pad>', '<bos>', '<eos>', '<unk>', 'a', 'red', 'circle', ',', "'", 's', '-', '2x', '!']);

function config(over: Partial<ModelConfig> = {}): ModelConfig {
  return parseModelConfig({
    model_type: 'efmoe', vocab_size: 13, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2,
    num_local_experts: 2, num_experts_per_tok: 1, norm_topk_prob: false, rms_norm_eps: 1e-5, rope_theta: 10000, qk_norm: true,
    image_size: 4, patch_size: 2, num_channels: 3, max_position_embeddings: 64, router_aux_loss_coef: 0.01, router_z_loss_coef: 0.001,
    bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, unk_token_id: 3, ...over,
  }, 'test');
}

test('tokenizer: lowercase, words of [a-z0-9] and single punctuation marks, unknown -> <unk>', () => {
  assert.deepEqual(WordTokenizer.split("It's a  Red-circle,2x!\tÉ"), ['it', "'", 's', 'a', 'red', '-', 'circle', ',', '2x', '!', 'é']);
  assert.deepEqual(tok.encode("It's a BLUE circle!"), [3, 8, 9, 4, 3, 6, 12]);
  assert.deepEqual(tok.encode('   '), []);
});

test('encodeSample: <bos>, parts in order (image patches and words), <eos>; patch tokens and image parts', () => {
  const img = (v: number): RGBImage => ({ width: 4, height: 4, data: new Uint8Array(48).fill(v) });
  const s = { parts: [{ text: 'a red' }, { image: img(0) }, { text: 'circle ?' }, { image: img(255) }], source: 't' };
  const e = encodeSample(s, tok, config());
  // 1 + 2 words + 4 patches + 2 words + 4 patches + 1
  assert.equal(e.T, 14);
  assert.deepEqual([...e.ids], [1, 4, 5, -1, -1, -1, -1, 6, 3, -1, -1, -1, -1, 2]);
  const S = MODALITY_SPECIAL, T = MODALITY_TEXT, I = MODALITY_IMAGE;
  assert.deepEqual([...e.modality], [S, T, T, I, I, I, I, T, T, I, I, I, I, S]);
  assert.deepEqual([...e.token], [1, 4, 5, 0, 1, 2, 3, 6, 3, 0, 1, 2, 3, 2]);
  assert.deepEqual([...e.imagePart], [-1, -1, -1, 0, 0, 0, 0, -1, -1, 1, 1, 1, 1, -1]);
  assert.equal(e.patches.length, 8 * 12);
  assert.ok(e.patches.subarray(0, 48).every((v) => v === -1));
  assert.ok(e.patches.subarray(48).every((v) => v === 1));
  assert.equal(sampleText(s), 'a red circle ?');
});

test('encodeSample resizes images to image_size and hands back the images it fed', () => {
  const big: RGBImage = { width: 8, height: 8, data: new Uint8Array(192) };
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) big.data.fill(y < 4 ? 200 : 100, (y * 8 + x) * 3, (y * 8 + x) * 3 + 3);
  const fed: RGBImage[] = [];
  const e = encodeSample({ parts: [{ image: big }], source: 't' }, tok, config(), fed);
  assert.equal(fed.length, 1);
  assert.equal(fed[0].width, 4);
  // 8 -> 4 averages 2x2 blocks: rows 0-1 are 200, rows 2-3 are 100
  assert.deepEqual([...fed[0].data.subarray(0, 3)], [200, 200, 200]);
  assert.deepEqual([...fed[0].data.subarray(45, 48)], [100, 100, 100]);
  // the first patch (top left) is all 200 -> (200/255-0.5)/0.5; the last is all 100
  assert.ok(Math.abs(e.patches[0] - (200 / 255 - 0.5) / 0.5) < 1e-6);
  assert.ok(Math.abs(e.patches[e.patches.length - 1] - (100 / 255 - 0.5) / 0.5) < 1e-6);
});

test('encodeSample errors name the sample: no parts, too long, bad image buffer', () => {
  const isInput = (re: RegExp) => (e: Error) => e.name === 'InputError' && re.test(e.message);
  assert.throws(() => encodeSample({ parts: [], source: 'f.jsonl:3' }, tok, config()), isInput(/^f\.jsonl:3: sample has no parts$/));
  assert.throws(() => encodeSample({ parts: [{ text: 'a '.repeat(70) }], source: 'f.jsonl:4' }, tok, config()), isInput(/^f\.jsonl:4: sequence of 72 tokens is longer than .* 64$/));
  assert.throws(() => encodeSample({ parts: [{ image: { width: 4, height: 4, data: new Uint8Array(5) } }], source: 'x' }, tok, config()), isInput(/^x: image of 4x4 pixels has 5 bytes/));
});
