import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../../', import.meta.url));

export function moescope(args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin/moescope'), ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A training config small enough that a step takes milliseconds. */
export function tinyConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: 'efmoe', vocab_size: 64, hidden_size: 16, intermediate_size: 16, num_hidden_layers: 2,
    num_attention_heads: 2, num_local_experts: 4, num_experts_per_tok: 1, norm_topk_prob: false, rms_norm_eps: 1e-5,
    rope_theta: 10000, qk_norm: true, image_size: 16, patch_size: 8, num_channels: 3, max_position_embeddings: 64,
    router_aux_loss_coef: 0.01, router_z_loss_coef: 0.001, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, unk_token_id: 3,
    steps: 6, batch: 4, lr: 0.01, min_lr: 0.001, warmup: 2, weight_decay: 0.1, beta1: 0.9, beta2: 0.95, adam_eps: 1e-8,
    clip: 1.0, seed: 3, train_seed: 11, eval_seed: 1_000_099, text_only_share: 0.25, eval_samples: 8, eval_every: 3,
    checkpoint_every: 2, snapshot_every: 0, log_every: 1,
    ...over,
  };
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `moescope-train-${tag}-`));
}

export function writeConfig(dir: string, name: string, cfg: Record<string, unknown>): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(cfg, null, 2));
  return p;
}
