import test from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { moescope, tmp } from './helpers.js';

// Streaming: an input whose parsed records would not fit in a 40 MB JavaScript heap (held at once,
// 16 windows of 2048 tokens x 8 experts x 16 layers need well over 64 MB) still imports under that
// cap, because records are read, converted and handed to the trace writer (its own thread, fixed-size buffers) one batch at a time.
test('olmoe import of ~13 MB of JSONL runs with a 40 MB JS heap', async () => {
  const d = tmp();
  const file = join(d, 'c4_results.jsonl');
  const T = 2048, K = 8, L = 16, E = 64, windows = 16;
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
  const out = createWriteStream(file);
  for (let w = 0; w < windows; w++) {
    const ids = Array.from({ length: T }, () => Math.floor(rnd() * 50000));
    const tokens: string[] = [];
    for (let t = 0; t < T; t++) {
      const ks: string[] = [];
      for (let j = 0; j < K; j++) ks.push(`[${Array.from({ length: L }, (_, l) => (j * 7 + l + t) % E).join(',')}]`);
      tokens.push(`[${ks.join(',')}]`);
    }
    if (!out.write(`{"input_ids":[${ids.join(',')}],"exp_ids":[${tokens.join(',')}]}\n`)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  const r = moescope(['import', 'olmoe', file, '--out', join(d, 'trace'), '--num-experts', String(E)], { nodeArgs: ['--max-old-space-size=40'] });
  assert.equal(r.code, 0, r.stderr.slice(-500));
  assert.match(r.stdout, new RegExp(`imported ${windows * T * L} routing rows`));
});
