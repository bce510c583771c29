import test from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { moescope, root, tmp } from './helpers.js';

// What the capture helper's manifest (version 2) adds per sample - images, token strings, image
// grids - is checked before use: a bad entry stops `moescope import hf` with one line naming the
// manifest or file, exit 2, and no trace folder.

const VLM = join(root, 'test/fixtures/families/qwen3_vl_moe-4x/capture');

function broken(edit: (m: { batches: Record<string, unknown>[] }, dir: string) => void): string {
  const dir = join(tmp('moescope-famerr-'), 'capture');
  cpSync(VLM, dir, { recursive: true });
  const p = join(dir, 'moescope_routing.json');
  const m = JSON.parse(readFileSync(p, 'utf8')) as { batches: Record<string, unknown>[] };
  edit(m, dir);
  writeFileSync(p, JSON.stringify(m));
  return dir;
}

const cases: [string, (m: { batches: Record<string, unknown>[] }, dir: string) => void, RegExp][] = [
  ['an image outside the capture folder', (m) => ((m.batches[0].images as string[][])[0] = ['../etc.png']), /image "\.\.\/etc\.png" must be a file name in the capture folder/],
  ['a missing image', (m) => ((m.batches[0].images as string[][])[0] = ['gone.png']), /gone\.png: image listed in the manifest is missing/],
  ['an image that is not PNG', (m, dir) => writeFileSync(join(dir, 'batch-000000.s0.i0.png'), 'GIF89a...'), /batch-000000\.s0\.i0\.png: not a PNG file/],
  ['token strings of the wrong length', (m) => (m.batches[1].tokens as string[][])[0].pop(), /"tokens" of sample 0 has \d+ strings but input_ids has \d+ positions/],
  ['tokens that are not strings', (m) => ((m.batches[1].tokens as unknown[][])[0][0] = 7), /"tokens" of sample 0 must be a list of strings/],
  ['a grid that is not [t, h, w]', (m) => ((m.batches[1].image_grids as unknown[][])[0] = [[1, 2]]), /"image_grids" of sample 0 must be a list of \[t, h, w\] positive integers/],
  ['more grids than images', (m) => (m.batches[1].image_grids as number[][][])[0].push([1, 2, 2]), /sample 0 has 1 images but 2 image grids/],
];

for (const [what, edit, message] of cases) {
  test(`import hf refuses ${what}`, () => {
    const dir = broken(edit);
    const out = join(dir, '..', 'trace');
    const r = moescope(['import', 'hf', dir, '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^moescope: error: /);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
    assert.ok(!existsSync(out), 'no trace folder');
  });
}
