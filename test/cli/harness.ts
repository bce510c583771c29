import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin/moescope');
/** A 2-layer, 4-expert efmoe checkpoint (config.json, tokenizer.json, model.safetensors). */
export const TINY_MODEL = join(ROOT, 'test/fixtures/efmoe-tiny-k1');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the real CLI (bin/moescope) in a child process. */
export function cli(args: string[], opts: { cwd?: string; timeout?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: opts.timeout ?? 120_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export function cliAsync(args: string[], opts: { cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Exit 2, exactly one stderr line `moescope: error: ...` matching `pattern`, no stack trace. */
export function assertInputError(r: CliResult, pattern: RegExp, what = ''): void {
  assert.equal(r.code, 2, `${what} exit code ${r.code} (signal ${r.signal}); stderr:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^\S+ \[[#.]+\] /.test(l));
  assert.equal(lines.length, 1, `${what} one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^moescope: error: /, what);
  assert.match(lines[0], pattern, what);
  assert.doesNotMatch(r.stderr, /\n\s+at .*:\d+/, `${what} no stack trace`);
}

/** Every file under `dir` (recursively) with its bytes, to show that a failed run left it alone. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p, rel + f + '/');
      else out[rel + f] = `${st.size}:${st.mtimeMs}:${readFileSync(p).toString('base64').slice(0, 4096)}`;
    }
  };
  if (existsSync(dir)) walk(dir, '');
  return out;
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `moescope-${tag}-`));
}

/** A private copy of the tiny checkpoint (tests may damage it). */
export function copyModel(dir: string, name = 'model'): string {
  const d = join(dir, name);
  cpSync(TINY_MODEL, d, { recursive: true });
  return d;
}

export function writeJson(path: string, value: unknown): string {
  writeFileSync(path, JSON.stringify(value, null, 2));
  return path;
}
