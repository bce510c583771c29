import test from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, moescope, tmp } from './helpers.js';

// Issue 9's importer cases through the real CLI: exit 2, one stderr line naming the file and the
// record, no stack, no output folder.

function refused(args: string[], pattern: RegExp) {
  const d = tmp();
  const out = join(d, 'trace');
  const r = moescope(['import', ...args, '--out', out]);
  assert.equal(r.code, 2, `expected exit 2, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^moescope: error: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  assert.equal(r.stdout, '');
  assert.equal(existsSync(out), false, 'no output');
}

test('vllm: base64 int64 expert id 2^32+3 is an error, not expert 3', () => {
  const d = tmp();
  const routed = new BigInt64Array([0n, 1n, 2n, 3n, 4n, 5n, 2n ** 32n + 3n, 1n]); // [T=2, L=2, K=2]
  const rec = { request_id: 'r', prompt_token_ids: [5, 6], output_token_ids: [], routed_experts: { dtype: 'int64', shape: [2, 2, 2], data: Buffer.from(routed.buffer).toString('base64') } };
  writeFileSync(join(d, 'r.jsonl'), JSON.stringify(rec) + '\n');
  refused(['vllm', join(d, 'r.jsonl')], /r\.jsonl:1: routed_experts\[6\] = 4294967299 does not fit/);
});

test('table: token_id 99999999999999 is an error, not a wrapped 32-bit id', () => {
  const d = tmp();
  writeFileSync(join(d, 't.csv'), 'layer,token_id,expert_ids\n0,5,"1 2"\n0,99999999999999,"0 3"\n');
  refused(['table', join(d, 't.csv')], /t\.csv:3: token id: 99999999999999 is outside/);
});

test('table and hf: NaN or infinite weights and router logits', () => {
  const d = tmp();
  writeFileSync(join(d, 'w.csv'), 'layer,token_id,expert_ids,weights\n0,5,"1 2","0.5 0.5"\n0,6,"0 3","nan 0.2"\n');
  refused(['csv', join(d, 'w.csv')], /w\.csv:3: gate NaN is not a finite number/);
  writeFileSync(join(d, 'w.jsonl'), JSON.stringify({ layer: 0, token: 5, expert: [1, 2], gate: [0.5, 0.5] }) + '\n' + '{"layer": 0, "token": 6, "expert": [0, 3], "gate": [1e999, 0.2]}\n');
  refused(['table', join(d, 'w.jsonl')], /w\.jsonl:2: gate Infinity is not a finite number/);
  // hf: one logit NaN in router_logits.1
  const src = readFileSync(fixture('hf', 'llava_logits.safetensors'));
  const n = Number(src.readBigUInt64LE(0));
  const h = JSON.parse(src.subarray(8, 8 + n).toString('utf8'));
  const bad = Buffer.from(src);
  bad.writeFloatLE(NaN, 8 + n + h['router_logits.1'].data_offsets[0] + 4 * 5);
  writeFileSync(join(d, 'nan.safetensors'), bad);
  refused(['hf', join(d, 'nan.safetensors'), '--top-k', '1', '--image-placeholder-id', '-200'], /nan\.safetensors: tensor router_logits\.1: token 1: router score NaN for expert 1 is not a finite number/);
});

function hfFolder(manifest: Record<string, unknown>): string {
  const d = join(tmp(), 'capture');
  mkdirSync(d);
  copyFileSync(fixture('hf', 'llava_logits.safetensors'), join(d, 'batch0.safetensors'));
  writeFileSync(join(d, 'moescope_routing.json'), JSON.stringify({ layer_index: 'moe', top_k: 1, ...manifest }));
  return d;
}

test('hf manifest: num_hidden_layers "x" and top_k 0 are errors naming the manifest', () => {
  refused(['hf', hfFolder({ num_hidden_layers: 'x' }), '--image-placeholder-id', '-200'], /moescope_routing\.json: num_hidden_layers: expected an integer in 1\.\.\d+, got "x"/);
  refused(['hf', hfFolder({ top_k: 0 }), '--image-placeholder-id', '-200'], /moescope_routing\.json: top_k: 0 is outside 1\.\.\d+/);
});

test('megatron: logit_offset negative or past the end of the logits file', () => {
  for (const off of [-2, 2 ** 52]) {
    const d = tmp();
    const lines = readFileSync(fixture('megatron', 'router_trace_rank0.jsonl'), 'utf8').trim().split('\n');
    const o = JSON.parse(lines[1]);
    o.logit_offset = off;
    writeFileSync(join(d, 'router_trace_rank0.jsonl'), [lines[0], JSON.stringify(o)].join('\n') + '\n');
    copyFileSync(fixture('megatron', 'logits_rank0.bin'), join(d, 'logits_rank0.bin'));
    refused(['megatron', join(d, 'router_trace_rank0.jsonl'), '--micro-batch', '2'], new RegExp(`router_trace_rank0\\.jsonl:2: logit_offset ${off} is not an offset`));
  }
});

test('--moe-layers 0-999999999999 is refused before anything is allocated', () => {
  refused(['olmoe', fixture('olmoe', 'c4_results.jsonl'), '--moe-layers', '0-999999999999'], /--moe-layers: 0-999999999999 is outside 0\.\.\d+/);
  refused(['olmoe', fixture('olmoe', 'c4_results.jsonl'), '--top-k', '1e3'], /--top-k: expected an integer/);
});
