import { accessSync, constants, lstatSync, mkdirSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InputError } from './errors.js';
import { type OutputKind, classifyOutput, cleanStaleTemps, recheckOutput, tempNameFor } from './output-guard.js';

/**
 * Fail early, before any work, when an output cannot be written: its nearest existing ancestor
 * must be a writable folder. Creates nothing (a failed run leaves no new folders behind).
 */
export function checkWritableParent(path: string): void {
  let cur = dirname(resolve(path));
  for (;;) {
    let st;
    try {
      st = statSync(cur);
    } catch {
      const up = dirname(cur);
      if (up === cur) break;
      cur = up;
      continue;
    }
    if (!st.isDirectory()) throw new InputError(`${path}: cannot write here (${cur} is not a folder)`);
    try {
      accessSync(cur, constants.W_OK);
    } catch {
      throw new InputError(`${path}: cannot write here (folder ${cur} is not writable)`);
    }
    return;
  }
  throw new InputError(`${path}: cannot write here`);
}

/** Create the missing parent folders of `path`; returns them, deepest first, so a failed run can remove them. */
function createParents(path: string): string[] {
  checkWritableParent(path);
  const missing: string[] = [];
  for (let d = dirname(resolve(path)); ; d = dirname(d)) {
    try {
      lstatSync(d);
      break;
    } catch {
      missing.push(d);
      if (dirname(d) === d) break;
    }
  }
  for (const d of [...missing].reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new InputError(`${path}: cannot create folder ${d} (${(e as NodeJS.ErrnoException).code})`);
    }
  }
  return missing;
}

/** Undo createParents: remove the folders this run created, when still empty. */
function removeParents(created: string[]): void {
  for (const d of created) {
    try {
      rmdirSync(d);
    } catch {
      return; // not empty (another run uses it) or already gone
    }
  }
}

/** Write a file under a temporary name, then rename it into place. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  recheckOutput(path, 'file');
  const created = createParents(path);
  cleanStaleTemps(path);
  const tmp = tempNameFor(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    removeParents(created);
    throw wrapFsError(path, e);
  }
}

/**
 * Build an output folder under a temporary name and move it into place only when `fill`
 * succeeds, so that a failed run leaves neither a partial folder nor a damaged previous one.
 * The folder replaced must be our output of the same kind (src/util/output-guard.ts); the
 * check runs again just before the rename, since another run may have written it meanwhile.
 * Concurrent runs into one folder all succeed, the last one's output stays.
 */
export async function writeDirAtomic<T>(path: string, fill: (tmpDir: string) => Promise<T>, kind?: OutputKind): Promise<T> {
  if (kind) recheckOutput(path, kind);
  const created = createParents(path);
  cleanStaleTemps(path);
  const tmp = tempNameFor(path);
  let result: T;
  try {
    mkdirSync(tmp);
    result = await fill(tmp);
    const made = classifyOutput(tmp);
    commitDir(tmp, path, kind ?? ((made.kind === 'trace' || made.kind === 'demo' || made.kind === 'checkpoint' || made.kind === 'train') ? made.kind : 'trace'));
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    removeParents(created);
    throw e;
  }
  return result;
}

function commitDir(tmp: string, path: string, kind: OutputKind): void {
  for (let attempt = 0; ; attempt++) {
    recheckOutput(path, kind);
    const old = tempNameFor(path) + '.old';
    let moved = false;
    try {
      renameSync(path, old);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    try {
      renameSync(tmp, path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (moved) rmSync(old, { recursive: true, force: true });
      // another run put its folder there between our two renames: check it again and retry
      if ((code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') && attempt < 20) continue;
      throw new InputError(`${path}: could not move the finished output into place (${code}); another run may be writing it`);
    }
    if (moved) rmSync(old, { recursive: true, force: true });
    return;
  }
}

/** A raw fs error about an output becomes a one-line input error naming the path. */
function wrapFsError(path: string, e: unknown): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && typeof err.syscall === 'string' && !(e instanceof InputError)) {
    return new InputError(`${path}: cannot write (${err.code}${err.path && err.path !== path ? ` on ${err.path}` : ''})`);
  }
  return e;
}
