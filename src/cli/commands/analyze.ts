import { Option, type Command } from 'commander';
import { COUNT_MODES, DEFAULT_MODALITIES, type CountMode } from '../../analysis/types.js';
import { parseIntOption } from '../../util/limits.js';

export const countOption = () => new Option('--count <mode>', 'how a token\'s k choices count: each 1, only the highest gate, or by gate').choices(COUNT_MODES as string[]).default('all');
export const byOption = () => new Option('--by <column>', 'group tokens by modality (default), domain, phase, source, or any VARCHAR column of routing or samples');
export const groupsOption = () => new Option('--groups <list>', `groups to analyse, comma-separated (default with --by modality: ${DEFAULT_MODALITIES.join(',')}, those the trace has; otherwise all)`);
export const modalitiesOption = () => new Option('--modalities <list>', 'alias of --groups');
export const noVerifyOption = () => new Option('--no-verify', 'skip the SHA-256 checks of the trace files (sizes are still checked)');
export const parseList = (s: string | undefined) => (s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter((x) => x !== ''));

interface AnalyzeCliOptions {
  layers: string;
  count: CountMode;
  by?: string;
  groups?: string;
  modalities?: string;
  ci?: string;
  json?: boolean;
  verify: boolean;
}

export function register(program: Command): void {
  program
    .command('analyze')
    .description('per-layer routing metrics: specialisation, MI, JSD, load, router confidence, repeat rate, co-activation, token specialisation (SPEC §3)')
    .argument('<trace...>', 'trace folder(s); several are read as shards of one trace')
    .option('--layers <list>', 'layers: a list (0,16,23), ranges (0-5) or all', 'all')
    .addOption(countOption())
    .addOption(byOption())
    .addOption(groupsOption())
    .addOption(modalitiesOption())
    .option('--ci <level>', 'bootstrap interval over samples for the shares, e.g. 95 (reads the rows)')
    .addOption(noVerifyOption())
    .option('--json', 'print the metrics as JSON (as in metrics.json)')
    .action(async (traces: string[], o: AnalyzeCliOptions) => {
      const ci = o.ci === undefined ? undefined : parseIntOption('--ci', o.ci, 50, 99);
      const { analyzeTrace, metricsDocument } = await import('../../analysis/analyze.js');
      const { metricsTable, routerWarnings } = await import('../../analysis/format.js');
      const a = await analyzeTrace(traces, {
        layers: o.layers, count: o.count, by: o.by, groups: parseList(o.groups ?? o.modalities), ci, noVerify: !o.verify,
      });
      if (o.json) {
        process.stdout.write(JSON.stringify(metricsDocument(a), null, 2) + '\n');
        return;
      }
      const name = traces.length === 1 ? traces[0] : `${traces.length} traces`;
      process.stdout.write(`${name}: ${a.counts.numExperts} experts, top-${a.counts.topK}, count ${a.counts.mode}, by ${a.by} (${a.counts.modalities.join(',')}); entropies in bits\n`);
      for (const n of a.notes) process.stdout.write(`note: ${n}\n`);
      for (const w of routerWarnings(a.metrics, a.counts.numExperts)) process.stdout.write(`${w}\n`);
      process.stdout.write(metricsTable(a.metrics, a.counts.modalities));
    });
}
