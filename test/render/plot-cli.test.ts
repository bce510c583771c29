import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { writeSyntheticTrace } from '../web/synthetic-trace.js';
import { artifact, ROOT } from './helpers.js';

const BIN = join(ROOT, 'bin', 'moescope');
const work = mkdtempSync(join(tmpdir(), 'moescope-plot-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

function plot(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'plot', ...args], { cwd: work, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const traces = new Map<number, Promise<string>>();
/** A synthetic trace (SQL-made, 24 layers) with E experts; text routed to the upper half, image to the lower, more with depth. */
function trace(E: number): Promise<string> {
  if (!traces.has(E)) {
    const dir = join(work, `trace-${E}`);
    traces.set(E, writeSyntheticTrace(dir, { samples: E === 256 ? 24 : 40, layers: 24, experts: E, topK: E === 8 ? 1 : 2, imageSize: 32, patchSize: 8 }).then(() => dir));
  }
  return traces.get(E)!;
}

for (const E of [8, 64, 256]) {
  test(`plot PNG at ${E} experts: readable at natural size (saved under test-artifacts/render)`, async () => {
    const out = join(work, `plot-${E}.png`);
    const r = plot([await trace(E), '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const png = decode(new Uint8Array(readFileSync(out)));
    copyFileSync(out, artifact(`plot-${E}-experts.png`));
    // 2x pixels; a 128-expert figure used to be 8,960 px wide
    assert.ok(png.width <= 2 * 1700, `${png.width} px wide`);
    assert.ok(png.height >= 2 * 250, `${png.height} px high`);
  });
}

test('plot --width --height --scale holds a 256-expert figure to a page and writes PDF and SVG too', async () => {
  const t = await trace(256);
  const png = join(work, 'page.png');
  let r = plot([t, '--out', png, '--width', '900', '--height', '700', '--scale', '1']);
  assert.equal(r.code, 0, r.stderr);
  const img = decode(new Uint8Array(readFileSync(png)));
  assert.ok(img.width <= 900 && img.height <= 700 && img.height >= 695, `${img.width}x${img.height}`);
  copyFileSync(png, artifact('plot-256-experts-page.png'));
  const pdf = join(work, 'page.pdf');
  r = plot([t, '--out', pdf, '--width', '900', '--layers', '0,23']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(pdf).subarray(0, 5).toString(), '%PDF-');
  copyFileSync(pdf, artifact('plot-256-experts.pdf'));
  if (existsSync('/usr/bin/pdftoppm')) {
    const conv = spawnSync('/usr/bin/pdftoppm', ['-png', '-r', '96', '-singlefile', pdf, artifact('plot-256-experts-pdf-page')]);
    assert.equal(conv.status, 0, String(conv.stderr));
  }
  const svg = join(work, 'page.svg');
  r = plot([t, '--out', svg, '--width', '900', '--normalize', 'group', '--layers', '23']);
  assert.equal(r.code, 0, r.stderr);
  const text = readFileSync(svg, 'utf8');
  assert.doesNotMatch(text, /<text\b/);
  assert.match(text, /aria-label="uniform k\/E = 2\/256"/);
});

test('plot --kind load / load-map / depth on a trace', async () => {
  const t = await trace(64);
  for (const kind of ['load', 'load-map', 'depth']) {
    const out = join(work, `kind-${kind}.png`);
    const r = plot([t, '--out', out, '--kind', kind]);
    assert.equal(r.code, 0, `${kind}: ${r.stderr}`);
    assert.ok(decode(new Uint8Array(readFileSync(out))).width > 300);
    copyFileSync(out, artifact(`plot-64-experts-${kind}.png`));
  }
});

test('bad flags and outputs: one error line, exit 2, nothing written, no folder created', async () => {
  const t = await trace(8);
  const error = (r: ReturnType<typeof plot>, re: RegExp) => {
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^moescope: error: .+\n$/);
    assert.match(r.stderr, re);
  };
  error(plot([t, '--out', join(work, 'a.png'), '--columns', '1000000000']), /--columns: 1000000000 is outside 1\.\.64/);
  error(plot([t, '--out', join(work, 'a.png'), '--columns', '2x']), /--columns: expected an integer/);
  error(plot([t, '--out', join(work, 'a.png'), '--width', '99999999999999999999']), /--width/);
  error(plot([t, '--out', join(work, 'a.png'), '--scale', 'big']), /--scale/);
  error(plot([t, '--out', join(work, 'a.tiff')]), /unknown figure format/);
  const folder = join(work, 'already-a-folder.png');
  mkdirSync(folder);
  writeFileSync(join(folder, 'keep.txt'), 'x');
  error(plot([t, '--out', folder]), /is a folder/);
  assert.ok(existsSync(join(folder, 'keep.txt')));
  // a failing run creates none of the missing parent folders of --out
  const missing = join(work, 'new-parent', 'deeper');
  error(plot([join(work, 'no-such-trace'), '--out', join(missing, 'fig.png')]), /no-such-trace/);
  assert.ok(!existsSync(join(work, 'new-parent')), 'no parent folder left behind');
  const t256 = await trace(256);
  error(plot([t256, '--out', join(missing, 'fig.png'), '--width', '150']), /--width 150: .*need.* at least \d+ px/);
  error(plot([t256, '--out', join(missing, 'fig.png'), '--labels', 'counts']), /--labels counts: bars are .* too narrow/);
  error(plot([await trace(64), '--out', join(missing, 'fig.png'), '--scale', '16']), /--scale 16: a PNG of \d+ x \d+ px is over the limit/);
  error(plot([t, '--out', join(missing, 'fig.png'), '--sort', 'size']), /--sort size/);
  assert.ok(!existsSync(join(work, 'new-parent')));
  // an existing good figure is not touched by a failing run; a good run makes the folders
  const ok = plot([t, '--out', join(missing, 'fig.png')]);
  assert.equal(ok.code, 0, ok.stderr);
  const before = readFileSync(join(missing, 'fig.png'));
  error(plot([t, '--out', join(missing, 'fig.png'), '--kind', 'router-entropy']), /router entropy/);
  assert.ok(readFileSync(join(missing, 'fig.png')).equals(before));
});
