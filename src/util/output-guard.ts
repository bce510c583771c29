import { existsSync, lstatSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep, isAbsolute } from 'node:path';
import { InputError } from './errors.js';

/**
 * The one rule for every command that writes (SPEC §6): a folder named by `--out` is replaced
 * only when it is a moescope output of the same kind; anything else is refused with exit 2 unless
 * `--force`. An input is never written to, whatever the flags. Commands call `guardOutput` before
 * any work (fail early); `writeDirAtomic` / `writeFileAtomic` check again just before the rename,
 * since another run may have created the folder meanwhile.
 */
export type OutputKind = 'trace' | 'demo' | 'train' | 'checkpoint' | 'file';

/**
 * What each kind of folder always has (its marker) and what else it may hold. A folder holding
 * any other entry is "a folder with other files" and is refused: replacing it would delete them.
 */
const DEMO_FILES = ['figure.svg', 'figure.png', 'figure.vl.json', 'allocation.csv', 'metrics.json'];
const TRAIN_FILES = ['train-config.json', 'train-log.jsonl', 'train-state.safetensors', 'eval.json', 'loss-curve.svg', 'loss-curve.png', 'model', 'snapshots'];
const CHECKPOINT_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

/** What an existing path is, as far as --out is concerned. */
export type Existing = { kind: 'missing' } | { kind: 'empty' } | { kind: 'file' } | { kind: OutputKind } | { kind: 'other'; why: string };

function isTraceMeta(dir: string): { ok: boolean; listed: Set<string> } {
  const listed = new Set<string>();
  try {
    const p = join(dir, 'meta.json');
    if (!lstatSync(p).isFile() || statSync(p).size > 64 * 1024 * 1024) return { ok: false, listed };
    const meta = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    if (typeof meta !== 'object' || meta === null || typeof meta.moescope_version !== 'string') return { ok: false, listed };
    const files = meta.files;
    if (Array.isArray(files)) for (const f of files) if (typeof f === 'string') listed.add(f.split('/')[0]);
    if (files && typeof files === 'object' && !Array.isArray(files)) for (const f of Object.keys(files)) listed.add(f.split('/')[0]);
    const routing = existsSync(join(dir, 'routing.parquet')) || existsSync(join(dir, 'routing'));
    return { ok: routing, listed };
  } catch {
    return { ok: false, listed };
  }
}

/** A trace may hold routing/aggregate Parquet files and folders of them, and files meta.json lists. */
function traceEntry(dir: string, name: string, listed: Set<string>): boolean {
  if (name === 'meta.json' || listed.has(name) || name.endsWith('.parquet')) return true;
  const p = join(dir, name);
  try {
    if (!lstatSync(p).isDirectory()) return false;
    let n = 0;
    const walk = (d: string): boolean => {
      for (const f of readdirSync(d)) {
        if (++n > 100_000) return false;
        const q = join(d, f);
        const st = lstatSync(q);
        if (st.isDirectory()) {
          if (!walk(q)) return false;
        } else if (!(st.isFile() && f.endsWith('.parquet'))) return false;
      }
      return true;
    };
    return walk(p);
  } catch {
    return false;
  }
}

/** Classify an existing path: missing, an empty folder, a file, one of our outputs, or something else. */
export function classifyOutput(path: string): Existing {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return { kind: 'missing' };
  }
  if (st.isSymbolicLink()) return { kind: 'other', why: 'is a symbolic link' };
  if (!st.isDirectory()) return st.isFile() ? { kind: 'file' } : { kind: 'other', why: 'is not a regular file or folder' };
  let names: string[];
  try {
    names = readdirSync(path);
  } catch {
    return { kind: 'other', why: 'cannot be read' };
  }
  if (names.length === 0) return { kind: 'empty' };
  const foreign = (allowed: (n: string) => boolean) => names.filter((n) => !allowed(n) && !isTempName(n));
  const trace = isTraceMeta(path);
  if (trace.ok) {
    const isDemo = ['metrics.json', 'allocation.csv'].every((f) => names.includes(f));
    const extra = foreign((n) => traceEntry(path, n, trace.listed) || (isDemo && DEMO_FILES.includes(n)));
    if (extra.length) return { kind: 'other', why: `holds other files (${describeNames(extra)})` };
    return { kind: isDemo ? 'demo' : 'trace' };
  }
  if (names.includes('train-config.json') && names.includes('train-log.jsonl')) {
    const extra = foreign((n) => TRAIN_FILES.includes(n));
    if (extra.length) return { kind: 'other', why: `holds other files (${describeNames(extra)})` };
    return { kind: 'train' };
  }
  if (CHECKPOINT_FILES.every((f) => names.includes(f))) {
    const extra = foreign((n) => CHECKPOINT_FILES.includes(n));
    return extra.length ? { kind: 'other', why: `is a checkpoint with other files (${describeNames(extra)})` } : { kind: 'checkpoint' };
  }
  return { kind: 'other', why: `holds other files (${describeNames(names)})` };
}

function describeNames(names: string[]): string {
  const s = names.slice(0, 3).join(', ');
  return names.length > 3 ? `${s}, ... ${names.length} entries` : s;
}

const KIND_NAME: Record<string, string> = {
  trace: 'a trace folder', demo: 'a demo output folder', train: 'a training run folder', checkpoint: 'a checkpoint folder', file: 'a file',
};

/** The real path of p, or of its nearest existing ancestor joined with the rest (p may not exist yet). */
export function realish(p: string): string {
  let cur = resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return resolve(p);
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

/** a is b or lies inside b. */
function within(a: string, b: string): boolean {
  const r = relative(b, a);
  return r === '' || (!r.startsWith('..' + sep) && r !== '..' && !isAbsolute(r));
}

export interface GuardOptions {
  /** Files and folders this run reads: never replaced, never inside --out (a new output inside an input folder is fine). */
  inputs?: string[];
  /** Replace an existing folder that is not our output of the same kind. */
  force?: boolean;
  /** The flag that named the path, for messages (default --out). */
  flag?: string;
}

interface Approval {
  kind: OutputKind;
  inputs: string[];
  force: boolean;
}
const approvals = new Map<string, Approval>();

/** Forget approvals (between in-process runs of the CLI, e.g. in tests). */
export function resetOutputGuard(): void {
  approvals.clear();
}

/**
 * Check that `out` may receive an output of `kind`; throws a one-line InputError otherwise. Also
 * removes stale temporaries left beside it by killed runs. Call before any work.
 */
export function guardOutput(out: string, kind: OutputKind, opts: GuardOptions = {}): void {
  const inputs = (opts.inputs ?? []).filter((i) => i !== '').map(realish);
  const force = opts.force === true;
  checkOutput(out, kind, inputs, force, opts.flag ?? '--out');
  approvals.set(resolve(out), { kind, inputs, force });
  cleanStaleTemps(out);
}

/** The check at rename time, with what guardOutput approved (or the strict default). */
export function recheckOutput(out: string, kind: OutputKind): void {
  const a = approvals.get(resolve(out));
  checkOutput(out, a?.kind ?? kind, a?.inputs ?? [], a?.force ?? false, '--out');
}

function checkOutput(out: string, kind: OutputKind, inputs: string[], force: boolean, flag: string): void {
  if (out === '') throw new InputError(`${flag}: empty path`);
  const real = realish(out);
  const cwd = realish(process.cwd());
  const fail = (what: string): never => {
    throw new InputError(`${flag} ${out}: ${what}`);
  };
  if (dirname(real) === real) fail('is the root folder; choose a new folder for the output');
  for (const i of inputs) {
    if (real === i) fail('is an input of this run; an input is never written to');
    if (within(i, real)) fail(`contains an input of this run (${i}); choose another output`);
  }
  const ex = classifyOutput(out);
  if (kind === 'file') {
    if (ex.kind === 'missing' || ex.kind === 'file') return;
    if (lstatOk(out)?.isDirectory()) fail('is a folder; give a file name');
    fail('exists and is not a regular file');
  }
  if (within(cwd, real)) fail(real === cwd ? 'is the working folder; choose a new folder for the output' : 'contains the working folder; choose a new folder for the output');
  switch (ex.kind) {
    case 'missing':
    case 'empty':
      return;
    case 'file':
      if (force) return;
      return fail(`exists and is a file, not ${KIND_NAME[kind]} (pass --force to replace it)`);
    case 'other':
      if (force) return;
      return fail(`${ex.why}; moescope replaces only its own output of the same kind (pass --force to replace it)`);
    default:
      if (ex.kind === kind || force) return;
      return fail(`is ${KIND_NAME[ex.kind]}, not ${KIND_NAME[kind]}; moescope replaces only its own output of the same kind (pass --force to replace it)`);
  }
}

function lstatOk(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

// ---- temporary names -------------------------------------------------------------------------

const TEMP = /^\.(.+)\.tmp-(\d+)-[0-9a-z]+(?:\.old)?$/;

export function isTempName(name: string): boolean {
  return TEMP.test(name);
}

let tempCounter = 0;
/** `.NAME.tmp-PID-STAMP` beside `path`: same folder (so rename is atomic), hidden, and its pid says whether its run is alive. */
export function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}${(tempCounter++).toString(36)}`);
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove `.NAME.tmp-PID-*` entries beside `path` whose run (pid) is no longer alive. */
export function cleanStaleTemps(path: string): void {
  const dir = dirname(resolve(path));
  const name = basename(resolve(path));
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const m = TEMP.exec(e);
    if (!m || m[1] !== name) continue;
    if (alive(Number(m[2]))) continue;
    try {
      rmSync(join(dir, e), { recursive: true, force: true });
    } catch {
      // another run cleaning the same leftovers; nothing to do
    }
  }
}
