import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { assertInputError, cli, copyModel, snapshot, tempDir, writeJson } from './harness.js';
import { chunk, writeTestPng } from '../data/png-writer.js';

// Issue 9, "Crashes and blow-ups from tiny inputs" and "Raw messages" in capture's readers: each is
// exit 2 with one line naming the file, the previous trace untouched, nothing left behind.

let dir = '';
let model = '';
let good = '';
let goodSnap: Record<string, string> = {};
let config: Record<string, unknown> = {};

before(() => {
  dir = tempDir('limits');
  model = copyModel(dir);
  config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
  good = join(dir, 'good');
  const r = cli(['capture', '--model', model, '--data', 'shapes:2', '--out', good]);
  assert.equal(r.code, 0, r.stderr);
  goodSnap = snapshot(good);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function capture(args: string[], pattern: RegExp, timeout = 60_000) {
  const entries = readdirSync(dir).sort();
  const r = cli(['capture', '--out', good, ...args], { timeout });
  assertInputError(r, pattern, args.join(' '));
  assert.deepEqual(snapshot(good), goodSnap, 'the previous trace is untouched');
  assert.deepEqual(readdirSync(dir).sort(), entries, 'nothing new left beside it');
}

let n = 0;
/** A copy of the tiny model with some files changed. */
function modelWith(files: Record<string, string | Uint8Array | null>): string {
  const d = copyModel(dir, `m${n++}`);
  for (const [f, v] of Object.entries(files)) {
    rmSync(join(d, f), { force: true });
    if (v === null) mkdirSync(join(d, f));
    else writeFileSync(join(d, f), v);
  }
  return d;
}

test('config.json sizes of 1e9 and strings where numbers belong are refused before allocation', () => {
  for (const [key, value, re] of [
    ['num_hidden_layers', 1e9, /num_hidden_layers 1000000000 is above the limit 1024/],
    ['num_local_experts', 1e9, /num_local_experts 1000000000 is above the limit 4096/],
    ['max_position_embeddings', 1e9, /max_position_embeddings 1000000000 is above the limit/],
    ['vocab_size', 1e9, /vocab_size 1000000000 is above the limit/],
    ['hidden_size', 1e9, /hidden_size 1000000000 is above the limit/],
    ['num_attention_heads', 1e9, /num_attention_heads 1000000000 is above the limit/],
    ['intermediate_size', 1e9, /intermediate_size 1000000000 is above the limit/],
    ['image_size', 1e9, /image_size 1000000000 is above the limit/],
    ['num_hidden_layers', 'x', /num_hidden_layers must be a non-negative integer, got "x"/],
    ['hidden_size', '16', /hidden_size must be a non-negative integer, got "16"/],
    ['rope_theta', 'x', /rope_theta must be a non-negative number/],
    ['num_local_experts', 2 ** 64, /num_local_experts must be a non-negative integer/],
  ] as [string, unknown, RegExp][]) {
    const m = modelWith({ 'config.json': JSON.stringify({ ...config, [key]: value }) });
    capture(['--model', m, '--data', 'shapes:2'], new RegExp(`config\\.json: ${re.source}`));
  }
  // each size within its limit, but together too many parameters
  const m = modelWith({ 'config.json': JSON.stringify({ ...config, hidden_size: 65536, intermediate_size: 65536, num_attention_heads: 64, num_hidden_layers: 64 }) });
  capture(['--model', m, '--data', 'shapes:2'], /config\.json: these sizes make .* parameters, above the limit/);
});

/** A safetensors file from a header object and a data length. */
function safetensors(header: unknown, dataBytes = 0, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

test('safetensors: header length, shapes and offsets are checked; "Invalid typed array length" never surfaces', () => {
  for (const [bytes, re] of [
    [safetensors({}, 0, 2n ** 63n), /header length 9223372036854775808 is above the limit/],
    [safetensors({}, 0, 2n ** 40n), /header length .* is above the limit/],
    [safetensors({ a: { dtype: 'F32', shape: [1e15, 1e15], data_offsets: [0, 16] } }, 16), /tensor a: shape \[1000000000000000, 1000000000000000\] F32 needs/],
    [safetensors({ a: { dtype: 'F32', shape: [2 ** 60], data_offsets: [0, 2 ** 62] } }, 16), /tensor a: (bad shape|bad data_offsets|run past the end)/],
    [safetensors({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /tensor a: bad shape/],
    [safetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 1e300] } }, 4), /tensor a: bad data_offsets/],
    [safetensors({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8), /tensor a: dtype "I64" is not supported/],
    [safetensors([1, 2]), /corrupt header: not a JSON object/],
  ] as [Uint8Array, RegExp][]) {
    capture(['--model', modelWith({ 'model.safetensors': bytes }), '--data', 'shapes:2'], new RegExp(`model\\.safetensors: ${re.source}`));
  }
});

test('NaN or infinite weights are refused, naming the tensor', () => {
  const w = new Uint8Array(readFileSync(join(model, 'model.safetensors')));
  const n = Number(new DataView(w.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(w.subarray(8, 8 + n)));
  for (const [value, name] of [[NaN, 'layers.1.block_sparse_moe.gate.weight'], [Infinity, 'embed_tokens.weight'], [-Infinity, 'layers.0.self_attn.q_proj.weight']] as [number, string][]) {
    const bad = Uint8Array.from(w);
    new DataView(bad.buffer).setFloat32(8 + n + header[name].data_offsets[0] + 4, value, true);
    capture(['--model', modelWith({ 'model.safetensors': bad }), '--data', 'shapes:2'], new RegExp(`model\\.safetensors: tensor ${name.replace(/\./g, '\\.')} holds ${value} at index 1; weights must be finite`));
  }
});

test('finite weights whose router logits overflow: non-finite gates stop the capture (no NaN in a trace)', () => {
  const w = new Uint8Array(readFileSync(join(model, 'model.safetensors')));
  const n = Number(new DataView(w.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(w.subarray(8, 8 + n)));
  const [b, e] = header['layers.0.block_sparse_moe.gate.weight'].data_offsets;
  const bad = Uint8Array.from(w);
  for (let o = b; o < e; o += 4) new DataView(bad.buffer).setFloat32(8 + n + o, 3e38, true);
  capture(['--model', modelWith({ 'model.safetensors': bad }), '--data', 'shapes:2'], /model\.safetensors: the router of layer 0 gives non-finite gates/);
});

test('a folder where config.json, tokenizer.json or model.safetensors should be: exit 2 with a clear line (no EISDIR)', () => {
  for (const f of ['config.json', 'tokenizer.json', 'model.safetensors']) {
    capture(['--model', modelWith({ [f]: null }), '--data', 'shapes:2'], new RegExp(`${f.replace('.', '\\.')}: is a folder, expected a`));
  }
  capture(['--model', join(model, 'config.json'), '--data', 'shapes:2'], /config\.json: not a checkpoint folder/);
});

test('tokenizer.json: wrong shape, a vocabulary above the limit', () => {
  capture(['--model', modelWith({ 'tokenizer.json': '{"type": "word", "vocab": "abc"}' }), '--data', 'shapes:2'], /tokenizer\.json: expected \{"type": "word"/);
  capture(['--model', modelWith({ 'tokenizer.json': '{"type": "word", "vocab": [1, 2]}' }), '--data', 'shapes:2'], /tokenizer\.json: (vocab must be a list of strings|vocab\[0\] must be)/);
  const big = JSON.stringify({ type: 'word', vocab: ['<pad>', '<bos>', '<eos>', '<unk>', ...Array.from({ length: 4_194_400 }, (_, i) => `w${i}`)] });
  capture(['--model', modelWith({ 'tokenizer.json': big }), '--data', 'shapes:2'], /tokenizer\.json: 4194404 words is above the limit 4194304/);
});

test('capture flags: --threads 1000 and --batch 1e9 are refused', () => {
  capture(['--model', model, '--data', 'shapes:2', '--threads', '1000'], /--threads: 1000 is outside 1\.\.64/);
  capture(['--model', model, '--data', 'shapes:2', '--batch', '1000000000'], /--batch: 1000000000 is outside 1\.\.65536/);
  capture(['--model', model, '--data', 'shapes:2', '--threads', '1e3'], /--threads: expected an integer/);
  capture(['--model', model, '--data', 'shapes:99999999999'], /--data shapes:99999999999: N must be a positive integer/);
});

function jsonl(name: string, image: string): string {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify({ image, text: 'a red circle' }) + '\n');
  return f;
}

test('image paths: /dev/zero and a FIFO are errors (no hang); only regular files are read', () => {
  capture(['--model', model, '--data', jsonl('zero.jsonl', '/dev/zero')], /zero\.jsonl:1: image \/dev\/zero: not a regular file/, 30_000);
  const fifo = join(dir, 'pipe.png');
  execFileSync('mkfifo', [fifo]);
  capture(['--model', model, '--data', jsonl('fifo.jsonl', fifo)], /fifo\.jsonl:1: image .*pipe\.png: not a regular file/, 30_000);
  rmSync(fifo);
  mkdirSync(join(dir, 'folder.png'));
  capture(['--model', model, '--data', jsonl('folder.jsonl', join(dir, 'folder.png'))], /folder\.jsonl:1: image .*folder\.png: is a folder/);
  rmSync(join(dir, 'folder.png'), { recursive: true });
  // the data file itself
  const dataFifo = join(dir, 'data.jsonl');
  execFileSync('mkfifo', [dataFifo]);
  capture(['--model', model, '--data', dataFifo], /data\.jsonl: not a regular file/, 30_000);
  rmSync(dataFifo);
  mkdirSync(join(dir, 'dir.jsonl'));
  capture(['--model', model, '--data', join(dir, 'dir.jsonl')], /dir\.jsonl: is a folder/);
  rmSync(join(dir, 'dir.jsonl'), { recursive: true });
  // paths are literal: a glob pattern is a missing file, not a match
  capture(['--model', model, '--data', join(dir, '*.jsonl')], /\*\.jsonl: no such file/);
});

test('PNG: a 40000x40000 header is refused before inflating; a palette PNG without PLTE is an error', () => {
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, 40000);
  new DataView(ihdr.buffer).setUint32(4, 40000);
  ihdr.set([8, 2, 0, 0, 0], 8);
  // ~6 MB of compressed zeros that would inflate to 4.8 GB of pixels
  const idat = new Uint8Array(deflateSync(Buffer.alloc(200 * 1024 * 1024)));
  const parts = [Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))];
  writeFileSync(join(dir, 'huge.png'), Buffer.concat(parts));
  capture(['--model', model, '--data', jsonl('huge.jsonl', 'huge.png')], /huge\.png: PNG of 40000x40000 pixels is above the limit/);

  writeFileSync(join(dir, 'noplte.png'), writeTestPng({ width: 4, height: 4, colorType: 3, depth: 8, samples: new Array(16).fill(0), palette: [[9, 9, 9]], omitPalette: true }));
  capture(['--model', model, '--data', jsonl('noplte.jsonl', 'noplte.png')], /noplte\.png: palette PNG without a PLTE chunk/);
});

test('an unreadable input (EACCES) is exit 2 naming the file', { skip: process.getuid?.() === 0 ? 'running as root' : false }, () => {
  const f = jsonl('locked.jsonl', 'x.png');
  execFileSync('chmod', ['000', f]);
  capture(['--model', model, '--data', f], /locked\.jsonl: permission denied/);
});

test('train config: strings, 1e9 sizes, huge batch: exit 2 at once', () => {
  const base = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
  const cfg = (over: Record<string, unknown>) => writeJson(join(dir, `t${n++}.json`), {
    ...base, vocab_size: 64, image_size: 16, patch_size: 8, steps: 2, batch: 2, lr: 0.01, min_lr: 0.001, warmup: 1, weight_decay: 0.1, beta1: 0.9, beta2: 0.95,
    adam_eps: 1e-8, clip: 1, seed: 1, train_seed: 3, eval_seed: 1_000_099, text_only_share: 0.2, eval_samples: 2, eval_every: 0, checkpoint_every: 0,
    snapshot_every: 0, log_every: 1, ...over,
  });
  const out = join(dir, 'train-run');
  for (const [over, re] of [
    [{ batch: 1e9 }, /batch: 1000000000 is outside 1\.\.65536/],
    [{ eval_samples: 1e9 }, /eval_samples: 1000000000 is outside/],
    [{ steps: 1e12 }, /steps: 1000000000000 is outside/],
    [{ num_hidden_layers: 1e9 }, /num_hidden_layers 1000000000 is above the limit/],
    [{ batch: '4' }, /batch must be a positive integer/],
  ] as [Record<string, unknown>, RegExp][]) {
    assertInputError(cli(['train', '--config', cfg(over), '--out', out], { timeout: 30_000 }), re, JSON.stringify(over));
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('train-run') || f.startsWith('.train-run')), []);
});
