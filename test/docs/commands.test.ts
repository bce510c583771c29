import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/**
 * Every command a user is told to type in README.md and docs/*.md runs as written from a checkout.
 * Commands are the lines of ```sh blocks that start with `./bin/moescope` (continuations with a
 * trailing backslash joined). They run in order, per file, in a scratch folder that links the
 * checkout's files, so outputs never land in the checkout. A command that is still running when
 * its time is up without having failed (`serve`, a long `train`) counts as running as written.
 */
const root = fileURLToPath(new URL('../../../', import.meta.url));
const LINKED = ['bin', 'dist', 'node_modules', 'package.json', 'models', 'configs', 'examples', 'python', 'docs', 'test'];

function docFiles(): string[] {
  const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f));
  return ['README.md', ...docs];
}

interface DocCommand { file: string; line: number; text: string }

export function shellCommands(file: string, markdown: string): DocCommand[] {
  const out: DocCommand[] = [];
  let inSh = false;
  let pending: DocCommand | null = null;
  markdown.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (/^```/.test(line)) {
      inSh = !inSh && /^```(sh|bash|shell)\b/.test(line);
      pending = null;
      return;
    }
    if (!inSh) return;
    if (pending) {
      pending.text += ' ' + line.replace(/\\$/, '').trim();
      if (!line.endsWith('\\')) { out.push(pending); pending = null; }
      return;
    }
    // `npm ci && npm run build && ./bin/moescope demo`: the moescope part runs (install is CI's job)
    const cmd = line.replace(/\s+#.*$/, '').split('&&').map((s) => s.trim()).filter((s) => s.startsWith('./bin/moescope')).join(' && ');
    if (!cmd) return;
    const c = { file, line: i + 1, text: cmd.replace(/\\$/, '').trim() };
    if (cmd.endsWith('\\')) pending = c; else out.push(c);
  });
  return out;
}

function run(cmd: string, cwd: string, limitMs: number): Promise<{ code: number | null; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const p = spawn('bash', ['-c', cmd], { cwd, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    let timedOut = false;
    const t = setTimeout(() => { timedOut = true; try { process.kill(-p.pid!, 'SIGTERM'); } catch { /* gone */ } }, limitMs);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stderr, timedOut }); });
  });
}

test('docs never tell users to run a bare `moescope` that is not on PATH', () => {
  for (const file of docFiles()) {
    const md = readFileSync(join(root, file), 'utf8');
    let inSh = false;
    md.split('\n').forEach((line, i) => {
      if (/^```/.test(line)) { inSh = !inSh && /^```(sh|bash|shell)\b/.test(line); return; }
      if (inSh) assert.doesNotMatch(line, /^\s*moescope\s/, `${file}:${i + 1}: use ./bin/moescope or npx moescope`);
    });
  }
});

test('every ./bin/moescope command in README and docs runs as written', { timeout: 30 * 60_000 }, async () => {
  const all = docFiles().flatMap((f) => shellCommands(f, readFileSync(join(root, f), 'utf8')));
  assert.ok(all.length >= 5, `found only ${all.length} documented commands`);
  for (const file of new Set(all.map((c) => c.file))) {
    const scratch = mkdtempSync(join(tmpdir(), 'moescope-doc-'));
    for (const name of LINKED) if (existsSync(join(root, name))) symlinkSync(join(root, name), join(scratch, name));
    try {
      for (const c of all.filter((x) => x.file === file)) {
        const long = /\b(serve|train)\b/.test(c.text);
        const r = await run(c.text, scratch, long ? 20_000 : 180_000);
        const ok = r.code === 0 || (r.timedOut && long && !/moescope: error/.test(r.stderr));
        assert.ok(ok, `${c.file}:${c.line}: \`${c.text}\` ${r.timedOut ? 'did not finish' : `exited ${r.code}`}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
});
