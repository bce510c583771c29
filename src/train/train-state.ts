import { InputError } from '../util/errors.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import type { AdamWState } from './adamw.js';

/**
 * Everything a resumed run needs, in ONE file so that it is replaced atomically: the parameters,
 * AdamW's two moments and its update count, and the training config it belongs to. The data
 * position is the update count (batches are a function of the step).
 */
export interface TrainState {
  params: Float32Array;
  opt: AdamWState;
  config: Record<string, unknown>;
}

export const TRAIN_STATE_FILE = 'train-state.safetensors';

export function encodeTrainState(s: TrainState): Uint8Array {
  const n = s.params.length;
  return writeSafetensors(
    [
      ['params', { shape: [n], data: s.params }],
      ['adamw.m', { shape: [n], data: s.opt.m }],
      ['adamw.v', { shape: [n], data: s.opt.v }],
    ],
    { format: 'moescope-train-state', step: String(s.opt.t), config: JSON.stringify(s.config) },
  );
}

export function decodeTrainState(bytes: Uint8Array, where: string): TrainState {
  const { tensors, metadata } = readSafetensors(bytes, where);
  const get = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new InputError(`${where}: missing tensor ${name} (not a moescope training state)`);
    return t.data;
  };
  const params = get('params');
  const m = get('adamw.m');
  const v = get('adamw.v');
  if (m.length !== params.length || v.length !== params.length) throw new InputError(`${where}: optimizer moments do not match the parameters`);
  const t = Number(metadata.step);
  if (!Number.isInteger(t) || t < 0) throw new InputError(`${where}: bad step ${JSON.stringify(metadata.step)}`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(metadata.config ?? '');
  } catch {
    throw new InputError(`${where}: missing or bad training config in the metadata`);
  }
  return { params, opt: { m, v, t }, config };
}
