import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { moescope, query, root, sorted, tmp, traceCounts, type Expected } from './helpers.js';

// Every transformers MoE family the capture helper supports: scripts/families/<family>.py imitates the
// family's router and MoE block (real class/attribute names, return values, shapes; the modeling
// file is cited at the top of each), python/moescope_capture.py captures it, `moescope import hf`
// imports it. Expected counts come from what each block dispatched (scripts/families/common.py
// Dispatch), not from anything the helper saved. The committed captures under
// test/fixtures/families/ need no torch; with /usr/bin/python3 + torch the script is also re-run.

const FIX = join(root, 'test/fixtures/families');
const PY = '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const skipPy = hasTorch ? false : `${PY} has no torch (apt install python3-torch python3-numpy)`;

interface FamilyExpected extends Expected {
  gate_sum: Record<string, number>;
  layers: number[];
  plain_topk_mismatch: number;
  samples: number;
  token_strings: string[][];
  image_grids: (number[][] | null)[];
}

const variants = readdirSync(FIX).filter((d) => existsSync(join(FIX, d, 'expected.json'))).sort();

/** Families whose block picks experts with a selection bias / groups: hooking the gate would be wrong. */
const BIASED = ['deepseek_v3-5x', 'glm4_moe-5x', 'minimax_m2-5x', 'deepseek_v3-4x', 'glm4_moe-4x'];

async function check(variant: string, capture: string, want: FamilyExpected): Promise<void> {
  const out = join(tmp('moescope-fam-'), 'trace');
  const r = moescope(['import', 'hf', capture, '--out', out]);
  assert.equal(r.code, 0, `${variant}: ${r.stderr}`);
  const got = await traceCounts(out);
  assert.equal(got.rows, want.rows, `${variant}: rows`);
  assert.deepEqual(sorted(got.tokens), sorted(want.tokens), `${variant}: tokens per modality`);
  assert.deepEqual(sorted(got.all), sorted(want.all), `${variant}: experts per (layer, expert, modality)`);
  assert.deepEqual(sorted(got.top1), sorted(want.top1), `${variant}: top-1 per (layer, expert, modality)`);
  assert.deepEqual(got.meta.layers, want.layers, `${variant}: decoder layers`);
  // gate weights: the ones the block multiplied expert outputs by
  const p = `'${join(out, 'routing.parquet')}'`;
  const sums = await query(`SELECT layer, e, sum(g)::DOUBLE AS s FROM (SELECT layer, unnest(expert) AS e, unnest(gate) AS g FROM ${p}) GROUP BY ALL`);
  assert.equal(sums.length, Object.keys(want.gate_sum).length, `${variant}: (layer, expert) pairs with gates`);
  for (const row of sums) {
    const w = want.gate_sum[`${row.layer}/${row.e}`];
    assert.ok(w !== undefined && Math.abs(Number(row.s) - w) <= 1e-4 * Math.max(1, Math.abs(w)), `${variant}: gate sum of layer ${row.layer} expert ${row.e}: ${row.s} vs ${w}`);
  }
  // token strings per position, in samples.parquet
  const s = `'${join(out, 'samples.parquet')}'`;
  const samples = await query(`SELECT * FROM ${s} ORDER BY sample`);
  assert.equal(samples.length, want.samples);
  samples.forEach((row, i) => {
    assert.deepEqual(row.tokens ?? null, want.token_strings[i], `${variant}: tokens of sample ${i}`);
    assert.deepEqual(row.image_grids ?? null, want.image_grids[i] ?? null, `${variant}: image grids of sample ${i}`);
    assert.equal((row.images as unknown[]).length, (want.image_grids[i] ?? []).length, `${variant}: images of sample ${i}`);
  });
}

for (const variant of variants) {
  test(`family ${variant}: captured routing = what the block dispatched (committed capture)`, async () => {
    const want = JSON.parse(readFileSync(join(FIX, variant, 'expected.json'), 'utf8')) as FamilyExpected;
    await check(variant, join(FIX, variant, 'capture'), want);
    if (BIASED.includes(variant)) assert.ok(want.plain_topk_mismatch > 0, `${variant}: the fixture must route differently from a plain top-k`);
  });
}

test('vision-language capture: images as PNG, token strings and merged patch grids in samples.parquet', async () => {
  const v = 'qwen3_vl_moe-4x';
  const want = JSON.parse(readFileSync(join(FIX, v, 'expected.json'), 'utf8')) as FamilyExpected;
  const out = join(tmp('moescope-vlm-'), 'trace');
  const r = moescope(['import', 'hf', join(FIX, v, 'capture'), '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const rows = await query(`SELECT sample, images, image_grids, tokens FROM '${join(out, 'samples.parquet')}' ORDER BY sample`);
  assert.equal(rows.length, 3);
  const PATCH = 16, MERGE = 2; // scripts/families/qwen3_vl_moe.py: 16-pixel patches, 2x2 merge
  rows.forEach((row, i) => {
    const grids = row.image_grids as number[][];
    assert.deepEqual(grids, want.image_grids[i], `sample ${i} grids = image_grid_thw / spatial_merge_size`);
    const images = row.images as Uint8Array[];
    assert.equal(images.length, grids.length, `sample ${i}: one PNG per grid`);
    images.forEach((png, j) => {
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], 'PNG signature');
      const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
      const [w, h] = [dv.getUint32(16), dv.getUint32(20)];
      assert.deepEqual([h, w], [grids[j][1] * MERGE * PATCH, grids[j][2] * MERGE * PATCH], `sample ${i} image ${j}: pixels = grid x merge x patch`);
    });
    assert.deepEqual(row.tokens, want.token_strings[i]);
  });
  // image tokens per sample = the grids' token counts (patch index restarts per image)
  const per = await query(`SELECT sample, count(*)::INTEGER AS n, max(token)::INTEGER AS top FROM '${join(out, 'routing.parquet')}' WHERE modality = 'image' AND layer = 0 GROUP BY sample ORDER BY sample`);
  per.forEach((p, i) => {
    const n = want.image_grids[i]!.reduce((a, g) => a + g[0] * g[1] * g[2], 0);
    assert.equal(p.n, n, `sample ${i}: image tokens`);
    assert.equal(p.top, n - 1, `sample ${i}: patch index`);
  });
});

test('every family of the docs table has a fixture', () => {
  const doc = readFileSync(join(root, 'docs/importers.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Model families (Python helper)'));
  assert.ok(section.length > 100, 'docs/importers.md has the families section');
  for (const fam of ['mixtral', 'qwen2_moe', 'qwen3_moe', 'qwen3_vl_moe', 'olmoe', 'deepseek_v2', 'deepseek_v3', 'llama4', 'gpt_oss', 'glm4_moe', 'phimoe', 'granitemoe', 'dbrx', 'jamba']) {
    assert.ok(variants.some((v) => v.startsWith(`${fam}-`)), `fixture for ${fam}`);
    assert.ok(section.includes(`\`${fam}\``), `docs row for ${fam}`);
  }
});

test('family fixtures re-made by scripts/families with torch import to the block decisions', { skip: skipPy }, async () => {
  const dir = tmp('moescope-famgen-');
  const r = spawnSync(PY, [join(root, 'scripts/families/make_family_fixtures.py'), '--out', dir], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const made = readdirSync(dir).sort();
  assert.deepEqual(made, variants, 'the script makes exactly the committed variants');
  for (const v of made) {
    const want = JSON.parse(readFileSync(join(dir, v, 'expected.json'), 'utf8')) as FamilyExpected;
    await check(v, join(dir, v, 'capture'), want);
  }
});

test('MoE-LLaVA dumps: convert_moellava refuses what it cannot place', { skip: skipPy }, () => {
  const code = (body: string) => [
    'import sys, torch',
    `sys.path.insert(0, ${JSON.stringify(join(root, 'python'))})`,
    'from moescope_capture import convert_moellava',
    'g = [torch.randn(9, 4), torch.randn(9, 4)]',
    body,
  ].join('\n');
  const out = join(tmp('moescope-llava-'), 'cap');
  // no moe_layers and no layer_indices in the dump: which decoder layers? refused
  let r = spawnSync(PY, ['-c', code(`convert_moellava({0: dict(gating_logit=g, images=None, input_ids=torch.ones(1, 5, dtype=torch.long), output_ids=torch.ones(1, 10, dtype=torch.long))}, ${JSON.stringify(out)})`)], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /pass moe_layers=/);
  // rows must be the expanded output_ids minus the last token: 10 ids -> 9 rows is right, 12 is not
  r = spawnSync(PY, ['-c', code(`convert_moellava({0: dict(gating_logit=g, images=None, input_ids=torch.ones(1, 5, dtype=torch.long), output_ids=torch.ones(1, 12, dtype=torch.long))}, ${JSON.stringify(out)}, moe_layers=[1, 3])`)], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /gating_logit has 9 rows but output_ids expand to 12 tokens/);
  r = spawnSync(PY, ['-c', code(`convert_moellava({0: dict(gating_logit=g, images=None, input_ids=torch.ones(1, 5, dtype=torch.long), output_ids=torch.ones(1, 10, dtype=torch.long))}, ${JSON.stringify(out)}, moe_layers=[1, 3])`)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(readFileSync(join(out, 'moescope_routing.json'), 'utf8')) as { top_k: number; moe_layers: number[] };
  assert.equal(m.top_k, 1, 'only the argmax expert is known from the logits');
  assert.deepEqual(m.moe_layers, [1, 3]);
});

test('a biased family whose gate returns only logits and whose top-k the helper cannot find is refused, not recomputed', { skip: skipPy }, () => {
  // DeepSeek-V3 5.x with route_tokens_to_experts hidden: what is left is a logits-only gate
  const code = [
    'import sys, torch',
    `sys.path.insert(0, ${JSON.stringify(join(root, 'python'))}); sys.path.insert(0, ${JSON.stringify(join(root, 'scripts/families'))})`,
    'from moescope_capture import RoutingCapture',
    'import deepseek_v3',
    'm = deepseek_v3.VARIANTS["deepseek_v3-5x"]()',
    'blk = m.moe_blocks[1]',
    'route = type(blk).route_tokens_to_experts',
    'del type(blk).route_tokens_to_experts',
    'blk.pick = route.__get__(blk)',
    'blk.forward = lambda h: blk.experts(h.view(-1, h.shape[-1]), *blk.pick(blk.gate(h))).view(*h.shape)',
    `with RoutingCapture(m, ${JSON.stringify(join(tmp('moescope-refuse-'), 'cap'))}) as cap:`,
    '    ids = torch.tensor([[1, 7, 9, 11]]); cap.inputs(ids)',
    '    m(ids)',
  ].join('\n');
  const r = spawnSync(PY, ['-c', code], { encoding: 'utf8' });
  assert.notEqual(r.status, 0, 'must not capture');
  assert.match(r.stderr, /returned only logits, and a DeepSeek-V3 block picks its experts elsewhere .*refusing to guess/);
});

test('a model family the helper does not know is refused by name', { skip: skipPy }, () => {
  const code = [
    'import sys, torch',
    `sys.path.insert(0, ${JSON.stringify(join(root, 'python'))})`,
    'from moescope_capture import RoutingCapture',
    'class Cfg(dict):',
    '    def to_dict(self): return dict(self)',
    'm = torch.nn.Module(); m.config = Cfg(model_type="qwen3_next", num_experts=4)',
    'RoutingCapture(m, "/nonexistent-never-written")',
  ].join('\n');
  const r = spawnSync(PY, ['-c', code], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /ValueError: model_type 'qwen3_next' is not a MoE family moescope_capture knows/);
  assert.ok(!existsSync('/nonexistent-never-written'));
});
