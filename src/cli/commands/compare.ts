import type { Command } from 'commander';
import type { CountMode } from '../../analysis/types.js';
import { byOption, countOption, groupsOption, modalitiesOption, noVerifyOption, parseList } from './analyze.js';

export function register(program: Command): void {
  program
    .command('compare')
    .description('traces of the same tokens side by side (e.g. checkpoints): per layer router saturation against the first, and each trace\'s metrics')
    .argument('<traces...>', 'two or more trace folders; the first is the reference')
    .option('--layers <list>', 'layers: a list (0,16,23), ranges (0-5) or all', 'all')
    .addOption(countOption())
    .addOption(byOption())
    .addOption(groupsOption())
    .addOption(modalitiesOption())
    .addOption(noVerifyOption())
    .option('--json', 'print the comparison as JSON')
    .action(async (traces: string[], o: { layers: string; count: CountMode; by?: string; groups?: string; modalities?: string; verify: boolean; json?: boolean }) => {
      const { InputError } = await import('../../util/errors.js');
      if (traces.length < 2) throw new InputError('compare: give at least two traces (A B [C ...])');
      const { compareTraces, comparisonDocument, comparisonTable } = await import('../../analysis/compare.js');
      const c = await compareTraces(traces, { layers: o.layers, count: o.count, by: o.by, groups: parseList(o.groups ?? o.modalities), noVerify: !o.verify });
      for (const w of c.warnings) process.stderr.write(`moescope: warning: ${w}\n`);
      if (o.json) process.stdout.write(JSON.stringify(comparisonDocument(c), null, 2) + '\n');
      else process.stdout.write(comparisonTable(c));
    });
}
