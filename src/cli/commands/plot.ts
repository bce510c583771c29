import { Option, type Command } from 'commander';
import { SORT_ORDERS, type SortOrder } from '../../analysis/allocation.js';
import { NORMALIZATIONS, type CountMode, type Normalization } from '../../analysis/types.js';
import { figureFormat } from '../../render/figure-format.js';
import { checkWritableParent } from '../../util/atomic.js';
import { InputError } from '../../util/errors.js';
import { guardOutput } from '../../util/output-guard.js';
import { countOption, modalitiesOption, parseList } from './analyze.js';

interface PlotOpts {
  out: string;
  layers?: string;
  normalize: Normalization;
  count: CountMode;
  sort: SortOrder;
  modalities?: string;
  title?: string;
  xlabel?: string;
  ylabel?: string;
  columns?: string;
}

export function register(program: Command): void {
  program
    .command('plot')
    .description('the figure: share of text and image tokens per expert, one panel per layer (SVG, PNG or Vega-Lite)')
    .argument('<trace>', 'trace folder (routing.parquet + meta.json)')
    .requiredOption('--out <file>', 'output: FILE.svg, FILE.png or FILE.vl.json')
    .option('--layers <list>', 'layers: a list (0,16,23), ranges, or all (small multiples); default first, round(2L/3), last')
    .addOption(new Option('--normalize <how>', 'expert: bars sum to 100%; modality: P(e|m); balanced: modalities weighted equally').choices(NORMALIZATIONS as string[]).default('expert'))
    .addOption(countOption())
    .addOption(new Option('--sort <key>', 'expert order within each panel').choices(SORT_ORDERS as string[]).default('text'))
    .addOption(modalitiesOption())
    .option('--title <text>', 'figure title')
    .option('--xlabel <text>', 'x axis title (default "Experts")')
    .option('--ylabel <text>', 'y axis title (default "% of I/T tokens")')
    .option('--columns <n>', 'panels per row')
    .action(async (trace: string, o: PlotOpts) => {
      figureFormat(o.out); // unknown extension: fail before reading anything
      guardOutput(o.out, 'file', { inputs: [trace] });
      checkWritableParent(o.out);
      const columns = o.columns === undefined ? undefined : Number(o.columns);
      if (columns !== undefined && !(Number.isInteger(columns) && columns > 0)) throw new InputError(`--columns: expected a positive integer, got "${o.columns}"`);
      // heavy modules (DuckDB, vega, resvg) load only when the command runs, so other commands start fast
      const { analyzeTrace } = await import('../../analysis/analyze.js');
      const { figureData } = await import('../../render/spec-data.js');
      const { allocationFigure } = await import('../../render/spec.js');
      const { writeFigure } = await import('../../render/figure.js');
      const a = await analyzeTrace(trace, { layers: o.layers, defaultLayers: 'figure', count: o.count, modalities: parseList(o.modalities) });
      const spec = allocationFigure(figureData(a.counts, o.normalize, o.sort), { title: o.title, xLabel: o.xlabel, yLabel: o.ylabel, columns });
      await writeFigure(o.out, spec);
      process.stdout.write(`${o.out}: layers ${a.counts.layers.join(', ')} (${a.counts.numExperts} experts, ${a.counts.modalities.join('/')}, count ${a.counts.mode}, normalize ${o.normalize})\n`);
    });
}
