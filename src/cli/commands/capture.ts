import type { Command } from 'commander';
import { LIMITS, intOption } from '../../util/limits.js';

export function register(program: Command): void {
  program
    .command('capture')
    .description('run a checkpoint over data and write its routing trace (routing.parquet, samples.parquet, meta.json)')
    .option('--model <dir>', 'checkpoint folder (config.json, model.safetensors, tokenizer.json); default: the bundled efmoe-shapes')
    .requiredOption('--data <spec>', 'shapes, shapes:N or shapes:N:SEED (default N 256, seed 1000003: the eval seed), or a .jsonl file')
    .requiredOption('--out <dir>', 'trace folder to write (replaced only when the capture succeeds)')
    .option('--full-probs', "also store each token's router distribution over all experts (prob column)")
    .option('--batch <n>', 'samples per forward pass', intOption('--batch', 1, LIMITS.batch), 32)
    .option('--first-sample <id>', 'id of the first sample (default 0); captures on several ranks or machines use disjoint ranges, then `moescope merge` combines them', intOption('--first-sample', 0, LIMITS.samples))
    .option('--threads <n>', 'worker threads running forward passes (default: 2, or 1 on one core; the trace is the same)', intOption('--threads', 1, LIMITS.threads))
    .action(async (o: { model?: string; data: string; out: string; fullProbs?: boolean; batch: number; threads?: number; firstSample?: number; force?: boolean }) => {
      const { captureTrace } = await import('../../trace/capture.js');
      const r = await captureTrace({ model: o.model, data: o.data, out: o.out, fullProbs: o.fullProbs === true, batchSize: o.batch, threads: o.threads, firstSample: o.firstSample, force: o.force });
      const tokens = Object.entries(r.meta.tokens).map(([m, n]) => `${n} ${m}`).join(', ');
      process.stdout.write(`moescope: captured ${r.samples} samples (${tokens} tokens) x ${r.meta.layers?.length ?? r.meta.num_layers} layers into ${o.out}\n`);
    });
}
