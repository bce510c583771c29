import { InputError } from '../util/errors.js';
import { type ModelConfig, dims } from './config.js';
import { Rng } from './rng.js';
import type { Tensor } from './safetensors.js';

/** One layer's weights: views into the flat parameter buffer. */
export interface LayerParams {
  inputNorm: Float32Array; // [C]
  wq: Float32Array; wk: Float32Array; wv: Float32Array; wo: Float32Array; // [C, C]
  qNorm: Float32Array; kNorm: Float32Array; // [hd]
  postNorm: Float32Array; // [C]
  router: Float32Array; // [E, C]
  w1: Float32Array[]; w3: Float32Array[]; // E x [F, C]
  w2: Float32Array[]; // E x [C, F]
}

export interface Params {
  flat: Float32Array; // all parameters, in SPEC tensor order
  byName: Map<string, { shape: number[]; view: Float32Array }>;
  embedTokens: Float32Array; // [V, C]
  patchW: Float32Array; // [C, patchDim]
  patchB: Float32Array; // [C]
  layers: LayerParams[];
  norm: Float32Array; // [C]
  lmHead: Float32Array; // [V, C]
}

/** SPEC §1 tensor names and shapes, in the order they are laid out and written. */
export function paramSpecs(config: ModelConfig): { name: string; shape: number[] }[] {
  const { L, C, hd, E, F, V, patchDim } = dims(config);
  const specs: { name: string; shape: number[] }[] = [
    { name: 'embed_tokens.weight', shape: [V, C] },
    { name: 'patch_embed.weight', shape: [C, patchDim] },
    { name: 'patch_embed.bias', shape: [C] },
  ];
  for (let i = 0; i < L; i++) {
    const p = `layers.${i}.`;
    specs.push({ name: p + 'input_layernorm.weight', shape: [C] });
    for (const m of ['q', 'k', 'v', 'o']) specs.push({ name: `${p}self_attn.${m}_proj.weight`, shape: [C, C] });
    specs.push({ name: p + 'self_attn.q_norm.weight', shape: [hd] });
    specs.push({ name: p + 'self_attn.k_norm.weight', shape: [hd] });
    specs.push({ name: p + 'post_attention_layernorm.weight', shape: [C] });
    specs.push({ name: p + 'block_sparse_moe.gate.weight', shape: [E, C] });
    for (let e = 0; e < E; e++) {
      const q = `${p}block_sparse_moe.experts.${e}.`;
      specs.push({ name: q + 'w1.weight', shape: [F, C] });
      specs.push({ name: q + 'w3.weight', shape: [F, C] });
      specs.push({ name: q + 'w2.weight', shape: [C, F] });
    }
  }
  specs.push({ name: 'norm.weight', shape: [C] });
  specs.push({ name: 'lm_head.weight', shape: [V, C] });
  return specs;
}

export function numParams(config: ModelConfig): number {
  return paramSpecs(config).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/** Lay out views over one flat buffer (new zeros unless given), e.g. for parameters or their gradients. */
export function createParams(config: ModelConfig, flat?: Float32Array): Params {
  const specs = paramSpecs(config);
  const total = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  const buf = flat ?? new Float32Array(total);
  if (buf.length !== total) throw new Error(`parameter buffer has ${buf.length} values, config needs ${total}`);
  const byName = new Map<string, { shape: number[]; view: Float32Array }>();
  let off = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    byName.set(s.name, { shape: s.shape, view: buf.subarray(off, off + n) });
    off += n;
  }
  const g = (name: string) => byName.get(name)!.view;
  const { L, E } = dims(config);
  const layers: LayerParams[] = [];
  for (let i = 0; i < L; i++) {
    const p = `layers.${i}.`;
    const ex = (e: number, w: string) => g(`${p}block_sparse_moe.experts.${e}.${w}.weight`);
    const range = [...Array(E).keys()];
    layers.push({
      inputNorm: g(p + 'input_layernorm.weight'),
      wq: g(p + 'self_attn.q_proj.weight'), wk: g(p + 'self_attn.k_proj.weight'),
      wv: g(p + 'self_attn.v_proj.weight'), wo: g(p + 'self_attn.o_proj.weight'),
      qNorm: g(p + 'self_attn.q_norm.weight'), kNorm: g(p + 'self_attn.k_norm.weight'),
      postNorm: g(p + 'post_attention_layernorm.weight'),
      router: g(p + 'block_sparse_moe.gate.weight'),
      w1: range.map((e) => ex(e, 'w1')), w3: range.map((e) => ex(e, 'w3')), w2: range.map((e) => ex(e, 'w2')),
    });
  }
  return {
    flat: buf, byName,
    embedTokens: g('embed_tokens.weight'), patchW: g('patch_embed.weight'), patchB: g('patch_embed.bias'),
    layers, norm: g('norm.weight'), lmHead: g('lm_head.weight'),
  };
}

/**
 * Deterministic initialisation: norms 1, biases 0, linear weights N(0, 0.02), residual output
 * projections (o_proj, w2) scaled by 1/sqrt(2L) as in GPT-2, routers N(0, routerStd) (default 0.02).
 */
export function initParams(config: ModelConfig, seed: number, routerStd = 0.02): Params {
  const params = createParams(config);
  const rng = new Rng(seed);
  const { L } = dims(config);
  for (const [name, { view }] of params.byName) {
    if (name.endsWith('norm.weight') || name.endsWith('layernorm.weight')) view.fill(1);
    else if (name.endsWith('.bias')) view.fill(0);
    else {
      const std = /o_proj|\.w2\./.test(name) ? 0.02 / Math.sqrt(2 * L) : /block_sparse_moe\.gate\./.test(name) ? routerStd : 0.02;
      for (let i = 0; i < view.length; i++) view[i] = rng.normal() * std;
    }
  }
  return params;
}

/** Check a checkpoint's tensors against the config: missing, extra or mis-shaped ones are errors. */
export function paramsFromTensors(config: ModelConfig, tensors: Map<string, Tensor>, where: string): Params {
  const specs = paramSpecs(config);
  const missing = specs.filter((s) => !tensors.has(s.name)).map((s) => s.name);
  if (missing.length) throw new InputError(`${where}: missing tensor${missing.length > 1 ? 's' : ''} ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}`);
  const known = new Set(specs.map((s) => s.name));
  const extra = [...tensors.keys()].filter((n) => !known.has(n));
  if (extra.length) throw new InputError(`${where}: unexpected tensor${extra.length > 1 ? 's' : ''} ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ` and ${extra.length - 3} more` : ''}`);
  const params = createParams(config);
  for (const s of specs) {
    const t = tensors.get(s.name)!;
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new InputError(`${where}: tensor ${s.name} has shape [${t.shape.join(', ')}], config needs [${s.shape.join(', ')}]`);
    }
    params.byName.get(s.name)!.view.set(t.data);
  }
  return params;
}

export function paramsToTensors(params: Params): [string, Tensor][] {
  return [...params.byName].map(([name, { shape, view }]) => [name, { shape, data: view }]);
}
