import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './report.js';
import { parseTrainConfig } from '../src/train/train-config.js';
import { initParams } from '../src/model/params.js';
import { saveCheckpoint } from '../src/io/checkpoint-files.js';
import { shapesTokenizer, trainBatchSamples, encodeSamples } from '../src/train/batches.js';
import { EfmoeGradientSource } from '../src/train/efmoe-source.js';
import type { EncodedSequence } from '../src/data/sample.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BATCHES = 4;
const REPEAT = 3;

/**
 * Training throughput: forward + backward of the full training loss (CE + aux + z) over the same
 * batches of the default config (configs/efmoe-shapes.json) in TypeScript (one thread, and the two
 * micro-batches on two threads) and in PyTorch CPU eager (scripts/torch_efmoe.py --train, 2 threads).
 */
export async function bench(): Promise<BenchRow[]> {
  const cfgPath = join(root, 'configs/efmoe-shapes.json');
  const cfg = parseTrainConfig(JSON.parse(readFileSync(cfgPath, 'utf8')), cfgPath);
  const tokenizer = shapesTokenizer();
  const batches: EncodedSequence[][] = [];
  for (let s = 0; s < BATCHES; s++) batches.push(encodeSamples(trainBatchSamples(cfg.train, s), tokenizer, cfg.model));
  const seqs = batches.flat();
  const tokens = seqs.reduce((a, s) => a + s.T, 0);
  const params = initParams(cfg.model, cfg.train.seed);

  const ours = async (workers: number) => {
    const src = new EfmoeGradientSource(cfg.model, params, (step) => batches[step], workers);
    try {
      await src.lossAndGrad(0); // warm-up (buffers, JIT, worker start)
      let best = Infinity;
      for (let r = 0; r < REPEAT; r++) {
        const t0 = performance.now();
        for (let b = 0; b < BATCHES; b++) await src.lossAndGrad(b);
        best = Math.min(best, (performance.now() - t0) / 1000);
      }
      return tokens / best;
    } finally {
      await src.close();
    }
  };
  const one = await ours(1);
  const two = await ours(2);

  let peer: number | null = null;
  let note = `${tokens} tokens in ${BATCHES} batches of ${cfg.train.batch}, ${cfg.model.num_hidden_layers} layers, d=${cfg.model.hidden_size}`;
  const dir = mkdtempSync(join(tmpdir(), 'moescope-bench-train-'));
  try {
    await saveCheckpoint(join(dir, 'model'), { config: cfg.model, tokenizer, params });
    const inputs = {
      sequences: seqs.map((s) => ({ ids: [...s.ids], imagePart: [...s.imagePart], modality: [...s.modality], patches: [...s.patches] })),
    };
    writeFileSync(join(dir, 'inputs.json'), JSON.stringify(inputs));
    const r = spawnSync('/usr/bin/python3', [
      join(root, 'scripts/torch_efmoe.py'), '--model', join(dir, 'model'), '--bench-json', join(dir, 'inputs.json'),
      '--train', '--threads', '2', '--batch', String(cfg.train.batch), '--repeat', String(REPEAT), '--warmup', '1',
    ], { encoding: 'utf8', timeout: 600_000 });
    if (r.status === 0) peer = JSON.parse(r.stdout.trim().split('\n').pop()!).tokens_per_s;
    else note += `; torch failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return [
    { name: 'train step fwd+bwd, 1 thread', ours: one, peer, unit: 'tokens/s', higherIsBetter: true, peerName: 'PyTorch eager 2 threads', note },
    { name: 'train step fwd+bwd, 2 threads (micro-batches)', ours: two, peer, unit: 'tokens/s', higherIsBetter: true, peerName: 'PyTorch eager 2 threads' },
  ];
}
