import { readFileSync, statSync } from 'node:fs';
import { InputError } from '../util/errors.js';
import { LIMITS, checkInt } from '../util/limits.js';

/**
 * What an HF config.json says about the MoE part of a model: which decoder layers are MoE layers
 * (dense layers have no router), how many experts, top-k, and how the router picks (scoring,
 * bias-corrected and group-limited top-k, scaling). Engines number routing by MoE ordinal (vLLM,
 * output_router_logits); the trace stores the real decoder layer index.
 */
export interface RouterRule {
  family: string; // model_type, for messages
  scoring: 'softmax' | 'sigmoid';
  normTopk: boolean;
  /** e_score_correction_bias added to the scores for the choice only (DeepSeek-V3, GLM-4.5, MiniMax-M2) */
  biased: boolean;
  nGroup: number; // group-limited top-k: experts split in n_group groups ...
  topkGroup: number; // ... of which the best topk_group groups are eligible
  groupScore: 'top2sum' | 'max'; // DeepSeek-V3 (noaux_tc): sum of the 2 best; V2 group_limited_greedy: max
  scalingFactor: number; // routed_scaling_factor: gates are multiplied by it
  /** why logits of this family cannot be turned into its choice here (refused) */
  unsupported?: string;
}

export interface ModelRouting {
  numLayers?: number;
  moeLayers?: number[]; // decoder index of MoE ordinal i
  numExperts?: number;
  topK?: number;
  scoring?: string;
  normTopk?: boolean;
  rule?: RouterRule;
  config?: Record<string, unknown>;
}

export function readModelConfig(path: string): ModelRouting {
  let raw: unknown;
  try {
    if (!statSync(path).isFile()) throw new InputError(`${path}: not a regular file`);
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${path}: cannot read config (${e instanceof SyntaxError ? 'not valid JSON' : (e as NodeJS.ErrnoException).code ?? e})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${path}: expected a JSON object`);
  return routingFromConfig(raw as Record<string, unknown>, path);
}

/** An optional integer key: absent is undefined, present but not an integer in range is an error. */
export function optInt(where: string, c: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  return c[key] === undefined || c[key] === null ? undefined : checkInt(`${where}: ${key}`, c[key], min, max);
}

function optNum(where: string, c: Record<string, unknown>, key: string): number | undefined {
  const v = c[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new InputError(`${where}: ${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** Decoder layers that are MoE layers, and the router rule, by the conventions of the HF model families. */
export function routingFromConfig(full: Record<string, unknown>, where: string): ModelRouting {
  // multimodal configs nest the language model's config
  const c = (typeof full.text_config === 'object' && full.text_config !== null ? full.text_config : full) as Record<string, unknown>;
  const L = optInt(where, c, 'num_hidden_layers', 1, LIMITS.layers) ?? optInt(where, c, 'num_layers', 1, LIMITS.layers) ?? optInt(where, c, 'n_layer', 1, LIMITS.layers) ?? optInt(where, c, 'n_layers', 1, LIMITS.layers);
  const ffn = (typeof c.ffn_config === 'object' && c.ffn_config !== null ? c.ffn_config : {}) as Record<string, unknown>; // DBRX
  const numExperts =
    optInt(where, c, 'num_local_experts', 1, LIMITS.experts) ?? optInt(where, c, 'num_experts', 1, LIMITS.experts) ??
    optInt(where, c, 'n_routed_experts', 1, LIMITS.experts) ?? optInt(where, c, 'moe_num_experts', 1, LIMITS.experts) ??
    optInt(`${where}: ffn_config`, ffn, 'moe_num_experts', 1, LIMITS.experts);
  const topK = optInt(where, c, 'num_experts_per_tok', 1, LIMITS.topK) ?? optInt(where, c, 'moe_topk', 1, LIMITS.topK) ?? optInt(where, c, 'top_k', 1, LIMITS.topK) ?? optInt(where, c, 'moe_k', 1, LIMITS.topK) ?? optInt(`${where}: ffn_config`, ffn, 'moe_top_k', 1, LIMITS.topK);
  if (topK !== undefined && numExperts !== undefined && topK > numExperts) throw new InputError(`${where}: num_experts_per_tok ${topK} exceeds the ${numExperts} experts`);
  const type = String(c.model_type ?? full.model_type ?? '');
  let moeLayers: number[] | undefined;
  if (L !== undefined) {
    const all = Array.from({ length: L }, (_, i) => i);
    if (Array.isArray(c.moe_layers)) moeLayers = c.moe_layers.map((x, i) => checkInt(`${where}: moe_layers[${i}]`, x, 0, L - 1));
    else if (c.first_k_dense_replace !== undefined || (c.moe_layer_freq !== undefined && c.n_routed_experts !== undefined)) {
      const k = optInt(where, c, 'first_k_dense_replace', 0, L) ?? 0;
      const f = optInt(where, c, 'moe_layer_freq', 1, L) ?? 1;
      moeLayers = all.filter((i) => i >= k && i % f === 0); // DeepSeek-V2/V3, GLM-4.5
    } else if (Array.isArray(c.mlp_only_layers) || c.decoder_sparse_step !== undefined) {
      const dense = new Set((Array.isArray(c.mlp_only_layers) ? c.mlp_only_layers : []).map((x, i) => checkInt(`${where}: mlp_only_layers[${i}]`, x, 0, L - 1)));
      const s = optInt(where, c, 'decoder_sparse_step', 1, L) ?? 1;
      moeLayers = all.filter((i) => !dense.has(i) && (i + 1) % s === 0); // Qwen2/3-MoE
    } else if (c.interleave_moe_layer_step !== undefined) {
      const s = optInt(where, c, 'interleave_moe_layer_step', 1, L)!;
      moeLayers = all.filter((i) => (i + 1) % s === 0); // Llama 4
    } else if (c.expert_layer_period !== undefined) {
      const p = optInt(where, c, 'expert_layer_period', 1, L)!;
      const o = optInt(where, c, 'expert_layer_offset', 0, L) ?? 0;
      moeLayers = all.filter((i) => i % p === o); // Jamba
    } else moeLayers = all; // Mixtral, OLMoE, efmoe: every layer
  }
  const rule = routerRule(where, c, type);
  return { numLayers: L, moeLayers, numExperts, topK, scoring: rule.scoring, normTopk: rule.normTopk, rule, config: full };
}

/**
 * How the family's MoE block turns router logits into its choice (transformers' modeling files):
 * - DeepSeek-V3 (modeling_deepseek_v3.py DeepseekV3MoE.route_tokens_to_experts), GLM-4.5
 *   (modeling_glm4_moe.py): sigmoid; e_score_correction_bias added for the choice; group score =
 *   sum of the 2 best in each of n_group groups, topk_group groups kept; gates = unbiased sigmoid of
 *   the chosen, divided by their sum when norm_topk_prob, times routed_scaling_factor.
 * - MiniMax-M2 (modeling_minimax_m2.py): sigmoid + e_score_correction_bias for the choice, no groups,
 *   gates always divided by their sum.
 * - DeepSeek-V2 (topk_method group_limited_greedy): softmax, group score = max, no bias.
 * - Llama-4 (Llama4Router): top-k of the logits, gate = sigmoid(logit) of the chosen.
 */
function routerRule(where: string, c: Record<string, unknown>, type: string): RouterRule {
  if (type === 'phimoe') {
    // sparsemixer: each gate comes from a masked softmax around its own choice, not one softmax
    return { family: type, scoring: 'softmax', normTopk: false, biased: false, nGroup: 1, topkGroup: 1, groupScore: 'max', scalingFactor: 1, unsupported: "Phi-3.5-MoE's sparsemixer router: import the experts and weights the block used (the capture helper's topk_ids/topk_weights)" };
  }
  const sf = typeof c.scoring_func === 'string' ? c.scoring_func : typeof c.moe_router_score_function === 'string' ? c.moe_router_score_function : undefined;
  const llama4 = type === 'llama4' || type === 'llama4_text';
  const minimax = type === 'minimax_m2' || type === 'minimax';
  const noaux = c.topk_method === 'noaux_tc' || type === 'deepseek_v3' || type === 'glm4_moe' || type === 'glm4v_moe' || type === 'kimi_k2';
  const biased = noaux || (minimax && c.use_routing_bias !== false) || c.use_routing_bias === true;
  const scoring = (sf ?? (llama4 || noaux || minimax ? 'sigmoid' : 'softmax')) as string;
  if (scoring !== 'softmax' && scoring !== 'sigmoid') throw new InputError(`${where}: scoring_func ${JSON.stringify(scoring)} is not supported (softmax or sigmoid)`);
  const nGroup = optInt(where, c, 'n_group', 1, LIMITS.experts) ?? 1;
  const topkGroup = optInt(where, c, 'topk_group', 1, LIMITS.experts) ?? nGroup;
  if (topkGroup > nGroup) throw new InputError(`${where}: topk_group ${topkGroup} exceeds n_group ${nGroup}`);
  const groupLimited = nGroup > 1 && topkGroup < nGroup && (noaux || c.topk_method === 'group_limited_greedy');
  // families that renormalise over the k without a norm_topk_prob key: Mixtral; gpt-oss and
  // Granite-MoE take a softmax over the top-k logits (= renormalised); DBRX moe_normalize_expert_weights
  const ffn = (typeof c.ffn_config === 'object' && c.ffn_config !== null ? c.ffn_config : {}) as Record<string, unknown>;
  const renorm = type === 'mixtral' || minimax || type === 'gpt_oss' || type.startsWith('granitemoe') || (type === 'dbrx' && typeof ffn.moe_normalize_expert_weights === 'number');
  const norm = typeof c.norm_topk_prob === 'boolean' ? c.norm_topk_prob : renorm;
  return {
    family: type || 'unknown',
    scoring,
    normTopk: llama4 ? false : norm,
    biased,
    nGroup: groupLimited ? nGroup : 1,
    topkGroup: groupLimited ? topkGroup : 1,
    groupScore: noaux ? 'top2sum' : 'max',
    // V3 scales always; V2 (group_limited_greedy) only when it does not renormalise
    scalingFactor: noaux || (c.topk_method === 'group_limited_greedy' && !norm) ? optNum(where, c, 'routed_scaling_factor') ?? 1 : 1,
  };
}
