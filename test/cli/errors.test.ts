import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../../', import.meta.url));
export function moescope(args: string[], opts: { cwd?: string; input?: string } = {}) {
  const r = spawnSync(process.execPath, [join(root, 'bin/moescope'), ...args], { cwd: opts.cwd ?? root, encoding: 'utf8', input: opts.input, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('usage errors: one line, exit 2, no stack trace', () => {
  for (const args of [['no-such-command'], ['capture', '--no-such-flag']]) {
    const r = moescope(args);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^moescope: error: /);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  }
});

test('--help works for the program and every SPEC command', () => {
  const top = moescope(['--help']);
  assert.equal(top.code, 0);
  for (const c of ['demo', 'capture', 'analyze', 'plot', 'train', 'import', 'serve']) {
    assert.match(top.stdout, new RegExp(`\\b${c}\\b`));
    const r = moescope([c, '--help']);
    assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: moescope ${c}`));
  }
});

test('model code imports nothing from Node, so the browser runs the same files', () => {
  const dir = join(root, 'src/model');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(dir);
  assert.ok(files.length >= 6);
  for (const f of files) {
    const src = readFileSync(f, 'utf8');
    assert.doesNotMatch(src, /from ['"](node:|fs|path|os|child_process|worker_threads)['"/]/, f);
    assert.doesNotMatch(src, /\bprocess\.|\bBuffer\b|\brequire\(/, f);
  }
});

test('a reader that stops early (`moescope ... | head`) gets no stack trace: the rest of the printout goes nowhere', async () => {
  const { spawn } = await import('node:child_process');
  for (const args of [['--help'], ['demo', '--help']]) {
    const p = spawn(process.execPath, [join(root, 'bin/moescope'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.destroy(); // the read end closed before the first write: every write is EPIPE
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => p.on('close', r));
    assert.equal(code, 0, err);
    assert.doesNotMatch(err, /EPIPE|\n\s+at /);
  }
});
