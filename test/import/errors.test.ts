import test from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, moescope, tmp } from './helpers.js';

// Bad input: one line `moescope: error: <file>:<record>: ...`, exit 2, no stack, no trace folder
// (and no temporary leftovers), a previous good trace untouched.

function expectError(args: string[], pattern: RegExp, out: string) {
  const r = moescope([...args, '--out', out]);
  assert.equal(r.code, 2, `expected exit 2, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^moescope: error: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  return r;
}

function noOutput(dir: string, out: string) {
  assert.equal(existsSync(out), false, 'no trace folder');
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temporary folder left');
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').trim().split('\n');
}

test('olmoe: expert id outside 0..E-1 names the line and layer', () => {
  const d = tmp();
  const src = lines(fixture('olmoe', 'c4_results.jsonl'));
  const o = JSON.parse(src[1]);
  o.exp_ids[4][1][2] = 8;
  writeFileSync(join(d, 'bad.jsonl'), [src[0], JSON.stringify(o)].join('\n') + '\n');
  expectError(['import', 'olmoe', join(d, 'bad.jsonl'), '--num-experts', '8'], /bad\.jsonl:2: exp_ids\[:, :, 2\]: token 4: expert id 8 outside 0\.\.7/, join(d, 'out'));
  noOutput(d, join(d, 'out'));
});

test('olmoe: layers that disagree between lines', () => {
  const d = tmp();
  const src = lines(fixture('olmoe', 'c4_results.jsonl'));
  const o = JSON.parse(src[1]);
  o.exp_ids = o.exp_ids.map((t: number[][]) => t.map((k) => k.slice(0, 2)));
  writeFileSync(join(d, 'bad.jsonl'), [src[0], JSON.stringify(o)].join('\n') + '\n');
  expectError(['import', 'olmoe', join(d, 'bad.jsonl')], /bad\.jsonl:2: layers disagree: exp_ids has 2 layers/, join(d, 'out'));
  noOutput(d, join(d, 'out'));
});

test('vllm: truncated file (last line cut) and wrong token count', () => {
  const d = tmp();
  const text = readFileSync(fixture('vllm', 'requests.jsonl'), 'utf8');
  writeFileSync(join(d, 'cut.jsonl'), text.slice(0, text.length - 40));
  expectError(['import', 'vllm', join(d, 'cut.jsonl')], /cut\.jsonl:2: not valid JSON/, join(d, 'out'));
  noOutput(d, join(d, 'out'));
  const o = JSON.parse(lines(fixture('vllm', 'requests.jsonl'))[1]);
  o.output_token_ids = o.output_token_ids.slice(0, 1);
  writeFileSync(join(d, 'short.jsonl'), JSON.stringify(o) + '\n');
  expectError(['import', 'vllm', join(d, 'short.jsonl')], /short\.jsonl:1: routed_experts has 7 tokens but the request has 5 prompt \+ 1 output tokens/, join(d, 'out'));
  noOutput(d, join(d, 'out'));
});

test('vllm: base64 data shorter than its shape', () => {
  const d = tmp();
  const o = JSON.parse(lines(fixture('vllm', 'requests.jsonl'))[0]);
  const re = o.outputs[0].routed_experts;
  re.data = Buffer.from(re.data, 'base64').subarray(0, 10).toString('base64');
  writeFileSync(join(d, 'b64.jsonl'), JSON.stringify(o) + '\n');
  expectError(['import', 'vllm', join(d, 'b64.jsonl')], /b64\.jsonl:1: routed_experts\.data has 10 bytes/, join(d, 'out'));
});

test('megatron: a layer with a different token count in one forward pass', () => {
  const d = tmp();
  const src = lines(fixture('megatron', 'router_trace_rank0.jsonl'));
  const o = JSON.parse(src[1]);
  o.top_indices = o.top_indices.slice(0, 8);
  o.num_tokens = 8;
  delete o.logit_offset;
  delete o.logit_shape;
  writeFileSync(join(d, 'router_trace_rank0.jsonl'), [src[0], JSON.stringify(o)].join('\n') + '\n');
  copyFileSync(fixture('megatron', 'logits_rank0.bin'), join(d, 'logits_rank0.bin'));
  expectError(['import', 'megatron', d, '--micro-batch', '2'], /router_trace_rank0\.jsonl:2: layers disagree: layer 2 routed 8 tokens but the other layers of this forward pass routed 10/, join(d, 'out'));
  noOutput(d, join(d, 'out'));
});

test('megatron: modality side file with the wrong length for a sample', () => {
  const d = tmp();
  writeFileSync(join(d, 'mod.jsonl'), '"ttiit"\n"tt"\n"ttttt"\n"ttttt"\n');
  expectError(['import', 'megatron', fixture('megatron'), '--micro-batch', '2', '--modality', join(d, 'mod.jsonl')], /mod\.jsonl:2 .*: modality has 2 values but there are 5 routed tokens/, join(d, 'out'));
});

test('csv: unterminated quote on a truncated last line', () => {
  const d = tmp();
  const text = readFileSync(fixture('csv', 'moe_trace.csv'), 'utf8');
  writeFileSync(join(d, 'cut.csv'), text.slice(0, text.length - 12));
  const n = text.trim().split('\n').length;
  expectError(['import', 'csv', join(d, 'cut.csv')], new RegExp(`cut\\.csv(:${n})?: (.*unterminated quote|\\d+ weights for 2 expert ids|.*(sniffing|quote))`, 'i'), join(d, 'out'));
  noOutput(d, join(d, 'out'));
});

test('hf: truncated safetensors file and router tensors that disagree', () => {
  const d = tmp();
  copyFileSync(fixture('hf', 'llava_logits.safetensors'), join(d, 'cut.safetensors'));
  truncateSync(join(d, 'cut.safetensors'), 400);
  expectError(['import', 'hf', join(d, 'cut.safetensors'), '--top-k', '1'], /cut\.safetensors: tensor \S+: data_offsets \[\d+, \d+\] run past the end of the data .*file truncated/, join(d, 'out'));
  noOutput(d, join(d, 'out'));
  // wrong shape: a layer with fewer routed rows than the others (written with the numpy-only writer's layout)
  const bytes = readFileSync(fixture('hf', 'llava_logits.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const data = bytes.subarray(8 + n);
  const parts: [string, Buffer, number[], string][] = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([k, v]) => {
      const t = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
      let buf = data.subarray(t.data_offsets[0], t.data_offsets[1]);
      let shape = t.shape;
      if (k === 'router_logits.1') {
        shape = [t.shape[0] - 1, t.shape[1]];
        buf = buf.subarray(0, shape[0] * shape[1] * 4);
      }
      return [k, Buffer.from(buf), shape, t.dtype];
    });
  const h: Record<string, unknown> = {};
  let off = 0;
  for (const [k, b, shape, dtype] of parts) {
    h[k] = { dtype, shape, data_offsets: [off, off + b.length] };
    off += b.length;
  }
  const hb = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  writeFileSync(join(d, 'shape.safetensors'), Buffer.concat([len, hb, ...parts.map((p) => p[1])]));
  expectError(['import', 'hf', join(d, 'shape.safetensors'), '--top-k', '1', '--image-placeholder-id', '-200'], /shape\.safetensors: tensor router_logits\.1: layers disagree: 12 routed tokens but router_logits\.0 has 13/, join(d, 'out'));
});

test('a failed import leaves the previous good trace as it was', () => {
  const d = tmp();
  const out = join(d, 'trace');
  const ok = moescope(['import', 'olmoe', fixture('olmoe', 'c4_results.jsonl'), '--out', out]);
  assert.equal(ok.code, 0, ok.stderr);
  const before = readFileSync(join(out, 'meta.json'), 'utf8');
  writeFileSync(join(d, 'bad.jsonl'), lines(fixture('olmoe', 'c4_results.jsonl'))[0] + '\n{"input_ids": [1, 2], "exp_ids": [[[0]]\n');
  expectError(['import', 'olmoe', join(d, 'bad.jsonl')], /bad\.jsonl:2: not valid JSON/, out);
  assert.equal(readFileSync(join(out, 'meta.json'), 'utf8'), before);
  assert.deepEqual(readdirSync(d).sort(), ['bad.jsonl', 'trace']);
});

test('usage: unknown format and --full-probs on an ids-only format', () => {
  const d = tmp();
  expectError(['import', 'llamacpp', fixture('vllm', 'requests.jsonl')], /unknown format "llamacpp" \(one of hf, vllm, sglang, megatron, olmoe, table, csv\)/, join(d, 'out'));
  expectError(['import', 'vllm', fixture('vllm', 'requests.jsonl'), '--full-probs'], /--full-probs needs the router's scores/, join(d, 'out'));
  noOutput(d, join(d, 'out'));
});
