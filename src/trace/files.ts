import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { InputError } from '../util/errors.js';
import type { FileRecord } from './meta.js';

/**
 * Files larger than this are checked by size only when reading: hashing them would cost as much as
 * scanning their rows, which analyze, plot and the dashboard avoid (they read the aggregates, which
 * are small and always hashed). 8 MiB hashes in a few tens of milliseconds. The routing rows get
 * this much in all, not per file: a large trace's shards are each small, and hashing every one at
 * open cost a millisecond a shard (~800 shards at 100M rows), which grew with the trace.
 */
export const HASH_CHECK_MAX_BYTES = 8 * 1024 * 1024;

function sizeOf(p: string): number | undefined {
  try {
    return statSync(p).size;
  } catch {
    return undefined;
  }
}

/** The routing rows' files of a trace (routing.parquet, routing/...), by their meta.json name. */
const isRoutingFile = (rel: string) => rel === 'routing.parquet' || rel.startsWith('routing/');

/** Characters DuckDB would read as a glob: trace paths are literal (SPEC §6), so they are refused. */
const GLOB = /[*?[\]{}]/;

export function checkLiteralPath(path: string): void {
  if (GLOB.test(path)) throw new InputError(`${path}: trace paths are literal; this one has a glob character (* ? [ ] { })`);
}

/**
 * The routing files of a trace folder: `routing.parquet`, or every `*.parquet` under `routing/`
 * (hive-style `key=value/` subfolders allowed), sorted. Only regular files are taken.
 */
export function listRoutingFiles(dir: string): { files: string[]; hive: boolean; display: string } {
  const single = join(dir, 'routing.parquet');
  const folder = join(dir, 'routing');
  const hasSingle = existsSync(single);
  const hasFolder = existsSync(folder) && statSync(folder).isDirectory();
  if (hasSingle && hasFolder) throw new InputError(`${dir}: has both routing.parquet and routing/ (a trace has one of them)`);
  if (hasSingle) {
    if (!statSync(single).isFile()) throw new InputError(`${single}: not a regular file`);
    return { files: [single], hive: false, display: single };
  }
  if (!hasFolder) throw new InputError(`${dir}: not a trace folder (no routing.parquet or routing/)`);
  const files: string[] = [];
  let hive = false;
  const walk = (d: string, depth: number) => {
    if (depth > 8) throw new InputError(`${d}: routing/ nests too deep`);
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        if (!name.includes('=')) throw new InputError(`${p}: routing/ subfolders must be hive-style key=value`);
        hive = true;
        walk(p, depth + 1);
      } else if (name.endsWith('.parquet')) {
        if (!statSync(p).isFile()) throw new InputError(`${p}: not a regular file`);
        files.push(p);
      }
    }
  };
  walk(folder, 0);
  if (files.length === 0) throw new InputError(`${folder}: no Parquet shards (routing/part-*.parquet)`);
  return { files, hive, display: folder + sep };
}

/** sha256File's read buffer, one for every file (a trace of many shards hashed each through a new MB was its peak memory). */
let hashBuffer: Buffer | null = null;

export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = (hashBuffer ??= Buffer.allocUnsafe(1 << 20));
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Every data file of a trace folder (all but meta.json and hidden temporaries), relative with '/' separators. */
export function traceDataFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && !(d === dir && name === 'meta.json')) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out;
}

/**
 * meta.json `files`: size and SHA-256 of every data file; `written` gives those of files hashed as
 * they were written (taken when the size on disk still agrees).
 */
export function recordFiles(dir: string, written?: ReadonlyMap<string, FileRecord>): Record<string, FileRecord> {
  const files: Record<string, FileRecord> = {};
  for (const rel of traceDataFiles(dir)) {
    const p = join(dir, ...rel.split('/'));
    const bytes = statSync(p).size, known = written?.get(rel);
    files[rel] = known && known.bytes === bytes ? { bytes, sha256: known.sha256 } : { bytes, sha256: sha256File(p) };
  }
  return files;
}

/**
 * Check the recorded files of a trace: each exists with its recorded size; hashes too when
 * `hashes` and hashing costs little: a file up to HASH_CHECK_MAX_BYTES, and of the routing rows'
 * files only the first that fit in that many bytes together (so a trace's open costs the same
 * however many shards it has). `only` limits the check to some files (e.g. those a command
 * reads). A damaged file is an InputError naming it.
 */
export function verifyFiles(dir: string, files: Record<string, FileRecord> | undefined, opts: { hashes: boolean; only?: (rel: string) => boolean }): void {
  if (!files) return;
  let routingHashed = 0;
  for (const [rel, rec] of Object.entries(files)) {
    if (opts.only && !opts.only(rel)) continue;
    const p = join(dir, ...rel.split('/'));
    const size = sizeOf(p);
    if (size === undefined) throw new InputError(`${p}: missing (listed in meta.json files)`);
    if (size !== rec.bytes) throw new InputError(`${p}: damaged (size ${size} bytes, meta.json records ${rec.bytes})`);
    if (!opts.hashes || size > HASH_CHECK_MAX_BYTES) continue;
    if (isRoutingFile(rel)) {
      if (routingHashed + size > HASH_CHECK_MAX_BYTES) continue;
      routingHashed += size;
    }
    if (sha256File(p) !== rec.sha256) throw new InputError(`${p}: damaged (SHA-256 differs from meta.json)`);
  }
}
