import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../util/errors.js';
import { writeDirAtomic } from '../util/atomic.js';
import { readInputFile, readInputText } from '../util/input-file.js';
import { parseJson } from '../util/json.js';
import { LIMITS } from '../util/limits.js';
import { parameterCount, parseModelConfig } from '../model/config.js';
import { type Checkpoint, checkpointFromBytes, checkpointToBytes } from '../model/checkpoint.js';

/** The checkpoint bundled with the package (`--model` default). */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../models/efmoe-shapes', import.meta.url));

export const CHECKPOINT_FILES = ['config.json', 'tokenizer.json', 'model.safetensors'] as const;

export function loadCheckpoint(dir: string = DEFAULT_MODEL_DIR): Checkpoint {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new InputError(`${dir}: no such checkpoint folder`);
  }
  if (!st.isDirectory()) throw new InputError(`${dir}: not a checkpoint folder (expected a folder with ${CHECKPOINT_FILES.join(', ')})`);
  for (const f of CHECKPOINT_FILES) {
    try {
      statSync(join(dir, f));
    } catch {
      throw new InputError(`${dir}: missing ${f}`);
    }
  }
  // regular files only, each bounded before it is read: the weights by what the config says they hold
  const config = readInputText(join(dir, 'config.json'), LIMITS.jsonBytes, 'config file');
  const tokenizer = readInputText(join(dir, 'tokenizer.json'), LIMITS.jsonBytes, 'tokenizer file');
  const params = parameterCount(parseModelConfig(parseJson(`${dir}/config.json`, config), `${dir}/config.json`));
  const weights = readInputFile(join(dir, 'model.safetensors'), 8 + LIMITS.headerBytes + 4 * params, 'safetensors file');
  return checkpointFromBytes({ config, tokenizer, weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) }, dir);
}

/** Write a checkpoint folder atomically (other files, e.g. a training log, may be added by `extra`). */
export async function saveCheckpoint(dir: string, ck: Checkpoint, extra?: (tmpDir: string) => void): Promise<void> {
  const bytes = checkpointToBytes(ck);
  await writeDirAtomic(dir, async (tmp) => {
    writeFileSync(join(tmp, 'config.json'), bytes.config);
    writeFileSync(join(tmp, 'tokenizer.json'), bytes.tokenizer);
    writeFileSync(join(tmp, 'model.safetensors'), bytes.weights);
    extra?.(tmp);
  }, 'checkpoint');
}
