import type { Command } from 'commander';
import { InputError } from '../../util/errors.js';

/** `moescope serve TRACE`: the dashboard (SPEC §5, issue 5). Runs until interrupted. */
export function register(program: Command): void {
  program
    .command('serve')
    .description('open a local web dashboard over a trace folder')
    .argument('<trace>', 'trace folder (routing.parquet, samples.parquet, meta.json)')
    .option('--port <port>', 'port to listen on (default 8642, or the next free one; 0 picks any free port)')
    .option('--host <host>', 'address to bind (loopback unless --allow-remote)', '127.0.0.1')
    .option('--allow-remote', 'allow a --host other than loopback (exposes the trace to the network)', false)
    .option('--by <column>', 'group tokens by this column (modality, domain, phase, source, or any text column of routing or samples); default: modality, or domain for text-only traces')
    .option('--compare <traces...>', 'more traces to compare with the first (e.g. checkpoints of one run, captured on the same data)')
    .action(async (trace: string, opts: { port?: string; host: string; allowRemote: boolean; compare?: string[]; by?: string }) => {
      if (opts.port !== undefined && (!/^\d+$/.test(opts.port) || Number(opts.port) > 65535)) throw new InputError(`--port: must be an integer 0-65535, got ${JSON.stringify(opts.port)}`);
      if ((opts.compare?.length ?? 0) > 25) throw new InputError(`--compare: at most 25 traces, got ${opts.compare!.length}`);
      const { startServer } = await import('../../web/server/start-server.js');
      const server = await startServer({ trace, compare: opts.compare, port: opts.port === undefined ? undefined : Number(opts.port), host: opts.host, allowRemote: opts.allowRemote, by: opts.by });
      process.stdout.write(`moescope: serving ${server.url}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          server.close().then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
