import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expected, fixture, moescope, query, sorted, tmp, traceCounts } from './helpers.js';

// Each fixture was written by scripts/make-import-fixtures.py the way the engine writes it; its
// expected.json holds counts computed there from the ground-truth router probabilities.

async function importAndCompare(format: string, inputs: string[], flags: string[], name: string) {
  const out = join(tmp(), 'trace');
  const r = moescope(['import', format, ...inputs, '--out', out, ...flags]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^imported \d+ routing rows/);
  const got = await traceCounts(out);
  const want = expected(name);
  assert.equal(got.rows, want.rows, 'rows');
  assert.deepEqual(sorted(got.tokens), sorted(want.tokens), 'tokens per modality');
  assert.deepEqual(sorted(got.all), sorted(want.all), 'counts of all k choices per layer/expert/modality');
  return { out, got, want, stderr: r.stderr };
}

test('olmoe: OLMoE analysis JSONL (exp_ids [T][K][L], rank order = top-1 first)', async () => {
  const { got, want } = await importAndCompare('olmoe', [fixture('olmoe', 'c4_results.jsonl')], ['--image-token-id', '9', '--num-experts', '8'], 'olmoe');
  assert.deepEqual(sorted(got.top1), sorted(want.top1), 'top-1');
  assert.equal(got.meta.num_experts, 8);
  assert.equal(got.meta.top_k, 2);
  assert.deepEqual(got.meta.layers, [0, 1, 2]);
});

test('vllm: routed_experts (base64 int16 and nested lists), dense all-zero layer dropped, phase column', async () => {
  const { out, got, want, stderr } = await importAndCompare('vllm', [fixture('vllm', 'requests.jsonl')], ['--image-token-id', '9', '--num-experts', '8'], 'vllm');
  assert.deepEqual(sorted(got.top1), sorted(want.top1));
  assert.deepEqual(got.meta.layers, [1, 2, 3], 'decoder layer 0 is dense: its all-zero slice is not a layer');
  assert.match(stderr, /layer 0: all-zero expert ids/);
  const phases = await query(`SELECT phase, count(*) AS n FROM '${join(out, 'routing.parquet')}' GROUP BY ALL`);
  assert.deepEqual(Object.fromEntries(phases.map((p) => [p.phase, Number(p.n)])), want.phase);
  const samples = await query(`SELECT sample, text, source FROM '${join(out, 'samples.parquet')}' ORDER BY sample`);
  assert.equal(samples.length, 2);
  assert.equal(samples[0].text, 'a prompt generated');
  assert.match(String(samples[1].source), /requests\.jsonl:2 request req-1/);
});

test('vllm: the same layers from --moe-layers/--num-layers (layer axis = all decoder layers)', async () => {
  const { got } = await importAndCompare('vllm', [fixture('vllm', 'requests.jsonl')], ['--image-token-id', '9', '--moe-layers', '1-3', '--num-layers', '4', '--num-experts', '8'], 'vllm');
  assert.deepEqual(got.meta.layers, [1, 2, 3]);
  assert.equal(got.meta.num_layers, 4);
});

test('megatron: [seq, batch] token order, routing-map order fixed by the logits sidecar, modality side file', async () => {
  const dir = fixture('megatron');
  const { got, want } = await importAndCompare('megatron', [dir], ['--micro-batch', '2', '--modality', join(dir, 'modality.jsonl')], 'megatron');
  assert.deepEqual(sorted(got.top1), sorted(want.top1), 'top-1 is the highest probability, not slot 0');
  assert.equal(got.meta.router_scoring, 'softmax');
  assert.equal(got.meta.num_experts, 8, 'from logit_shape');
  assert.deepEqual(got.meta.layers, [1, 2]);
});

test('megatron without logits: experts kept, slot order is by id, so the trace says gates are unknown', async () => {
  const dir = fixture('megatron');
  const t = tmp();
  const stripped = readFileSync(join(dir, 'router_trace_rank0.jsonl'), 'utf8')
    .trim().split('\n')
    .map((l) => {
      const o = JSON.parse(l);
      delete o.logit_offset;
      delete o.logit_bytes;
      delete o.logit_shape;
      return JSON.stringify(o);
    }).join('\n') + '\n';
  writeFileSync(join(t, 'router_trace_rank0.jsonl'), stripped);
  const { out, got, want } = await importAndCompare('megatron', [join(t, 'router_trace_rank0.jsonl')], ['--micro-batch', '2', '--modality', join(dir, 'modality.jsonl'), '--num-experts', '8'], 'megatron');
  assert.notDeepEqual(sorted(got.top1), sorted(want.top1), 'without gate values slot 0 is the lowest id, not the top-1');
  assert.match(String(got.meta.gates), /^none/);
  assert.equal(got.meta.expert_order, 'unranked', 'routing_map.nonzero() lists ids by id: slot 0 is no rank');
  assert.equal(got.meta.router_scoring, 'unknown');
  const g = await query(`SELECT count(gate) AS n FROM '${join(out, 'routing.parquet')}'`);
  assert.equal(Number(g[0].n), 0, 'no gate weights recorded: the gate column is NULL (SPEC §2)');
});

test('csv: llama.cpp ffn_moe_topk rows, weights listed by expert id are re-sorted by weight', async () => {
  const { got, want } = await importAndCompare('csv', [fixture('csv', 'moe_trace.csv')], ['--image-token-id', '9', '--num-experts', '8'], 'csv');
  assert.deepEqual(sorted(got.top1), sorted(want.top1));
  // positions count per layer across ubatches (prompt of 6, then 3 decode steps): 0..8 in every layer
  const { out } = await importAndCompare('csv', [fixture('csv', 'moe_trace.csv')], ['--image-token-id', '9'], 'csv');
  const pos = await query(`SELECT layer, list(pos ORDER BY pos) AS p FROM '${join(out, 'routing.parquet')}' GROUP BY layer ORDER BY layer`);
  assert.deepEqual(pos.map((r) => r.p), [0, 1, 2].map(() => [0, 1, 2, 3, 4, 5, 6, 7, 8]));
});

test('hf: output_router_logits saved by hand, MoE-LLaVA placeholder -200 expanded, MoE ordinals mapped to decoder layers', async () => {
  const flags = ['--image-placeholder-id', '-200', '--moe-layers', '1,3', '--num-layers', '4', '--top-k', '1', '--special-ids', '1,2'];
  const a = await importAndCompare('hf', [fixture('hf', 'llava_logits.safetensors')], flags, 'hf');
  assert.deepEqual(sorted(a.got.top1), sorted(a.want.top1));
  assert.deepEqual(a.got.meta.layers, [1, 3]);
  assert.match(String(a.got.meta.router_output), /^logits/);
  // patch index within the image: 0..5
  const patches = await query(`SELECT list(DISTINCT token ORDER BY token) AS t FROM '${join(a.out, 'routing.parquet')}' WHERE modality = 'image'`);
  assert.deepEqual(patches[0].t, [0, 1, 2, 3, 4, 5]);
  // the same routing saved as probabilities (rows sum to 1) is detected and not softmaxed again
  const b = await importAndCompare('hf', [fixture('hf', 'llava_probs.safetensors')], flags, 'hf');
  assert.deepEqual(sorted(b.got.top1), sorted(b.want.top1));
  assert.match(String(b.got.meta.router_output), /^probabilities/);
  const ga = await query(`SELECT sum(gate[1]) AS g FROM '${join(a.out, 'routing.parquet')}'`);
  const gb = await query(`SELECT sum(gate[1]) AS g FROM '${join(b.out, 'routing.parquet')}'`);
  assert.ok(Math.abs(Number(ga[0].g) - Number(gb[0].g)) < 1e-3, 'same gates from logits and from probabilities');
  // --router-output logits forces a softmax of the probabilities: gates get flatter, and it is recorded
  const c = moescope(['import', 'hf', fixture('hf', 'llava_probs.safetensors'), '--out', join(tmp(), 't'), ...flags, '--router-output', 'logits', '--scoring', 'sigmoid']);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /scoring sigmoid/);
});

test('--config: a DeepSeek-style config.json gives the MoE layers, experts and scoring', async () => {
  const d = tmp();
  const cfg = join(d, 'config.json');
  writeFileSync(cfg, JSON.stringify({ model_type: 'deepseek_v3', num_hidden_layers: 4, first_k_dense_replace: 1, moe_layer_freq: 1, n_routed_experts: 8, num_experts_per_tok: 2, scoring_func: 'sigmoid' }));
  const { got, stderr } = await importAndCompare('vllm', [fixture('vllm', 'requests.jsonl')], ['--image-token-id', '9', '--config', cfg], 'vllm');
  assert.deepEqual(got.meta.layers, [1, 2, 3]);
  assert.equal(got.meta.num_layers, 4);
  assert.equal(got.meta.num_experts_source, 'given');
  assert.equal(got.meta.router_scoring, 'sigmoid', 'from scoring_func: vLLM ids alone do not say');
  assert.equal((got.meta.model as { config: { model_type: string } }).config.model_type, 'deepseek_v3');
  assert.doesNotMatch(stderr, /inferred/);
});
