import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { moescope, root, tmp } from './helpers.js';

// Every `./bin/moescope import ...` line of docs/importers.md runs from a checkout on the files
// shipped in examples/import/ (its --out replaced by a temporary folder).

function commands(): string[] {
  const md = readFileSync(join(root, 'docs/importers.md'), 'utf8');
  const joined = md.replace(/\\\n\s*/g, '');
  return joined.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('./bin/moescope import '));
}

function split(cmd: string): string[] {
  return cmd.split(/\s+/).slice(1);
}

test('docs/importers.md: every worked example imports', () => {
  const cmds = commands();
  assert.ok(cmds.length >= 10, `${cmds.length} examples`);
  for (const c of cmds) {
    const args = split(c);
    const o = args.indexOf('--out');
    args[o + 1] = join(tmp(), 'trace');
    const r = moescope(args);
    assert.equal(r.code, 0, `${c}\n${r.stderr}`);
    assert.match(r.stdout, /^imported \d+ routing rows/, c);
  }
});
