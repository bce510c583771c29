import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { parseModelConfig, type ModelConfig } from '../../src/model/config.js';
import { initParams } from '../../src/model/params.js';
import { SPECIAL_TOKENS, WordTokenizer } from '../../src/model/tokenizer.js';
import { shapesVocabulary } from '../../src/data/shapes.js';
import { saveCheckpoint } from '../../src/io/checkpoint-files.js';
import type { Checkpoint } from '../../src/model/checkpoint.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../../bin/moescope', import.meta.url));

/** A small efmoe (3 layers, 4 experts, top-2, 16x16 images so that 32x32 shapes images are resized). */
export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return parseModelConfig({
    model_type: 'efmoe', vocab_size: SPECIAL_TOKENS.length + shapesVocabulary().length, hidden_size: 16, intermediate_size: 24,
    num_hidden_layers: 3, num_attention_heads: 2, num_local_experts: 4, num_experts_per_tok: 2, norm_topk_prob: false,
    rms_norm_eps: 1e-5, rope_theta: 10000, qk_norm: true, image_size: 16, patch_size: 8, num_channels: 3,
    max_position_embeddings: 128, router_aux_loss_coef: 0.01, router_z_loss_coef: 0.001,
    bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, unk_token_id: 3, ...over,
  }, 'tiny config');
}

export function tinyCheckpoint(seed = 11, over: Partial<ModelConfig> = {}): Checkpoint {
  const config = tinyConfig(over);
  // router weights larger than the default init, so that routing is not nearly uniform
  const params = initParams(config, seed);
  for (const l of params.layers) for (let i = 0; i < l.router.length; i++) l.router[i] *= 50;
  return { config, tokenizer: new WordTokenizer([...SPECIAL_TOKENS, ...shapesVocabulary()]), params };
}

export async function writeTinyModel(dir: string, seed = 11): Promise<Checkpoint> {
  const ck = tinyCheckpoint(seed);
  await saveCheckpoint(dir, ck);
  return ck;
}

export function runCli(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export async function query(sql: string): Promise<unknown[][]> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(sql)).getRowsJS() as unknown[][];
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

export function sqlPath(p: string): string {
  return `'${p.replace(/'/g, "''")}'`;
}
