import { InputError } from '../util/errors.js';
import { CONFIG_KEYS, type ModelConfig, parseModelConfig } from '../model/config.js';
import { SHAPES_TRAIN_SEED_LIMIT } from '../data/shapes.js';

/**
 * The training half of a training config (`moescope train --config FILE`). The file holds the
 * model keys of config.json plus these keys, all required, nothing else.
 */
export interface TrainSettings {
  steps: number; // optimizer steps of the whole run (the cosine schedule ends here)
  batch: number; // samples per step
  lr: number; // peak learning rate
  min_lr: number; // learning rate at the end of the cosine decay
  warmup: number; // linear warmup steps (from lr/warmup to lr)
  weight_decay: number; // AdamW decoupled decay (not on norms, biases, embeddings)
  beta1: number;
  beta2: number;
  adam_eps: number;
  clip: number; // global gradient-norm clip; 0 = off
  seed: number; // weight initialisation
  train_seed: number; // shapes world seed of the training stream
  eval_seed: number; // shapes world seed of the held-out samples (must differ from train_seed)
  text_only_share: number; // share of text-only samples in the data mix, in [0, 1]
  eval_samples: number; // held-out samples per evaluation
  eval_every: number; // steps between held-out evaluations (0 = only at the end)
  checkpoint_every: number; // steps between resumable checkpoints (0 = only at the end)
  snapshot_every: number; // steps between kept weight snapshots in snapshots/step-N (0 = none)
  log_every: number; // steps between JSONL log lines
  // optional router knobs (issue 14); absent = the plain recipe (0.02 init, same decay and lr as the rest)
  router_init_std?: number; // std of the router matrices at initialisation
  router_weight_decay?: number; // AdamW decay of the router matrices
  router_lr_scale?: number; // router learning rate = lr * router_lr_scale
}

type Kind = 'int' | 'posint' | 'num' | 'unit';
type RequiredKeys = Exclude<keyof TrainSettings, (typeof OPTIONAL_KEYS)[number]>;
const OPTIONAL_KEYS = ['router_init_std', 'router_weight_decay', 'router_lr_scale'] as const;
const TRAIN_KEYS: Record<RequiredKeys, Kind> = {
  steps: 'posint', batch: 'posint', lr: 'num', min_lr: 'num', warmup: 'int', weight_decay: 'num',
  beta1: 'unit', beta2: 'unit', adam_eps: 'num', clip: 'num', seed: 'int', train_seed: 'int', eval_seed: 'int',
  text_only_share: 'unit', eval_samples: 'posint', eval_every: 'int', checkpoint_every: 'int',
  snapshot_every: 'int', log_every: 'posint',
};
export const TRAIN_CONFIG_KEYS: readonly string[] = Object.keys(TRAIN_KEYS);
export const OPTIONAL_TRAIN_KEYS: readonly string[] = OPTIONAL_KEYS;

export interface TrainConfig {
  model: ModelConfig;
  train: TrainSettings;
}

/** Validate a parsed training config; `where` names the file in errors. */
export function parseTrainConfig(raw: unknown, where: string): TrainConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${where}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const known = new Set([...CONFIG_KEYS, ...TRAIN_CONFIG_KEYS, ...OPTIONAL_KEYS]);
  const unknown = Object.keys(o).filter((k) => !known.has(k));
  if (unknown.length) throw new InputError(`${where}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
  const missing = [...CONFIG_KEYS, ...TRAIN_CONFIG_KEYS].filter((k) => !(k in o));
  if (missing.length) throw new InputError(`${where}: missing key${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  const model = parseModelConfig(raw, where, true);
  const train = {} as Record<string, number>;
  for (const [k, kind] of Object.entries(TRAIN_KEYS)) {
    const v = o[k];
    const ok =
      typeof v === 'number' && isFinite(v) &&
      (kind === 'num' ? v >= 0 : kind === 'unit' ? v >= 0 && v <= 1 : Number.isInteger(v) && v >= (kind === 'posint' ? 1 : 0));
    if (!ok) {
      const want = { int: 'a non-negative integer', posint: 'a positive integer', num: 'a non-negative number', unit: 'a number in [0, 1]' }[kind];
      throw new InputError(`${where}: ${k} must be ${want}, got ${JSON.stringify(v)}`);
    }
    train[k] = v as number;
  }
  for (const k of OPTIONAL_KEYS) {
    if (!(k in o)) continue;
    const v = o[k];
    if (typeof v !== 'number' || !isFinite(v) || v < 0) throw new InputError(`${where}: ${k} must be a non-negative number, got ${JSON.stringify(v)}`);
    train[k] = v;
  }
  const t = train as unknown as TrainSettings;
  if (t.beta1 >= 1 || t.beta2 >= 1) throw new InputError(`${where}: beta1 and beta2 must be below 1`);
  if (t.min_lr > t.lr) throw new InputError(`${where}: min_lr ${t.min_lr} is above lr ${t.lr}`);
  if (t.train_seed === t.eval_seed) throw new InputError(`${where}: eval_seed must differ from train_seed (held-out data must be disjoint)`);
  if (t.train_seed >= SHAPES_TRAIN_SEED_LIMIT) throw new InputError(`${where}: train_seed must be below ${SHAPES_TRAIN_SEED_LIMIT} (the shapes world keeps larger seeds for evaluation)`);
  if (t.eval_seed < SHAPES_TRAIN_SEED_LIMIT) throw new InputError(`${where}: eval_seed must be at least ${SHAPES_TRAIN_SEED_LIMIT} (seeds below are training seeds)`);
  return { model, train: t };
}

/** The config as one JSON object again (model keys first), e.g. to store beside a checkpoint. */
export function trainConfigToJson(c: TrainConfig): Record<string, unknown> {
  return { ...c.model, ...c.train };
}
