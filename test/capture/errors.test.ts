import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { paramsToTensors } from '../../src/model/params.js';
import { writeSafetensors } from '../../src/model/safetensors.js';
import { runCli, tinyCheckpoint, writeTinyModel } from './helpers.js';
import { writeTestPng } from '../data/png-writer.js';

let dir = '';
let model = '';
let good = '';
let snapshot: Record<string, string> = {};

/** The bytes and mtimes of a folder's files, to show that a failed run left it alone. */
function snap(d: string): Record<string, string> {
  return Object.fromEntries(readdirSync(d, { recursive: true, encoding: 'utf8' }).sort().filter((f) => statSync(join(d, f)).isFile())
    .map((f) => [f, readFileSync(join(d, f)).toString('base64') + '@' + statSync(join(d, f)).mtimeMs]));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moescope-capture-err-'));
  model = join(dir, 'model');
  await writeTinyModel(model);
  good = join(dir, 'out');
  const r = runCli(['capture', '--model', model, '--data', 'shapes:3', '--out', good]);
  assert.equal(r.code, 0, r.stderr);
  snapshot = snap(good);
  // data files
  mkdirSync(join(dir, 'img'));
  writeFileSync(join(dir, 'img', 'ok.png'), writeTestPng({ width: 4, height: 4, colorType: 2, depth: 8, samples: new Array(48).fill(100) }));
  writeFileSync(join(dir, 'img', 'not.png'), deflateSync(Buffer.from('definitely not a png')));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Run a capture that must fail: exit 2, one line `moescope: error: ...`, the good trace untouched, no leftovers. */
function mustFail(args: string[], message: RegExp) {
  const before = readdirSync(dir).sort();
  const r = runCli(['capture', '--out', good, ...args]);
  assert.equal(r.code, 2, `exit code for ${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^moescope: error: /);
  assert.match(lines[0], message);
  assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
  assert.deepEqual(snap(good), snapshot, 'the previous trace is untouched');
  assert.deepEqual(readdirSync(dir).sort(), before, 'no temporary or partial output left');
}

function badModel(name: string, weights: Uint8Array): string {
  const d = join(dir, name);
  mkdirSync(d);
  for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(model, f), join(d, f));
  writeFileSync(join(d, 'model.safetensors'), weights);
  return d;
}

function jsonl(name: string, lines: string[]): string {
  const f = join(dir, name);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

test('bad data: malformed JSONL line (file:line), missing image, non-PNG image, unknown spec', () => {
  const ok = '{"image": "img/ok.png", "text": "a red circle"}';
  const f1 = jsonl('malformed.jsonl', [ok, ok, '{"text": "a red circle"', ok]);
  mustFail(['--model', model, '--data', f1], new RegExp(`${f1.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`+':3: not valid JSON'));
  const f2 = jsonl('missing.jsonl', [ok, '{"image": "img/nope.png"}']);
  mustFail(['--model', model, '--data', f2], /missing\.jsonl:2: image .*img\/nope\.png: no such file$/);
  const f3 = jsonl('notpng.jsonl', ['{"parts": [{"text": "x"}, {"image": "img/not.png"}]}']);
  mustFail(['--model', model, '--data', f3], /notpng\.jsonl:1: image .*img\/not\.png: not a PNG image$/);
  const f4 = jsonl('noparts.jsonl', [ok, '{"parts": []}']);
  mustFail(['--model', model, '--data', f4], /noparts\.jsonl:2: no parts$/);
  mustFail(['--model', model, '--data', join(dir, 'absent.jsonl')], /absent\.jsonl: no such file$/);
  mustFail(['--model', model, '--data', 'shapes:abc'], /--data shapes:abc: N must be a positive integer/);
  mustFail(['--model', model, '--data', 'imagenet'], /--data imagenet: unknown data spec/);
});

test('bad checkpoints: truncated, header lying about offsets, wrong shape, missing tensor, missing file', () => {
  const weights = readFileSync(join(model, 'model.safetensors'));
  const m1 = badModel('truncated', weights.subarray(0, Math.floor(weights.length / 2)));
  mustFail(['--model', m1, '--data', 'shapes:2'], /truncated\/model\.safetensors: .*(truncated|past the end)/);
  mustFail(['--model', badModel('tiny-file', weights.subarray(0, 5)), '--data', 'shapes:2'], /tiny-file\/model\.safetensors: truncated/);

  // header that lies: the last tensor is said to lie 4 bytes further on, past the end of the data
  const n = Number(new DataView(weights.buffer, weights.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(weights.subarray(8, 8 + n)));
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const first = names.sort((a, b) => header[b].data_offsets[0] - header[a].data_offsets[0])[0];
  header[first].data_offsets = header[first].data_offsets.map((o: number) => o + 4);
  let text = JSON.stringify(header);
  assert.ok(text.length <= n);
  text += ' '.repeat(n - text.length);
  const lying = Uint8Array.from(weights);
  lying.set(new TextEncoder().encode(text), 8);
  mustFail(['--model', badModel('lying', lying), '--data', 'shapes:2'], new RegExp(`lying/model\\.safetensors: tensor ${first.replace(/\./g, '\\.')}: data_offsets .* run past the end`));

  const tensors = paramsToTensors(tinyCheckpoint().params);
  const wrong = tensors.map(([name, t]): [string, typeof t] => (name === 'layers.1.block_sparse_moe.gate.weight' ? [name, { shape: [t.shape[1], t.shape[0]], data: t.data }] : [name, t]));
  mustFail(['--model', badModel('wrong-shape', writeSafetensors(wrong)), '--data', 'shapes:2'], /wrong-shape\/model\.safetensors: tensor layers\.1\.block_sparse_moe\.gate\.weight has shape \[16, 4\], config needs \[4, 16\]/);
  const missing = tensors.filter(([name]) => name !== 'norm.weight');
  mustFail(['--model', badModel('missing-tensor', writeSafetensors(missing)), '--data', 'shapes:2'], /missing-tensor\/model\.safetensors: missing tensor norm\.weight/);

  const noTok = join(dir, 'no-tokenizer');
  mkdirSync(noTok);
  copyFileSync(join(model, 'config.json'), join(noTok, 'config.json'));
  copyFileSync(join(model, 'model.safetensors'), join(noTok, 'model.safetensors'));
  mustFail(['--model', noTok, '--data', 'shapes:2'], /no-tokenizer: missing tokenizer\.json/);
  mustFail(['--model', join(dir, 'nothing-here'), '--data', 'shapes:2'], /nothing-here: no such checkpoint folder/);
});

test('bad usage: missing --data, bad --batch', () => {
  mustFail(['--model', model], /--data/);
  mustFail(['--model', model, '--data', 'shapes:2', '--batch', '0'], /--batch: 0 is outside 1..65536/);
});

test('an interrupted capture (SIGINT) leaves no partial folder and keeps the previous trace', async () => {
  const { spawn } = await import('node:child_process');
  const { BIN } = await import('./helpers.js');
  const before = readdirSync(dir).sort();
  const child = spawn(process.execPath, [BIN, 'capture', '--model', model, '--data', 'shapes:1000000', '--out', good], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  // wait until the temporary folder exists, i.e. the capture is running
  for (let i = 0; i < 200 && !readdirSync(dir).some((f) => f.startsWith('.out.tmp-')); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(readdirSync(dir).some((f) => f.startsWith('.out.tmp-')), 'capture started');
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 1);
  assert.match(stderr, /moescope: error: interrupted \(SIGINT\)/);
  assert.deepEqual(snap(good), snapshot);
  assert.deepEqual(readdirSync(dir).sort(), before);
});
