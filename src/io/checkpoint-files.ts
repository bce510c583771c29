import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../util/errors.js';
import { writeDirAtomic } from '../util/atomic.js';
import { type Checkpoint, checkpointFromBytes, checkpointToBytes } from '../model/checkpoint.js';

/** The checkpoint bundled with the package (`--model` default). */
export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../models/efmoe-shapes', import.meta.url));

export const CHECKPOINT_FILES = ['config.json', 'tokenizer.json', 'model.safetensors'] as const;

export function loadCheckpoint(dir: string = DEFAULT_MODEL_DIR): Checkpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`${dir}: no such checkpoint folder`);
  for (const f of CHECKPOINT_FILES) {
    if (!existsSync(join(dir, f))) throw new InputError(`${dir}: missing ${f}`);
  }
  return checkpointFromBytes(
    {
      config: readFileSync(join(dir, 'config.json'), 'utf8'),
      tokenizer: readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
      weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    },
    dir,
  );
}

/** Write a checkpoint folder atomically (other files, e.g. a training log, may be added by `extra`). */
export async function saveCheckpoint(dir: string, ck: Checkpoint, extra?: (tmpDir: string) => void): Promise<void> {
  const bytes = checkpointToBytes(ck);
  await writeDirAtomic(dir, async (tmp) => {
    writeFileSync(join(tmp, 'config.json'), bytes.config);
    writeFileSync(join(tmp, 'tokenizer.json'), bytes.tokenizer);
    writeFileSync(join(tmp, 'model.safetensors'), bytes.weights);
    extra?.(tmp);
  });
}
