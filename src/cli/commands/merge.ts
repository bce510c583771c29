import type { Command } from 'commander';
import { guardOutput } from '../../util/output-guard.js';

export function register(program: Command): void {
  program
    .command('merge')
    .description('combine traces captured apart (ranks, machines) into one: aggregates summed, routing shards linked, not rewritten')
    .argument('<shards...>', 'trace folders of one model with disjoint samples')
    .requiredOption('--out <trace>', 'the merged trace folder (routing/part-*.parquet)')
    .action(async (shards: string[], o: { out: string; force?: boolean }) => {
      guardOutput(o.out, 'trace', { inputs: shards, force: o.force });
      const { openDuck } = await import('../../analysis/db.js');
      const { mergeTraces } = await import('../../trace/merge.js');
      const { VERSION } = await import('../../version.js');
      const { conn, close } = await openDuck();
      try {
        const meta = await mergeTraces(conn, shards, o.out, VERSION);
        process.stdout.write(`${o.out}: ${shards.length} shards, ${meta.rows ?? '?'} routing rows, ${meta.samples ?? '?'} samples\n`);
      } finally {
        close();
      }
    });
}
