import { InputError } from '../util/errors.js';
import { TensorFile, isFloatDtype } from './tensor-file.js';

/**
 * e_score_correction_bias per decoder layer, from a safetensors file: a checkpoint shard of the
 * model (`model.layers.{i}.mlp.gate.e_score_correction_bias` in DeepSeek-V3 / GLM-4.5,
 * `model.layers.{i}.block_sparse_moe.e_score_correction_bias` in MiniMax-M2; only the header and
 * these small tensors are read) or a file of `e_score_correction_bias.{i}` tensors.
 */
export interface BiasTable {
  get(layer: number, E: number, where: string): Float32Array;
}

const NAME = /(?:^|\.)layers\.(\d+)\.(?:.*\.)?e_score_correction_bias$|^e_score_correction_bias\.(\d+)$/;

export function routerBiasFor(path: string): BiasTable {
  const tf = TensorFile.safetensors(path);
  const byLayer = new Map<number, Float32Array>();
  try {
    for (const [name, info] of tf.tensors) {
      const m = NAME.exec(name);
      if (!m) continue;
      if (name.includes('mtp')) continue;
      const l = Number(m[1] ?? m[2]);
      if (!isFloatDtype(info.dtype) || info.shape.length !== 1) throw new InputError(`${info.where}: e_score_correction_bias must be a 1-d float tensor, got ${info.dtype} [${info.shape.join(', ')}]`);
      if (info.shape[0] > 65536) throw new InputError(`${info.where}: ${info.shape[0]} experts is too many`);
      const v = tf.readAll(info) as Float32Array;
      for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new InputError(`${info.where}: value ${v[i]} at ${i} is not a finite number`);
      byLayer.set(l, Float32Array.from(v));
    }
  } finally {
    tf.close();
  }
  if (byLayer.size === 0) throw new InputError(`${path}: no e_score_correction_bias tensors (expected model.layers.{i}...e_score_correction_bias or e_score_correction_bias.{i})`);
  return {
    get(layer, E, where) {
      const b = byLayer.get(layer);
      if (!b) throw new InputError(`${where}: ${path} has no e_score_correction_bias for decoder layer ${layer} (it has layers ${[...byLayer.keys()].sort((a, c) => a - c).join(',')})`);
      if (b.length !== E) throw new InputError(`${where}: e_score_correction_bias of layer ${layer} has ${b.length} values for ${E} experts`);
      return b;
    },
  };
}
