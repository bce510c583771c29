import { readFileSync } from 'node:fs';
import { InputError } from '../util/errors.js';

/**
 * What an HF config.json says about the MoE part of a model: which decoder layers are MoE layers
 * (dense layers have no router), how many experts, top-k, scoring. Engines number routing by MoE
 * ordinal (vLLM, output_router_logits); the trace stores the real decoder layer index.
 */
export interface ModelRouting {
  numLayers?: number;
  moeLayers?: number[]; // decoder index of MoE ordinal i
  numExperts?: number;
  topK?: number;
  scoring?: string;
  normTopk?: boolean;
  config?: Record<string, unknown>;
}

function int(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
}

export function readModelConfig(path: string): ModelRouting {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`${path}: cannot read config (${e instanceof SyntaxError ? 'not valid JSON' : (e as NodeJS.ErrnoException).code ?? e})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${path}: expected a JSON object`);
  return routingFromConfig(raw as Record<string, unknown>, path);
}

/** Decoder layers that are MoE layers, by the conventions of the HF model families. */
export function routingFromConfig(full: Record<string, unknown>, where: string): ModelRouting {
  // multimodal configs nest the language model's config
  const c = (typeof full.text_config === 'object' && full.text_config !== null ? full.text_config : full) as Record<string, unknown>;
  const L = int(c.num_hidden_layers) ?? int(c.num_layers) ?? int(c.n_layer);
  const numExperts = int(c.num_local_experts) ?? int(c.num_experts) ?? int(c.n_routed_experts) ?? int(c.moe_num_experts);
  const topK = int(c.num_experts_per_tok) ?? int(c.moe_topk) ?? int(c.top_k) ?? int(c.moe_k);
  let moeLayers: number[] | undefined;
  if (L !== undefined) {
    const all = Array.from({ length: L }, (_, i) => i);
    if (Array.isArray(c.moe_layers)) moeLayers = c.moe_layers.map((x) => Number(x));
    else if (int(c.first_k_dense_replace) !== undefined || (int(c.moe_layer_freq) !== undefined && c.n_routed_experts !== undefined)) {
      const k = int(c.first_k_dense_replace) ?? 0;
      const f = int(c.moe_layer_freq) ?? 1;
      moeLayers = all.filter((i) => i >= k && i % f === 0); // DeepSeek-V2/V3
    } else if (Array.isArray(c.mlp_only_layers) || int(c.decoder_sparse_step) !== undefined) {
      const dense = new Set((Array.isArray(c.mlp_only_layers) ? c.mlp_only_layers : []).map(Number));
      const s = int(c.decoder_sparse_step) ?? 1;
      moeLayers = all.filter((i) => !dense.has(i) && (i + 1) % s === 0); // Qwen2/3-MoE
    } else if (int(c.interleave_moe_layer_step) !== undefined) {
      const s = int(c.interleave_moe_layer_step)!;
      moeLayers = all.filter((i) => (i + 1) % s === 0); // Llama 4
    } else if (int(c.expert_layer_period) !== undefined) {
      const p = int(c.expert_layer_period)!;
      const o = int(c.expert_layer_offset) ?? 0;
      moeLayers = all.filter((i) => i % p === o); // Jamba
    } else moeLayers = all; // Mixtral, OLMoE, efmoe: every layer
    if (moeLayers.some((x) => !Number.isInteger(x) || x < 0 || x >= L)) throw new InputError(`${where}: MoE layer list ${JSON.stringify(moeLayers)} outside 0..${L - 1}`);
  }
  const scoring = typeof c.scoring_func === 'string' ? c.scoring_func : typeof c.moe_router_score_function === 'string' ? c.moe_router_score_function : undefined;
  const normTopk = typeof c.norm_topk_prob === 'boolean' ? c.norm_topk_prob : c.model_type === 'mixtral' ? true : undefined;
  return { numLayers: L, moeLayers, numExperts, topK, scoring, normTopk, config: full };
}

/** "1,3,5-9" -> [1,3,5,6,7,8,9] */
export function parseLayerList(s: string, what = '--moe-layers'): number[] {
  const out: number[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new InputError(`${what}: ${JSON.stringify(part)} is not a layer or a range a-b`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new InputError(`${what}: range ${part} ends before it starts`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  for (let i = 1; i < out.length; i++) if (out[i] <= out[i - 1]) throw new InputError(`${what}: layers must be ascending and distinct`);
  if (out.length === 0) throw new InputError(`${what}: empty list`);
  return out;
}

/** MoE ordinal -> decoder layer (identity when no map is known). */
export function decoderLayer(map: number[] | undefined, ordinal: number, where: string): number {
  if (!map) return ordinal;
  if (ordinal < 0 || ordinal >= map.length) throw new InputError(`${where}: MoE layer ordinal ${ordinal} but the model has ${map.length} MoE layers (--moe-layers/--config)`);
  return map[ordinal];
}
