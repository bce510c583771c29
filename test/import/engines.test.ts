import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { moescope, query, root, sorted, tmp, traceCounts } from './helpers.js';
import { readFileSync, writeFileSync } from 'node:fs';

// The cases where a plain import would be silently wrong. Each fixture was written by
// scripts/make-import-engine-fixtures.py, which reimplements the producer's module (transformers'
// DeepseekV3MoE / MiniMaxM2SparseMoeBlock / Llama4Router, Megatron's RouterTracer, vLLM's and
// SGLang's outputs) and stores the producer's own decisions in expected.json.

const fx = (c: string, f = '') => join(root, 'test/fixtures/import-engines', c, f);
const want = (c: string) => JSON.parse(readFileSync(fx(c, 'expected.json'), 'utf8')) as { all: Record<string, number>; top1: Record<string, number>; tokens: Record<string, number>; rows: number; [k: string]: unknown };

function run(args: string[]) {
  const out = join(tmp(), 'trace');
  const r = moescope(['import', ...args, '--out', out]);
  return { ...r, out };
}

async function imported(args: string[], c: string, { top1 = true } = {}) {
  const r = run(args);
  assert.equal(r.code, 0, r.stderr);
  const got = await traceCounts(r.out);
  const w = want(c);
  assert.equal(got.rows, w.rows, 'rows');
  assert.deepEqual(sorted(got.tokens), sorted(w.tokens), 'tokens per modality');
  assert.deepEqual(sorted(got.all), sorted(w.all), 'per (layer, expert, modality) counts of all k choices = the block\'s choices');
  if (top1) assert.deepEqual(sorted(got.top1), sorted(w.top1), 'top-1 = the highest gate the block used');
  return { got, w, out: r.out, stderr: r.stderr };
}

function refused(args: string[], pattern: RegExp) {
  const r = run(args);
  assert.equal(r.code, 2, `expected exit 2: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^moescope: error: /);
  assert.match(lines[0], pattern);
  assert.equal(existsSync(r.out), false, 'no output');
}

for (const [c, biasName] of [['deepseek_v3', 'DeepSeek-V3'], ['minimax_m2', 'MiniMax-M2']] as const) {
  test(`${biasName} logits saved by hand: routed with e_score_correction_bias${c === 'deepseek_v3' ? ', group-limited top-k, routed_scaling_factor' : ''}, or refused`, async () => {
    const w = want(c);
    assert.ok((w.plain_topk_wrong_tokens as number) > 0, 'a plain top-k of these logits would be wrong');
    refused(['hf', fx(c, 'logits.safetensors'), '--config', fx(c, 'config.json'), '--image-token-id', '9'], /e_score_correction_bias.*--router-bias/);
    const { got, out } = await imported(['hf', fx(c, 'logits.safetensors'), '--config', fx(c, 'config.json'), '--router-bias', fx(c, 'model-00001-of-00001.safetensors'), '--image-token-id', '9'], c);
    assert.deepEqual(got.meta.layers, w.moe_layers);
    assert.equal(got.meta.gates, 'router');
    assert.equal(got.meta.expert_order, 'ranked');
    const g = await query(`SELECT sum(gate[1]) AS s FROM '${join(out, 'routing.parquet')}'`);
    assert.ok(Math.abs(Number(g[0].s) - (w.top1_gate_sum as number)) < 1e-3, `top-1 gates (scaled, from unbiased scores): ${g[0].s} vs ${w.top1_gate_sum}`);
  });
}

test('Llama-4 router_logits: top-1 gate = sigmoid(logit of the chosen expert), not a softmax over experts', async () => {
  const { out, w } = await imported(['hf', fx('llama4', 'logits.safetensors'), '--config', fx('llama4', 'config.json'), '--image-token-id', '9'], 'llama4');
  const rows = await query(`SELECT gate[1] AS g FROM '${join(out, 'routing.parquet')}' ORDER BY layer, pos`);
  const gates = w.top1_gates as number[];
  assert.equal(rows.length, gates.length);
  rows.forEach((r, i) => assert.ok(Math.abs(Number(r.g) - gates[i]) < 1e-5, `row ${i}: ${r.g} vs ${gates[i]}`));
  assert.ok(gates.some((g) => g > 0.5), 'sigmoid gates are large where a softmax over 8 experts would be small');
});

test('Megatron pipeline parallel: stage-local layers mapped to decoder layers, stages merged into one sample', async () => {
  const c = 'megatron_pp_stage_local';
  const { got } = await imported(['megatron', fx(c, 'router_trace_rank0.jsonl'), fx(c, 'router_trace_rank1.jsonl'), '--pipeline-parallel', '2', '--num-layers', '4', '--modality', fx(c, 'modality.jsonl')], c, { top1: false });
  assert.deepEqual(got.meta.layers, [1, 2, 3]);
  assert.equal(got.meta.samples, 2, 'one sample per forward pass, not one per rank file');
  assert.deepEqual(got.meta.layer_map, { 'stage 0 layer 1': 1, 'stage 1 layer 0': 2, 'stage 1 layer 1': 3 });
  assert.equal(got.meta.expert_order, 'unranked', 'routing_map.nonzero() lists ids by id');
  // the same with an explicit uneven-capable split
  const b = await imported(['megatron', fx(c, 'router_trace_rank0.jsonl'), fx(c, 'router_trace_rank1.jsonl'), '--pipeline-layers', '2,2', '--modality', fx(c, 'modality.jsonl')], c, { top1: false });
  assert.deepEqual(b.got.meta.layers, [1, 2, 3]);
  // without the flag the stage-local numbers would collide: refused as layers that disagree, or wrong layers
  const plain = run(['megatron', fx(c)]);
  if (plain.code === 0) assert.notDeepEqual((await traceCounts(plain.out)).meta.layers, [1, 2, 3]);
  refused(['megatron', fx(c), '--pipeline-parallel', '2', '--num-layers', '5'], /5 layers do not split evenly over 2 stages/);
});

test('Megatron layer_number (routing replay, 1-based): --layer-base 1', async () => {
  const c = 'megatron_pp_layer_number';
  const { got } = await imported(['megatron', fx(c, 'router_trace_rank0.jsonl'), fx(c, 'router_trace_rank1.jsonl'), '--pipeline-parallel', '2', '--layer-base', '1', '--num-layers', '4', '--modality', fx(c, 'modality.jsonl')], c, { top1: false });
  assert.deepEqual(got.meta.layers, [1, 2, 3]);
  assert.equal(got.meta.layer_base, 1);
});

test('vLLM n = 2: every completion imported as its own sample', async () => {
  const { out } = await imported(['vllm', fx('vllm_n2', 'requests.jsonl'), '--image-token-id', '9'], 'vllm_n2', { top1: false });
  const s = await query(`SELECT sample, source, text FROM '${join(out, 'samples.parquet')}' ORDER BY sample`);
  assert.equal(s.length, 2);
  assert.match(String(s[0].source), /request req-n2 completion 0$/);
  assert.match(String(s[1].source), /request req-n2 completion 1$/);
});

test('top-1 without --config: all-zero dense slices refused; with --config the MoE layers are right', async () => {
  refused(['vllm', fx('vllm_top1_dense', 'requests.jsonl')], /sends every token to expert 0.*--config/);
  const { got } = await imported(['vllm', fx('vllm_top1_dense', 'requests.jsonl'), '--config', fx('vllm_top1_dense', 'config.json')], 'vllm_top1_dense', { top1: false });
  assert.deepEqual(got.meta.layers, want('vllm_top1_dense').layers);
});

test('SGLang /generate: bare base64 int32 routed_experts shaped by the config', async () => {
  refused(['sglang', fx('sglang', 'generate.jsonl')], /without shape: give --config/);
  const { got, out } = await imported(['sglang', fx('sglang', 'generate.jsonl'), '--config', fx('sglang', 'config.json'), '--image-token-id', '9'], 'sglang', { top1: false });
  assert.deepEqual(got.meta.layers, [1, 2]);
  const ph = await query(`SELECT phase, count(*) AS n FROM '${join(out, 'routing.parquet')}' GROUP BY ALL ORDER BY phase`);
  assert.deepEqual(ph.map((r) => [r.phase, Number(r.n)]), [['decode', 2 * (3 + 1)], ['prefill', 2 * (5 + 4)]]);
});

test('ids without gates: meta.json says so (gates, expert_order) and the gate column is NULL; OLMoE ids are ranked', async () => {
  const v = run(['vllm', fx('vllm_n2', 'requests.jsonl')]);
  assert.equal(v.code, 0, v.stderr);
  const m = (await traceCounts(v.out)).meta;
  assert.match(String(m.gates), /^none/);
  assert.equal(m.expert_order, 'unranked');
  const n = await query(`SELECT count(gate) AS n FROM '${join(v.out, 'routing.parquet')}'`);
  assert.equal(Number(n[0].n), 0);
  const o = run(['olmoe', join(root, 'test/fixtures/import-olmoe/c4_results.jsonl')]);
  assert.equal(o.code, 0, o.stderr);
  const om = (await traceCounts(o.out)).meta;
  assert.equal(om.expert_order, 'ranked', "OLMoE's exp_ids come from an argsort of the logits");
  assert.match(String(om.gates), /^none/);
});

test('table: llama.cpp batch shapes (the last layer routes only output rows), older column names, domain; CSV = TSV = Parquet = JSONL', async () => {
  const c = 'table_llamacpp';
  const csv = fx(c, 'routing.csv');
  const a = await imported(['table', csv, '--image-token-id', '9'], c);
  const s = await query(`SELECT sample, domain, source FROM '${join(a.out, 'samples.parquet')}' ORDER BY sample`);
  assert.deepEqual(s.map((r) => r.domain), ['arxiv', 'github']);
  const per = await query(`SELECT layer, count(*) AS n FROM '${join(a.out, 'routing.parquet')}' WHERE sample = 0 GROUP BY layer ORDER BY layer`);
  assert.deepEqual(per.map((r) => Number(r.n)), [8, 8, 3], 'last layer: one row per ubatch');
  const d = tmp();
  const src = `read_csv('${csv}', header = true)`;
  await query(`COPY (SELECT * FROM ${src}) TO '${join(d, 'r.parquet')}' (FORMAT parquet)`);
  await query(`COPY (SELECT * FROM ${src}) TO '${join(d, 'r.tsv')}' (FORMAT csv, DELIMITER '\t', HEADER)`);
  // JSONL with the SPEC names and lists
  await query(`COPY (SELECT seq AS sample, pos, layer, token_id AS token, list_transform(string_split(expert_ids, ' '), x -> x::INTEGER) AS expert, list_transform(string_split(weights, ' '), x -> x::DOUBLE) AS gate, domain FROM ${src}) TO '${join(d, 'r.jsonl')}' (FORMAT json)`);
  for (const f of ['r.parquet', 'r.tsv', 'r.jsonl']) {
    const b = await imported(['table', join(d, f), '--image-token-id', '9'], c);
    assert.deepEqual(b.got.meta.layers, [0, 1, 2], f);
  }
});

test('--tokenizer names token ids (samples.tokens), --domain fills samples.domain', async () => {
  const tk = fx('tokenizer', 'tokenizer.json');
  const r = run(['vllm', fx('vllm_n2', 'requests.jsonl'), '--tokenizer', tk, '--image-token-id', '9', '--domain', 'chat']);
  assert.equal(r.code, 0, r.stderr);
  const vocab = (JSON.parse(readFileSync(tk, 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
  const byId = new Map(Object.entries(vocab).map(([w, i]) => [i, w]));
  const req = JSON.parse(readFileSync(fx('vllm_n2', 'requests.jsonl'), 'utf8')) as { prompt_token_ids: number[]; outputs: { token_ids: number[] }[] };
  const s = await query(`SELECT sample, domain, tokens FROM '${join(r.out, 'samples.parquet')}' ORDER BY sample`);
  s.forEach((row, c) => {
    assert.equal(row.domain, 'chat');
    const ids = [...req.prompt_token_ids, ...req.outputs[c].token_ids].slice(0, (row.tokens as string[]).length);
    assert.deepEqual(row.tokens, ids.map((id) => (id === 9 ? '' : byId.get(id))));
  });
  refused(['vllm', fx('vllm_n2', 'requests.jsonl'), '--tokenizer', fx('vllm_n2', 'requests.jsonl')], /requests\.jsonl: /);
});

test('domain from the modality side file (formats without token ids)', async () => {
  const c = 'megatron_pp_stage_local';
  const d = tmp();
  const lines = readFileSync(fx(c, 'modality.jsonl'), 'utf8').trim().split('\n').map((l, i) => JSON.stringify({ modality: JSON.parse(l), domain: i === 0 ? 'arxiv' : 'github' }));
  writeFileSync(join(d, 'side.jsonl'), lines.join('\n') + '\n');
  const { out } = await imported(['megatron', fx(c, 'router_trace_rank0.jsonl'), fx(c, 'router_trace_rank1.jsonl'), '--pipeline-parallel', '2', '--num-layers', '4', '--modality', join(d, 'side.jsonl')], c, { top1: false });
  const s = await query(`SELECT domain FROM '${join(out, 'samples.parquet')}' ORDER BY sample`);
  assert.deepEqual(s.map((r) => r.domain), ['arxiv', 'github']);
});

test('vLLM: long base64 routed_experts read from the line bytes (padded, unpadded, url-safe, escaped) or as a nested list give the same rows; a control character in it is refused', async () => {
  // ids [T][L][K] as vllm/outputs.py's routed_experts (int16), long enough for the byte path (> 4 KB of text)
  const T = 600, L = 4, K = 2, E = 8, P = 200;
  const ids = new Int16Array(T * L * K);
  for (let t = 0; t < T; t++) for (let l = 0; l < L; l++) {
    const a = (t * 7 + l * 3) % E;
    ids[(t * L + l) * K] = a;
    ids[(t * L + l) * K + 1] = (a + 1 + ((t + l) % (E - 1))) % E;
  }
  const b64 = Buffer.from(ids.buffer).toString('base64');
  const nested = Array.from({ length: T }, (_, t) => Array.from({ length: L }, (_, l) => Array.from(ids.subarray((t * L + l) * K, (t * L + l) * K + K))));
  const line = (re: unknown, extra = '') =>
    `{"request_id": "r0", "prompt_token_ids": ${JSON.stringify(Array.from({ length: P }, (_, i) => i + 1))}, "cumulative_logprob": -1.5e-3, "outputs": [{"index": 0, "text": "caf\\u00e9 \\"x\\"", "token_ids": ${JSON.stringify(Array.from({ length: T - P }, (_, i) => 1000 + i))}, "routed_experts": ${typeof re === 'string' ? re : JSON.stringify(re)}}]${extra}}\n`;
  const forms: Record<string, string> = {
    padded: line({ dtype: 'int16', shape: [T, L, K], data: b64 }),
    unpadded: line({ dtype: 'int16', shape: [T, L, K], data: b64.replace(/=+$/, '') }),
    urlSafe: line({ dtype: 'int16', shape: [T, L, K], data: b64.replace(/\+/g, '-').replace(/\//g, '_') }),
    // one character as a \\u escape: the string goes through JSON.parse's decoding
    escaped: line(`{"dtype": "int16", "shape": [${T}, ${L}, ${K}], "data": "${b64.slice(0, 4000)}\\u00${b64.charCodeAt(4000).toString(16)}${b64.slice(4001)}"}`),
    nested: line(nested),
    jsonParse: line({ dtype: 'int16', shape: [T, L, K], data: b64 }, ', "__proto__": 1'), // left to JSON.parse whole
  };
  const want = new Map<string, string>();
  for (let t = 0; t < T; t++) for (let l = 0; l < L; l++) want.set(`${l}/${t}`, `${ids[(t * L + l) * K]},${ids[(t * L + l) * K + 1]}`);
  for (const [name, text] of Object.entries(forms)) {
    const dir = tmp();
    writeFileSync(join(dir, 'r.jsonl'), text);
    const r = run(['vllm', join(dir, 'r.jsonl'), '--num-experts', String(E), '--expert-order', 'ranked']);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    const rows = await query(`SELECT layer, pos, expert FROM '${join(r.out, 'routing.parquet')}'`);
    assert.equal(rows.length, T * L, name);
    for (const row of rows) assert.equal(String((row.expert as { items: number[] }).items ?? row.expert), want.get(`${row.layer}/${row.pos}`), `${name}: layer ${row.layer} pos ${row.pos}`);
  }
  const dir = tmp();
  // a raw control character (JSON.stringify would escape it): what JSON.parse refuses
  writeFileSync(join(dir, 'r.jsonl'), forms.padded.replace(b64.slice(5000, 5010), `${b64.slice(5000, 5005)}\x01${b64.slice(5005, 5010)}`));
  refused(['vllm', join(dir, 'r.jsonl'), '--num-experts', String(E)], /r\.jsonl:1.*not valid JSON/);
});
