import type { Command } from 'commander';

/** `moescope index TRACE` (file named index-trace.ts: commands/index.ts is the command registry). */
export function register(program: Command): void {
  program
    .command('index')
    .description('store a trace\'s aggregates (agg-*.parquet) and file sizes + SHA-256 in meta.json, for traces written by hand or other tools')
    .argument('<trace>', 'trace folder')
    .action(async (trace: string) => {
      const { openDuck } = await import('../../analysis/db.js');
      const { openTrace } = await import('../../analysis/trace.js');
      const { indexTrace } = await import('../../trace/store-aggregates.js');
      const { conn, close } = await openDuck();
      try {
        const t = await openTrace(conn, trace); // checks the recorded files first: a damaged trace is not re-hashed as good
        const meta = await indexTrace(conn, trace, t);
        process.stdout.write(`${trace}: aggregates stored; ${Object.keys(meta.files ?? {}).length} files recorded in meta.json\n`);
      } finally {
        close();
      }
    });
}
