import { mkdirSync, renameSync, rmSync, writeFileSync, existsSync, statSync, accessSync, constants } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { InputError } from './errors.js';

function tmpName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}`);
}

/** Fail early, before any work, when an output's parent folder cannot be written. */
export function checkWritableParent(path: string): void {
  const parent = dirname(resolve(path));
  try {
    mkdirSync(parent, { recursive: true });
    accessSync(parent, constants.W_OK);
  } catch {
    throw new InputError(`${path}: cannot write here (folder ${parent} is not writable)`);
  }
}

/** Write a file under a temporary name, then rename it into place. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  checkWritableParent(path);
  const tmp = tmpName(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Build an output folder under a temporary name and move it into place only when `fill`
 * succeeds, so that a failed run leaves neither a partial folder nor a damaged previous one.
 */
export async function writeDirAtomic<T>(path: string, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  checkWritableParent(path);
  if (existsSync(path) && !statSync(path).isDirectory()) {
    throw new InputError(`${path}: exists and is not a folder`);
  }
  const tmp = tmpName(path);
  mkdirSync(tmp, { recursive: true });
  let result: T;
  try {
    result = await fill(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = existsSync(path) ? tmpName(path) + '.old' : null;
  if (old) renameSync(path, old);
  renameSync(tmp, path);
  if (old) rmSync(old, { recursive: true, force: true });
  return result;
}
