import { type Command, InvalidArgumentError } from 'commander';

function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^[0-9]+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
}

export function register(program: Command): void {
  program
    .command('capture')
    .description('run a checkpoint over data and write its routing trace (routing.parquet, samples.parquet, meta.json)')
    .option('--model <dir>', 'checkpoint folder (config.json, model.safetensors, tokenizer.json); default: the bundled efmoe-shapes')
    .requiredOption('--data <spec>', 'shapes, shapes:N or shapes:N:SEED (default N 256, seed 1000003: the eval seed), or a .jsonl file')
    .requiredOption('--out <dir>', 'trace folder to write (replaced only when the capture succeeds)')
    .option('--full-probs', "also store each token's router distribution over all experts (prob column)")
    .option('--batch <n>', 'samples per forward pass', positiveInt('--batch'), 32)
    .option('--threads <n>', 'worker threads running forward passes (default: 2, or 1 on one core; the trace is the same)', positiveInt('--threads'))
    .action(async (o: { model?: string; data: string; out: string; fullProbs?: boolean; batch: number; threads?: number }) => {
      const { captureTrace } = await import('../../trace/capture.js');
      const r = await captureTrace({ model: o.model, data: o.data, out: o.out, fullProbs: o.fullProbs === true, batchSize: o.batch, threads: o.threads });
      const tokens = Object.entries(r.meta.tokens).map(([m, n]) => `${n} ${m}`).join(', ');
      process.stdout.write(`moescope: captured ${r.samples} samples (${tokens} tokens) x ${r.meta.layers?.length ?? r.meta.num_layers} layers into ${o.out}\n`);
    });
}
