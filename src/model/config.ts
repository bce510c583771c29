import { InputError } from '../util/errors.js';
import { LIMITS } from '../util/limits.js';

/** config.json of an efmoe checkpoint (SPEC §1). */
export interface ModelConfig {
  model_type: 'efmoe';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_local_experts: number;
  num_experts_per_tok: number;
  norm_topk_prob: boolean;
  rms_norm_eps: number;
  rope_theta: number;
  qk_norm: boolean;
  image_size: number;
  patch_size: number;
  num_channels: number;
  max_position_embeddings: number;
  router_aux_loss_coef: number;
  router_z_loss_coef: number;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
  unk_token_id: number;
}

const INT_KEYS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_local_experts', 'num_experts_per_tok', 'image_size', 'patch_size', 'num_channels',
  'max_position_embeddings', 'bos_token_id', 'eos_token_id', 'pad_token_id', 'unk_token_id',
] as const;
const NUM_KEYS = ['rms_norm_eps', 'rope_theta', 'router_aux_loss_coef', 'router_z_loss_coef'] as const;
const BOOL_KEYS = ['norm_topk_prob', 'qk_norm'] as const;
export const CONFIG_KEYS: readonly string[] = ['model_type', ...INT_KEYS, ...NUM_KEYS, ...BOOL_KEYS];

/** Shapes derived once from a config; every op names its sizes from here. */
export interface Dims {
  L: number; // layers
  C: number; // hidden size d
  H: number; // heads
  hd: number; // head size
  E: number; // experts
  K: number; // experts per token
  F: number; // expert intermediate size
  V: number; // vocabulary
  P: number; // patch size
  patchDim: number; // P*P*channels
  patchesPerImage: number;
  gridSide: number; // image_size / patch_size
}

export function dims(c: ModelConfig): Dims {
  const gridSide = c.image_size / c.patch_size;
  return {
    L: c.num_hidden_layers, C: c.hidden_size, H: c.num_attention_heads,
    hd: c.hidden_size / c.num_attention_heads, E: c.num_local_experts, K: c.num_experts_per_tok,
    F: c.intermediate_size, V: c.vocab_size, P: c.patch_size,
    patchDim: c.patch_size * c.patch_size * c.num_channels, patchesPerImage: gridSide * gridSide, gridSide,
  };
}

/** Upper bounds of the integer keys (SPEC §6: every size from a file is bounded before allocation). */
const INT_MAX: Record<(typeof INT_KEYS)[number], number> = {
  vocab_size: LIMITS.vocab, hidden_size: LIMITS.hiddenSize, intermediate_size: LIMITS.intermediateSize,
  num_hidden_layers: LIMITS.layers, num_attention_heads: LIMITS.heads, num_local_experts: LIMITS.experts,
  num_experts_per_tok: LIMITS.topK, image_size: LIMITS.imageSide, patch_size: LIMITS.imageSide, num_channels: LIMITS.channels,
  max_position_embeddings: LIMITS.positions, bos_token_id: LIMITS.vocab, eos_token_id: LIMITS.vocab, pad_token_id: LIMITS.vocab, unk_token_id: LIMITS.vocab,
};

/** Number of weights the SPEC §1 tensors of a config hold (a float: it is compared with a limit, never allocated). */
export function parameterCount(c: ModelConfig): number {
  const d = c.hidden_size, V = c.vocab_size, E = c.num_local_experts, F = c.intermediate_size, hd = d / c.num_attention_heads;
  const patchDim = c.patch_size * c.patch_size * c.num_channels;
  const layer = 2 * d + 4 * d * d + 2 * hd + E * d + E * 3 * F * d;
  return 2 * V * d + d * patchDim + d + c.num_hidden_layers * layer + d;
}

/**
 * Validate a parsed config.json. `where` names the file in errors. With `allowExtra`, keys that are
 * not model keys are ignored (a training config holds more).
 */
export function parseModelConfig(raw: unknown, where: string, allowExtra = false): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${where}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const missing = CONFIG_KEYS.filter((k) => !(k in o));
  if (missing.length) throw new InputError(`${where}: missing key${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  if (!allowExtra) {
    const extra = Object.keys(o).filter((k) => !CONFIG_KEYS.includes(k));
    if (extra.length) throw new InputError(`${where}: unknown key${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`);
  }
  if (o.model_type !== 'efmoe') throw new InputError(`${where}: model_type must be "efmoe", got ${JSON.stringify(o.model_type)}`);
  for (const k of INT_KEYS) {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InputError(`${where}: ${k} must be a non-negative integer, got ${JSON.stringify(v)}`);
    if (v > INT_MAX[k]) throw new InputError(`${where}: ${k} ${v} is above the limit ${INT_MAX[k]} (docs/limits.md)`);
  }
  for (const k of NUM_KEYS) {
    const v = o[k];
    if (typeof v !== 'number' || !isFinite(v) || v < 0) throw new InputError(`${where}: ${k} must be a non-negative number, got ${JSON.stringify(v)}`);
  }
  for (const k of BOOL_KEYS) {
    if (typeof o[k] !== 'boolean') throw new InputError(`${where}: ${k} must be true or false, got ${JSON.stringify(o[k])}`);
  }
  const c = Object.fromEntries(CONFIG_KEYS.map((k) => [k, o[k]])) as unknown as ModelConfig;
  const positive = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_local_experts', 'num_experts_per_tok', 'image_size', 'patch_size', 'num_channels', 'max_position_embeddings'] as const;
  for (const k of positive) if (c[k] === 0) throw new InputError(`${where}: ${k} must be at least 1`);
  if (c.hidden_size % c.num_attention_heads !== 0) throw new InputError(`${where}: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
  if ((c.hidden_size / c.num_attention_heads) % 2 !== 0) throw new InputError(`${where}: head size ${c.hidden_size / c.num_attention_heads} must be even for RoPE`);
  if (c.image_size % c.patch_size !== 0) throw new InputError(`${where}: image_size ${c.image_size} is not divisible by patch_size ${c.patch_size}`);
  if (c.num_experts_per_tok > c.num_local_experts) throw new InputError(`${where}: num_experts_per_tok ${c.num_experts_per_tok} exceeds num_local_experts ${c.num_local_experts}`);
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id', 'unk_token_id'] as const) {
    if (c[k] >= c.vocab_size) throw new InputError(`${where}: ${k} ${c[k]} is outside the vocabulary of ${c.vocab_size}`);
  }
  if ((c.image_size / c.patch_size) ** 2 > LIMITS.positions) throw new InputError(`${where}: ${(c.image_size / c.patch_size) ** 2} patches per image is above the limit ${LIMITS.positions}`);
  if (c.num_hidden_layers * c.num_local_experts > LIMITS.layerExperts) {
    throw new InputError(`${where}: ${c.num_hidden_layers} layers x ${c.num_local_experts} experts is above the limit ${LIMITS.layerExperts} experts in all`);
  }
  const n = parameterCount(c);
  if (n > LIMITS.parameters) throw new InputError(`${where}: these sizes make ${n.toExponential(2)} parameters, above the limit ${LIMITS.parameters} (docs/limits.md)`);
  return c;
}
