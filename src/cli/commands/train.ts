import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { LIMITS, intOption } from '../../util/limits.js';
import { InputError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('train')
    .description('train an efmoe model on the shapes world (AdamW, warmup + cosine, resumable)')
    .requiredOption('--config <file>', 'training config: the model keys of config.json plus the training keys')
    .requiredOption('--out <dir>', 'output folder: model/, train-log.jsonl, loss-curve.png, eval.json, train-state.safetensors')
    .option('--steps <n>', 'total optimizer steps (overrides the config)', intOption('--steps', 1, LIMITS.steps))
    .option('--seed <s>', 'seed of the weights and the training data order (overrides seed and train_seed)', intOption('--seed', 0, LIMITS.seed))
    .option('--resume', 'continue the run in --out from its last checkpoint, bit for bit')
    .option('--init <dir>', 'start from the weights of checkpoint DIR (same model config) instead of random ones; routers re-drawn when the config sets router_init_std')
    .option('--stop-at <n>', 'stop after this many steps (checkpointed; continue later with --resume)', intOption('--stop-at', 0, LIMITS.steps))
    .option('--workers <n>', 'threads that share each batch: 1 or 2, the result is the same (default: 2 on two or more cores)', intOption('--workers', 1, 2))
    .action(async (o: { config: string; out: string; steps?: number; seed?: number; resume?: boolean; init?: string; stopAt?: number; workers?: number; force?: boolean }) => {
      const { trainRun } = await import('../../train/train-run.js');
      if (o.init !== undefined && o.resume) throw new InputError('--init: a resumed run continues from its own checkpoint; drop --init or --resume');
      await trainRun({
        config: o.config, out: o.out, steps: o.steps, seed: o.seed, resume: o.resume === true, init: o.init, stopAt: o.stopAt, force: o.force,
        workers: o.workers ?? Math.min(2, availableParallelism()), log: (l) => process.stdout.write(l + '\n'),
      });
    });
}
