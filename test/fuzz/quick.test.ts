import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz.js';

/**
 * The quick seeded slice of the fuzz suite (`npm run fuzz` runs thousands of cases): a few cases
 * of every target: each reader of a file or a flag.
 */
const QUICK = new Set([
  'safetensors', 'config.json', 'tokenizer.json', 'jsonl', 'png', 'train-config', 'flags-capture', 'flags-demo', 'flags-train',
  'trace-meta.json', 'trace-routing.parquet', 'flags-analyze', 'flags-plot',
  'import-vllm', 'import-olmoe', 'import-megatron', 'import-hf', 'import-csv', 'flags-import',
]);

test('fuzz, quick slice: mutated inputs and flags give exit 0 or one clean error line, nothing left behind', { timeout: 300_000 }, async () => {
  const report = await runFuzz({ runs: 4, seed: 20260412, targets: (t) => QUICK.has(t.name) });
  assert.ok(report.cases >= 25, `ran ${report.cases} cases`);
  assert.deepEqual(report.failures.map((f) => `${f.target} #${f.index}: ${f.why}: moescope ${f.args.join(' ')}\n${f.stderr}`), []);
});
