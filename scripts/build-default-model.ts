/**
 * Writes the bundled checkpoint models/efmoe-shapes/ (`--model` default): the seed's shape
 * (24 layers, 8 experts, top-1) at a width that trains on two CPU cores, the shapes world's
 * vocabulary, and deterministically initialised weights (training, issue 4, replaces them).
 *
 *   npx tsc -p . && node dist/scripts/build-default-model.js [--out DIR] [--seed S] [--force]
 *
 * It refuses to replace an existing folder without --force: the bundled folder holds trained weights.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseModelConfig, type ModelConfig } from '../src/model/config.js';
import { initParams } from '../src/model/params.js';
import { SPECIAL_TOKENS, WordTokenizer } from '../src/model/tokenizer.js';
import { shapesVocabulary, SHAPES_IMAGE_SIZE } from '../src/data/shapes.js';
import { saveCheckpoint } from '../src/io/checkpoint-files.js';

export const DEFAULT_INIT_SEED = 20250410;

export function defaultModelConfig(vocabSize: number): ModelConfig {
  return parseModelConfig(
    {
      model_type: 'efmoe',
      vocab_size: vocabSize,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 24,
      num_attention_heads: 4,
      num_local_experts: 8,
      num_experts_per_tok: 1,
      norm_topk_prob: false,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      qk_norm: true,
      image_size: SHAPES_IMAGE_SIZE,
      patch_size: 8,
      num_channels: 3,
      max_position_embeddings: 128,
      router_aux_loss_coef: 0.01,
      router_z_loss_coef: 0.001,
      pad_token_id: 0,
      bos_token_id: 1,
      eos_token_id: 2,
      unk_token_id: 3,
    },
    'default model config',
  );
}

export function defaultTokenizer(): WordTokenizer {
  return new WordTokenizer([...SPECIAL_TOKENS, ...shapesVocabulary()]);
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const out = arg('--out') ?? fileURLToPath(new URL('../../models/efmoe-shapes', import.meta.url));
  const seed = Number(arg('--seed') ?? DEFAULT_INIT_SEED);
  if (existsSync(out) && !argv.includes('--force')) {
    process.stderr.write(`${out} exists (it may hold trained weights); pass --force to replace it with initial weights\n`);
    process.exitCode = 2;
    return;
  }
  const tokenizer = defaultTokenizer();
  const config = defaultModelConfig(tokenizer.vocab.length);
  await saveCheckpoint(out, { config, tokenizer, params: initParams(config, seed) });
  process.stderr.write(`wrote ${out}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main(process.argv.slice(2));
