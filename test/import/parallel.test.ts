import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { moescope, query, tmp } from './helpers.js';

// Several input files (one per rank) are parsed in worker threads, one file each, several at once
// (src/import/parallel-read.ts); the trace must be the one the files give read one after another,
// i.e. the trace of their concatenation.

const T = 40, L = 3, K = 2, E = 8;
let seed = 7;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);

/** One vLLM RequestOutput line (vllm/outputs.py routed_experts [T, L, K] int16, base64). */
function request(id: string): string {
  const re = new Int16Array(T * L * K);
  for (let t = 0; t < T; t++) {
    for (let l = 0; l < L; l++) {
      const a = Math.floor(rnd() * E);
      re[(t * L + l) * K] = a;
      re[(t * L + l) * K + 1] = (a + 1 + Math.floor(rnd() * (E - 1))) % E;
    }
  }
  const ids = Array.from({ length: T }, () => Math.floor(rnd() * 1000));
  return JSON.stringify({
    request_id: id, prompt_token_ids: ids.slice(0, 25),
    outputs: [{ index: 0, token_ids: ids.slice(25), routed_experts: { dtype: 'int16', shape: [T, L, K], data: Buffer.from(re.buffer).toString('base64') } }],
  });
}

test('import of several vLLM files (parsed in parallel) gives the trace of their concatenation', async () => {
  const d = tmp();
  const files = [0, 1, 2].map((f) => {
    const p = join(d, `rank${f}.jsonl`);
    writeFileSync(p, [0, 1, 2].map((i) => request(`r${f}-${i}`)).join('\n') + '\n');
    return p;
  });
  const whole = join(d, 'all.jsonl');
  writeFileSync(whole, files.map((f) => readFileSync(f, 'utf8')).join(''));
  const a = moescope(['import', 'vllm', ...files, '--out', join(d, 'a'), '--num-experts', String(E)]);
  assert.equal(a.code, 0, a.stderr);
  const b = moescope(['import', 'vllm', whole, '--out', join(d, 'b'), '--num-experts', String(E)]);
  assert.equal(b.code, 0, b.stderr);
  const rows = (t: string) => query(`SELECT sample, pos, modality, token, layer, expert FROM '${join(d, t, 'routing.parquet')}' ORDER BY sample, layer, pos`);
  const ra = await rows('a');
  assert.equal(ra.length, 3 * 3 * T * L);
  assert.deepEqual(ra, await rows('b'));
  for (const agg of ['counts', 'coact', 'repeat', 'token', 'tokens']) {
    const q = (t: string) => query(`SELECT * FROM '${join(d, t, `agg-${agg}.parquet`)}'`);
    assert.deepEqual(await q('a'), await q('b'), `agg-${agg}`);
  }
  // each file's requests keep their file in the sample's source
  const src = await query(`SELECT sample, source FROM '${join(d, 'a', 'samples.parquet')}' ORDER BY sample`);
  assert.deepEqual(src.map((r) => /rank(\d)\.jsonl/.exec(String(r.source))?.[1]), ['0', '0', '0', '1', '1', '1', '2', '2', '2']);
});

test('a bad line in the second of several files: one error naming that file and line, no output', () => {
  const d = tmp();
  const good = join(d, 'rank0.jsonl'), bad = join(d, 'rank1.jsonl');
  writeFileSync(good, request('x') + '\n');
  writeFileSync(bad, request('y') + '\n{"request_id": "z", "prompt_token_ids": [1,\n');
  const r = moescope(['import', 'vllm', good, bad, '--out', join(d, 'out'), '--num-experts', String(E)]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /rank1\.jsonl:2/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.equal(existsSync(join(d, 'out')), false);
});
