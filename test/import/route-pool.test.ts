import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RoutePool, routeJob, type RouteJob } from '../../src/import/route-pool.js';
import { runImport } from '../../src/import/driver.js';
import { FORMATS } from '../../src/import/formats.js';
import { toOptions } from '../../src/cli/commands/import.js';
import { InputError } from '../../src/util/errors.js';
import type { Routed } from '../../src/import/routing.js';
import { fixture, tmp } from './helpers.js';

/** Deterministic normal-ish logits (sum of uniforms), some rows with ties. */
function logits(T: number, E: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const out = new Float32Array(T * E);
  for (let i = 0; i < out.length; i++) out[i] = (u() + u() + u() - 1.5) * 4;
  for (let t = 0; t < T; t += 7) out[t * E + 3] = out[t * E + 5]; // a tie every 7th row
  return out;
}

function sameBits(got: Routed, want: Routed, what: string): void {
  assert.deepEqual(Array.from(got.experts), Array.from(want.experts), `${what}: experts`);
  assert.deepEqual(Array.from(new Uint32Array(got.gates.buffer, got.gates.byteOffset, got.gates.length)), Array.from(new Uint32Array(want.gates.buffer, want.gates.byteOffset, want.gates.length)), `${what}: gate bits`);
  assert.equal(got.probs === undefined, want.probs === undefined, `${what}: probs present`);
  if (got.probs && want.probs) assert.deepEqual(Array.from(got.probs), Array.from(want.probs), `${what}: probs`);
}

test('routing workers give the bits this thread gives, and the same refusal', async () => {
  const T = 257, E = 16, K = 4;
  const base = { T, E, K, areProbs: false, where: 'x.safetensors: router_logits.0' };
  // the scores a view into a larger buffer, as a safetensors reader hands them over
  const file = logits(3 * T, E, 1);
  const scores = file.subarray(T * E, 2 * T * E);
  const bias = Float32Array.from({ length: E }, (_, e) => (e % 5) * 0.01);
  const jobs: [string, RouteJob][] = [
    ['softmax', { ...base, scores, scoring: 'softmax', normTopk: false, wantProbs: false }],
    ['softmax, renormalised, full probs', { ...base, scores, scoring: 'softmax', normTopk: true, wantProbs: true }],
    ['sigmoid', { ...base, scores: logits(T, E, 2), scoring: 'sigmoid', normTopk: true, wantProbs: false }],
    ['biased, group-limited (DeepSeek-V3)', {
      ...base, scores: logits(T, E, 3), scoring: 'sigmoid', normTopk: true, wantProbs: false, bias,
      rule: { scoring: 'sigmoid', normTopk: true, nGroup: 4, topkGroup: 2, groupScore: 'top2sum', scalingFactor: 2.5 },
    }],
  ];
  const pool = new RoutePool(2);
  try {
    // all at once, so both workers take jobs and reuse each other's score buffers
    const got = await Promise.all([...jobs, ...jobs].map(([, j]) => pool.route(j)));
    got.forEach((g, i) => sameBits(g, routeJob(jobs[i % jobs.length][1]), jobs[i % jobs.length][0]));
    assert.deepEqual(Array.from(scores.subarray(0, 4)), Array.from(file.subarray(T * E, T * E + 4)), 'the caller\'s scores are untouched');
    // 16 experts do not split into 3 groups: routeByRule refuses, in a worker as here
    const bad: RouteJob = { ...jobs[3][1], rule: { ...jobs[3][1].rule!, nGroup: 3 } };
    let inline: unknown;
    try {
      routeJob(bad);
    } catch (e) {
      inline = e;
    }
    assert.ok(inline instanceof InputError);
    await assert.rejects(pool.route(bad), (e: unknown) => e instanceof InputError && e.message === (inline as Error).message);
    sameBits(await pool.route(jobs[0][1]), routeJob(jobs[0][1]), 'after a refused job');
  } finally {
    await pool.close();
  }
});

test('scores read into memory the pool lent move to a worker as they are; other scores are copied', async () => {
  const T = 96, E = 32, K = 4;
  const job: RouteJob = { scores: logits(T, E, 4), T, E, K, scoring: 'softmax', areProbs: false, normTopk: false, wantProbs: false, where: 'x' };
  const want = routeJob(job);
  const pool = new RoutePool(1);
  try {
    const buf = pool.lend(4 * T * E);
    const lent = new Float32Array(buf, 0, T * E);
    lent.set(job.scores);
    sameBits(await pool.route({ ...job, scores: lent }), want, 'lent');
    assert.equal(buf.byteLength, 0, 'the lent memory moved to the worker (no copy)');
    // a whole buffer of the caller's own, not lent: copied, the caller keeps it
    const own = Float32Array.from(job.scores);
    sameBits(await pool.route({ ...job, scores: own }), want, 'own');
    assert.equal(own.buffer.byteLength, 4 * T * E, 'the caller\'s own scores stay with it');
    assert.deepEqual(Array.from(own), Array.from(job.scores));
    // lent memory the reader offset into is copied too (only whole lent buffers move)
    const buf2 = pool.lend(4 * (T + 1) * E);
    const offset = new Float32Array(buf2, 4 * E, T * E);
    offset.set(job.scores);
    sameBits(await pool.route({ ...job, scores: offset }), want, 'lent, offset');
    assert.equal(buf2.byteLength, 4 * (T + 1) * E, 'not moved');
  } finally {
    await pool.close();
  }
});

/** Every file of a trace folder but meta.json (which names its folder), by name. */
function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else if (e.name !== 'meta.json') out.set(`${rel}${e.name}`, readFileSync(join(d, e.name)));
    }
  };
  walk(dir, '');
  return out;
}

test('an import routed in workers writes the trace an import routed in this thread writes', async () => {
  const ds = (f: string) => fixture('engines', `deepseek_v3/${f}`);
  const cases: [string, string, Record<string, string | boolean>][] = [
    ['MoE-LLaVA logits', fixture('hf', 'llava_logits.safetensors'), { imagePlaceholderId: '-200', moeLayers: '1,3', numLayers: '4', topK: '2', fullProbs: true }],
    ['DeepSeek-V3 logits, bias and groups', ds('logits.safetensors'), { config: ds('config.json'), routerBias: ds('model-00001-of-00001.safetensors'), imageTokenId: '9' }],
  ];
  for (const [what, input, flags] of cases) {
    const traces = [];
    for (const routeThreads of [0, 2]) {
      const out = join(tmp(), 'trace');
      const opts = toOptions({ out, routerOutput: 'auto', microBatch: '1', layerBase: '0', ...flags } as Parameters<typeof toOptions>[0]);
      await runImport('hf', FORMATS.hf, [input], out, { ...opts, routeThreads });
      traces.push(files(out));
    }
    const [inline, workers] = traces;
    assert.deepEqual([...workers.keys()].sort(), [...inline.keys()].sort(), `${what}: the same files`);
    for (const [name, bytes] of inline) assert.ok(bytes.equals(workers.get(name)!), `${what}: ${name} differs`);
  }
});
