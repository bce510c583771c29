import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { TraceWriter } from '../../src/trace/writer.js';
import { ShardThread } from '../../src/trace/shard-thread.js';
import { RowStage } from '../../src/trace/row-stage.js';
import { parseTraceMeta } from '../../src/trace/meta.js';
import { writeDirAtomic } from '../../src/util/atomic.js';

/**
 * Routing files handed to the shard thread (src/trace/shard-thread.ts) against the same rows
 * written in the writer's own thread: the same bytes, file for file, and meta.json's sizes and
 * SHA-256 (taken as the files were written) are those of the files on disk, hashed here again.
 */

function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

/** Rows of 3 samples x 4 layers x 700 positions, batch after batch, K = 2 of E = 8; dropGates after the first batches when asked. */
async function writeTrace(out: string, shardThread: boolean, dropGatesLate: boolean): Promise<void> {
  await writeDirAtomic(out, async (d) => {
    const w = await TraceWriter.open(d, { topK: 2, numExperts: 8, fullProbs: false, bufferRows: 1000, shardThread });
    try {
      for (let s = 0; s < 3; s++) {
        for (let l = 0; l < 4; l++) {
          const n = 700;
          const pos = Int32Array.from({ length: n }, (_, i) => i);
          const experts = Int32Array.from({ length: 2 * n }, (_, i) => (i * 5 + s + l * 3 + (i & 1)) % 8);
          for (let i = 0; i < 2 * n; i += 2) if (experts[i] === experts[i + 1]) experts[i + 1] = (experts[i + 1] + 1) % 8;
          await w.appendRouting({
            sample: new Int32Array(n).fill(s), pos, modality: new Uint8Array(n).fill(1), token: Int32Array.from(pos, (p) => (p * 31 + s) % 97),
            layer: new Int32Array(n).fill(l), experts, gates: Float32Array.from({ length: 2 * n }, (_, i) => (i & 1 ? 0.25 : 0.75) + s * 1e-3),
          });
        }
        if (dropGatesLate && s === 1) w.dropGates();
      }
      await w.finish({ num_layers: 4, router_scoring: 'softmax', data: 'test' });
    } catch (e) {
      await w.abort();
      throw e;
    }
  });
}

for (const dropGatesLate of [false, true]) {
  test(`routing files written in the shard thread are the inline writer's bytes; meta.json records them${dropGatesLate ? ' (early shards rewritten when gates turn out missing)' : ''}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moescope-shards-'));
    try {
      const [inline, threaded] = [join(dir, 'inline'), join(dir, 'threaded')];
      await writeTrace(inline, false, dropGatesLate);
      await writeTrace(threaded, true, dropGatesLate);
      const files = allFiles(threaded);
      assert.ok(files.filter((f) => f.startsWith('routing')).length >= 5, `shards: ${files.join(', ')}`);
      assert.deepEqual(files, allFiles(inline));
      for (const f of files) {
        if (f === 'meta.json') continue;
        assert.ok(readFileSync(join(threaded, f)).equals(readFileSync(join(inline, f))), `${f} differs`);
      }
      for (const out of [inline, threaded]) {
        const meta = parseTraceMeta(JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')), out);
        assert.deepEqual(Object.keys(meta.files!).sort(), files.filter((f) => f !== 'meta.json').map((f) => f.split('\\').join('/')).sort());
        for (const [rel, rec] of Object.entries(meta.files!)) {
          const bytes = readFileSync(join(out, rel));
          assert.equal(rec.bytes, bytes.length, `${rel}: size`);
          assert.equal(rec.sha256, createHash('sha256').update(bytes).digest('hex'), `${rel}: SHA-256`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a routing file the shard thread cannot write is an error from the next wait', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-shards-'));
  const t = new ShardThread();
  try {
    const st = new RowStage(1, 0, []);
    st.append({ n: 2, sample: new Int32Array(2), pos: Int32Array.of(0, 1), mod: new Uint8Array(2), token: new Int32Array(2), layer: new Int32Array(2), experts: Int32Array.of(0, 1), gates: null, probs: null, extra: [] });
    st.order();
    const spec = { K: 1, E: 2, gates: false, probs: 0, modalityNames: ['special', 'text', 'image'], extra: [], rowGroupRows: 1000 };
    await t.write({ rel: 'x.parquet', path: join(dir, 'missing', 'x.parquet'), cols: st.take(), spec });
    await assert.rejects(t.idle(), /ENOENT|no such file/);
  } finally {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
