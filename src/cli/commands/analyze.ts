import { Option, type Command } from 'commander';
import { COUNT_MODES, DEFAULT_MODALITIES, type CountMode } from '../../analysis/types.js';

export const countOption = () => new Option('--count <mode>', 'how a token\'s k choices count: each 1, only the highest gate, or by gate').choices(COUNT_MODES as string[]).default('all');
export const modalitiesOption = () => new Option('--modalities <list>', `modalities to analyse, comma-separated (default: ${DEFAULT_MODALITIES.join(',')}, those the trace has)`);
export const parseList = (s: string | undefined) => (s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter((x) => x !== ''));

export function register(program: Command): void {
  program
    .command('analyze')
    .description('per-layer routing metrics of a trace: specialisation, mutual information, JSD, load (SPEC §3)')
    .argument('<trace>', 'trace folder (routing.parquet + meta.json)')
    .option('--layers <list>', 'layers: a list (0,16,23), ranges (0-5) or all', 'all')
    .addOption(countOption())
    .addOption(modalitiesOption())
    .option('--json', 'print the metrics as JSON (as in metrics.json)')
    .action(async (trace: string, o: { layers: string; count: CountMode; modalities?: string; json?: boolean }) => {
      const { analyzeTrace, metricsDocument } = await import('../../analysis/analyze.js');
      const { metricsTable } = await import('../../analysis/format.js');
      const a = await analyzeTrace(trace, { layers: o.layers, count: o.count, modalities: parseList(o.modalities) });
      if (o.json) process.stdout.write(JSON.stringify(metricsDocument(a), null, 2) + '\n');
      else {
        process.stdout.write(`${trace}: ${a.counts.numExperts} experts, top-${a.counts.topK}, count ${a.counts.mode}, modalities ${a.counts.modalities.join(',')}; entropies in bits\n`);
        process.stdout.write(metricsTable(a.metrics, a.counts.modalities));
      }
    });
}
