import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceWriter } from '../../src/trace/writer.js';
import { TraceWriterThread } from '../../src/trace/writer-thread.js';
import { parseTraceMeta } from '../../src/trace/meta.js';
import { writeDirAtomic } from '../../src/util/atomic.js';
import { query } from '../capture/helpers.js';


function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'moescope-trace-'));
}

/** n rows with values that are easy to recompute from the row index. */
function rows(n: number, K: number, E: number, offset = 0) {
  const sample = new Int32Array(n), pos = new Int32Array(n), token = new Int32Array(n), layer = new Int32Array(n);
  const experts = new Int32Array(n * K), gates = new Float32Array(n * K), probs = new Float32Array(n * E);
  const modality: string[] = [];
  for (let i = 0; i < n; i++) {
    const g = i + offset;
    sample[i] = Math.floor(g / 100);
    pos[i] = g % 100;
    token[i] = g * 7 - 3;
    layer[i] = g % 24;
    modality.push(['text', 'image', 'special'][g % 3]);
    for (let k = 0; k < K; k++) {
      experts[i * K + k] = (g + k) % E;
      gates[i * K + k] = 1 / (k + 2) + g * 1e-6;
    }
    for (let e = 0; e < E; e++) probs[i * E + e] = (e + 1) / 1000 + g;
  }
  return { sample, pos, modality, token, layer, experts, gates, probs };
}

test('trace files have the SPEC column names and types, and round-trip values', async () => {
  const dir = tmp();
  try {
    const out = join(dir, 'trace');
    const K = 2, E = 8, n = 5000; // more than one data chunk (2048 rows)
    await writeDirAtomic(out, async (d) => {
      const w = await TraceWriter.open(d, { topK: K, numExperts: E, fullProbs: true });
      await w.appendRouting(rows(3000, K, E));
      await w.appendRouting(rows(n - 3000, K, E, 3000));
      await w.appendSample({ sample: 0, text: "it's a red circle", images: [new Uint8Array([137, 80, 78, 71]), new Uint8Array([1, 2])], source: 'x:1' });
      await w.appendSample({ sample: 1, text: '', images: [], source: 'x:2' });
      await w.finish({ num_layers: 24, router_scoring: 'softmax', data: 'test' });
    });
    assert.deepEqual(readdirSync(out).sort(), ['agg-coact.parquet', 'agg-counts.parquet', 'agg-repeat.parquet', 'agg-token.parquet', 'agg-tokens.parquet', 'meta.json', 'routing.parquet', 'samples.parquet']);
    const r = join(out, 'routing.parquet').replace(/'/g, "''");
    const desc = await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '${r}')`);
    assert.deepEqual(desc, [
      ['sample', 'INTEGER'], ['pos', 'INTEGER'], ['modality', 'VARCHAR'], ['token', 'INTEGER'], ['layer', 'SMALLINT'],
      ['expert', 'SMALLINT[]'], ['gate', 'FLOAT[]'], ['prob', 'FLOAT[]'],
    ]);
    const s = join(out, 'samples.parquet').replace(/'/g, "''");
    const sdesc = await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '${s}')`);
    assert.deepEqual(sdesc, [['sample', 'INTEGER'], ['text', 'VARCHAR'], ['images', 'BLOB[]'], ['source', 'VARCHAR']]);

    // files are laid out by layer, sample, pos: read back in the order written
    const got = await query(`SELECT sample, pos, modality, token, layer, expert, gate, prob FROM '${r}' ORDER BY sample, pos`);
    assert.equal(got.length, n);
    const want = rows(n, K, E);
    for (const i of [0, 1, 2047, 2048, 2999, 3000, 3001, 4999]) {
      const [sample, pos, modality, token, layer, expert, gate, prob] = got[i] as [number, number, string, number, number, number[], number[], number[]];
      assert.equal(sample, want.sample[i]);
      assert.equal(pos, want.pos[i]);
      assert.equal(modality, want.modality[i]);
      assert.equal(token, want.token[i]);
      assert.equal(layer, want.layer[i]);
      assert.deepEqual(expert, [...want.experts.subarray(i * K, i * K + K)]);
      assert.deepEqual(gate, [...want.gates.subarray(i * K, i * K + K)]);
      assert.deepEqual(prob, [...want.probs.subarray(i * E, i * E + E)]);
    }
    // top-1 is expert[1] in SQL
    const top1 = await query(`SELECT count(*) FROM '${r}' WHERE expert[1] = (sample * 100 + pos) % 8`);
    assert.equal(Number(top1[0][0]), n);

    const samples = await query(`SELECT sample, text, images, source FROM '${s}' ORDER BY sample`);
    assert.equal(samples.length, 2);
    assert.equal(samples[0][1], "it's a red circle");
    const imgs = await query(`SELECT len(images), octet_length(images[1]), images[2] = '\\x01\\x02'::BLOB FROM '${s}' WHERE sample = 0`);
    assert.deepEqual(imgs[0].map(Number), [2, 4, 1]);

    const meta = parseTraceMeta(JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')), 'meta.json');
    assert.equal(meta.num_experts, E);
    assert.equal(meta.top_k, K);
    assert.equal(meta.num_layers, 24);
    assert.equal(meta.rows, n);
    assert.equal(meta.samples, 2);
    // tokens per modality: a layer's rows are its tokens; layers may differ (here they do), the largest counts
    const perLayer = new Map<number, number[]>();
    for (let g = 0; g < n; g++) {
      const c = perLayer.get(g % 24) ?? [0, 0, 0];
      c[g % 3]++;
      perLayer.set(g % 24, c);
    }
    const maxOf = (m: number) => Math.max(...[...perLayer.values()].map((c) => c[m]));
    assert.deepEqual(meta.tokens, { image: maxOf(1), special: maxOf(2), text: maxOf(0) });
    assert.deepEqual(meta.layers, [...Array(24).keys()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without full probs there is no prob column; extra columns and modality codes work', async () => {
  const dir = tmp();
  try {
    const w = await TraceWriter.open(dir, { topK: 1, numExperts: 4, fullProbs: false, extraColumns: [{ name: 'phase', type: 'VARCHAR' }, { name: 'request', type: 'INTEGER' }] });
    const n = 10;
    await w.appendRouting({
      sample: new Int32Array(n), pos: Int32Array.from({ length: n }, (_, i) => i), modality: Uint8Array.from({ length: n }, (_, i) => i % 3),
      token: new Int32Array(n), layer: new Int32Array(n).fill(3), experts: Int32Array.from({ length: n }, (_, i) => i % 4),
      gates: new Float32Array(n).fill(0.5),
      extra: { phase: Array.from({ length: n }, (_, i) => (i < 6 ? 'prefill' : 'decode')), request: Int32Array.from({ length: n }, (_, i) => 100 + i) },
    });
    const meta = await w.finish({ num_layers: 4, router_scoring: 'sigmoid', data: { format: 'test' } });
    assert.deepEqual(meta.layers, [3]);
    assert.deepEqual(meta.tokens, { image: 3, special: 4, text: 3 });
    assert.deepEqual(readdirSync(dir).sort(), ['agg-coact.parquet', 'agg-counts.parquet', 'agg-repeat.parquet', 'agg-token.parquet', 'agg-tokens.parquet', 'meta.json', 'routing.parquet', 'samples.parquet']);
    const r = join(dir, 'routing.parquet').replace(/'/g, "''");
    const desc = await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '${r}')`);
    assert.deepEqual(desc.map((x) => x[0]), ['sample', 'pos', 'modality', 'token', 'layer', 'expert', 'gate', 'phase', 'request']);
    const got = await query(`SELECT modality, phase, request, expert FROM '${r}' ORDER BY pos`);
    assert.deepEqual(got[0], ['special', 'prefill', 100, [0]]);
    assert.deepEqual(got[7], ['text', 'decode', 107, [3]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an expert outside 0..E-1 is an input error; abort removes the temporary database', async () => {
  const dir = tmp();
  try {
    const w = await TraceWriter.open(dir, { topK: 1, numExperts: 4, fullProbs: false });
    await assert.rejects(
      w.appendRouting({ sample: new Int32Array(1), pos: new Int32Array(1), modality: ['text'], token: new Int32Array(1), layer: new Int32Array(1), experts: Int32Array.of(4), gates: Float32Array.of(1) }),
      (e: Error) => e.name === 'InputError' && /expert 4 outside 0\.\.3/.test(e.message),
    );
    // a caller's check against more experts than the trace has is not taken for the writer's own
    await assert.rejects(
      w.appendRouting({ sample: new Int32Array(1), pos: new Int32Array(1), modality: ['text'], token: new Int32Array(1), layer: new Int32Array(1), experts: Int32Array.of(4), gates: Float32Array.of(1), expertsBelow: 5 }),
      (e: Error) => e.name === 'InputError' && /expert 4 outside 0\.\.3/.test(e.message),
    );
    await w.abort();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Shards are laid out as ORDER BY layer, sample, pos with ties in arrival order. The writer gets
// there by a counting sort over layers when each layer's rows arrive in (sample, pos) order, and
// by the COPY's sort otherwise; both are checked against the rule itself, row by row in file order.
for (const [what, shuffle] of [['rows in order within each layer (no sort in the COPY)', false], ['rows in random order (the COPY sorts)', true]] as const) {
  test(`shards are in layer, sample, pos order, ties as they came: ${what}`, async () => {
    const dir = tmp();
    try {
      const out = join(dir, 'trace');
      // per sample, layer after layer (as capture and the engines write), one duplicated row
      const list: { sample: number; pos: number; layer: number }[] = [];
      for (let s = 0; s < 4; s++) for (const l of [0, 5, 2]) for (let p = 0; p < 30; p++) list.push({ sample: s, pos: p, layer: l });
      list.splice(50, 0, { ...list[49] });
      let seed = 5;
      const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);
      if (shuffle) for (let i = list.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [list[i], list[j]] = [list[j], list[i]];
      }
      await writeDirAtomic(out, async (d) => {
        const w = await TraceWriter.open(d, { topK: 1, numExperts: 4, fullProbs: false, bufferRows: 100 });
        for (let o = 0; o < list.length; o += 37) {
          const b = list.slice(o, o + 37);
          await w.appendRouting({
            sample: Int32Array.from(b, (r) => r.sample), pos: Int32Array.from(b, (r) => r.pos), layer: Int32Array.from(b, (r) => r.layer),
            token: Int32Array.from(b, (_, i) => o + i), // the arrival index
            modality: b.map(() => 'text'), experts: Int32Array.from(b, (_, i) => (o + i) % 4), gates: new Float32Array(b.length).fill(1),
          });
        }
        await w.finish({ num_layers: 6, router_scoring: 'softmax', data: 'test' });
      });
      const shards = readdirSync(join(out, 'routing')).sort();
      assert.ok(shards.length >= 3, `${shards.length} shards`);
      const seen: number[] = [];
      for (const f of shards) {
        const file = join(out, 'routing', f).replace(/'/g, "''");
        const got = (await query(`SELECT layer, sample, pos, token, expert[1] FROM read_parquet('${file}', file_row_number = true) ORDER BY file_row_number`)) as number[][];
        for (let i = 1; i < got.length; i++) {
          const [a, b] = [got[i - 1], got[i]];
          const before = a[0] !== b[0] ? a[0] < b[0] : a[1] !== b[1] ? a[1] < b[1] : a[2] !== b[2] ? a[2] < b[2] : a[3] < b[3];
          assert.ok(before, `${f}: row ${i - 1} (${a.join(',')}) before row ${i} (${b.join(',')})`);
        }
        for (const r of got) {
          assert.equal(r[4], r[3] % 4, 'the row kept its own expert');
          seen.push(r[3]);
        }
      }
      assert.deepEqual(seen.sort((x, y) => x - y), list.map((_, i) => i));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('the writer thread hands row buffers back; batches written from reused buffers are the rows given', async () => {
  const dir = tmp();
  try {
    const K = 2, E = 8, n = 3000, batches = 12;
    const w = await TraceWriterThread.open(dir, { topK: K, numExperts: E, fullProbs: false });
    let reused = 0;
    try {
    for (let b = 0; b < batches; b++) {
      const want = rows(n, K, E, b * n);
      const take = <T extends Int32Array | Float32Array | Uint8Array>(C: new (buf: ArrayBuffer) => T, len: number, from: ArrayLike<number>): T => {
        const a = new C(w.takeBuffer(len * (C as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT));
        if (a.some((v) => v !== 0)) reused++; // a new buffer is zeroed; a handed-back one holds an earlier batch
        a.set(from);
        return a;
      };
      await w.appendRouting({
        sample: take(Int32Array, n, want.sample), pos: take(Int32Array, n, want.pos), token: take(Int32Array, n, want.token),
        layer: take(Int32Array, n, want.layer), experts: take(Int32Array, n * K, want.experts), gates: take(Float32Array, n * K, want.gates),
        modality: take(Uint8Array, n, want.modality.map((m) => ['text', 'image', 'special'].indexOf(m))),
      }, true);
    }
    await w.finish({ num_layers: 24, router_scoring: 'softmax', data: { format: 'test' } });
    } catch (e) {
      await w.abort(); // the thread must not outlive a failed test
      throw e;
    }
    assert.ok(reused > 0, 'some batches were written from buffers the thread handed back');
    const all = rows(n * batches, K, E);
    const got = await query(`SELECT sample, pos, token, layer, expert FROM read_parquet('${join(dir, 'routing*.parquet').replace(/'/g, "''")}') ORDER BY sample, pos, layer`);
    assert.equal(got.length, n * batches);
    const order = Array.from({ length: n * batches }, (_, i) => i).sort((a, b) => all.sample[a] - all.sample[b] || all.pos[a] - all.pos[b] || all.layer[a] - all.layer[b]);
    order.forEach((i, r) => {
      assert.deepEqual(got[r], [all.sample[i], all.pos[i], all.token[i], all.layer[i], Array.from(all.experts.subarray(i * K, i * K + K))], `row ${r}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the writer thread keeps no buffers for a caller that copies its rows, and a bounded amount for one that hands them over', async () => {
  const dir = tmp();
  const w = await TraceWriterThread.open(dir, { topK: 1, numExperts: 4, fullProbs: false });
  try {
    const batch = (n: number) => ({
      sample: new Int32Array(n), pos: Int32Array.from({ length: n }, (_, i) => i), modality: new Uint8Array(n), token: new Int32Array(n),
      layer: new Int32Array(n), experts: Int32Array.from({ length: n }, (_, i) => i % 4), gates: new Float32Array(n).fill(1),
    });
    // capture's way: copies of batches of ever new sizes; nothing may pile up
    for (let b = 0; b < 20; b++) await w.appendRouting(batch(1000 + b));
    assert.equal(w.keptBytes, 0);
    // the importer's way: handed over, moved back, kept up to a bound however many sizes come
    for (let b = 0; b < 40; b++) await w.appendRouting(batch(200_000 + b), true);
    assert.ok(w.keptBytes > 0, 'handed-over buffers come back');
    assert.ok(w.keptBytes <= 64 << 20, `kept ${w.keptBytes} bytes`);
    await w.finish({ num_layers: 1, router_scoring: 'softmax', data: { format: 'test' } });
  } catch (e) {
    await w.abort();
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
