import { InputError } from '../util/errors.js';
import { parseJson } from '../util/json.js';
import { firstNonFinite } from '../util/limits.js';
import { type ModelConfig, parseModelConfig } from './config.js';
import { type Params, paramsFromTensors, paramsToTensors } from './params.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import { WordTokenizer } from './tokenizer.js';

/** A loaded efmoe checkpoint: config.json + tokenizer.json + model.safetensors (SPEC §1). */
export interface Checkpoint {
  config: ModelConfig;
  tokenizer: WordTokenizer;
  params: Params;
}

export interface CheckpointBytes {
  config: string; // config.json text
  tokenizer: string; // tokenizer.json text
  weights: Uint8Array; // model.safetensors
}


/** Parse and check a checkpoint from its three files' contents; `dir` names it in errors. Runs in the browser too. */
export function checkpointFromBytes(files: CheckpointBytes, dir: string): Checkpoint {
  const config = parseModelConfig(parseJson(`${dir}/config.json`, files.config), `${dir}/config.json`);
  const tokenizer = WordTokenizer.parse(parseJson(`${dir}/tokenizer.json`, files.tokenizer), `${dir}/tokenizer.json`);
  if (tokenizer.vocab.length > config.vocab_size) {
    throw new InputError(`${dir}/tokenizer.json: ${tokenizer.vocab.length} words but config.json has vocab_size ${config.vocab_size}`);
  }
  const { tensors } = readSafetensors(files.weights, `${dir}/model.safetensors`);
  // NaN or infinite weights would give NaN gates in a trace that looks fine: refuse them, naming the tensor
  for (const [name, t] of tensors) {
    const i = firstNonFinite(t.data);
    if (i >= 0) throw new InputError(`${dir}/model.safetensors: tensor ${name} holds ${t.data[i]} at index ${i}; weights must be finite`);
  }
  const params = paramsFromTensors(config, tensors, `${dir}/model.safetensors`);
  return { config, tokenizer, params };
}

export function checkpointToBytes(ck: Checkpoint): CheckpointBytes {
  return {
    config: JSON.stringify(ck.config, null, 2) + '\n',
    tokenizer: JSON.stringify(ck.tokenizer.toJSON()) + '\n',
    weights: writeSafetensors(paramsToTensors(ck.params), { format: 'pt', producer: 'moescope' }),
  };
}
