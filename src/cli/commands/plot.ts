import { existsSync, statSync, accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { SORT_ORDERS } from '../../analysis/allocation.js';
import type { CountMode } from '../../analysis/types.js';
import { figureFormat } from '../../render/figure-format.js';
import { InputError } from '../../util/errors.js';
import { guardOutput } from '../../util/output-guard.js';
import { LIMITS, parseIntOption } from '../../util/limits.js';
import { countOption, modalitiesOption, parseList } from './analyze.js';

export const PLOT_KINDS = ['share', 'load', 'load-map', 'coactivation', 'depth', 'specialisation', 'router', 'router-entropy', 'repeat'] as const;
export type PlotKind = (typeof PLOT_KINDS)[number];

const KIND_HELP = `share: the seed figure (group share per expert, one panel per layer); load: load per expert, sorted, with the uniform line;
load-map: layers x experts load heatmap; coactivation: E x E co-activation heatmap per layer (k >= 2);
depth: S, S0, MI and JSD over layers; specialisation: token-id specialisation vs chance over layers;
router: mean top-1 gate and margin vs 1/E over layers; router-entropy: router entropy vs log2 E; repeat: consecutive-token repeat rate vs chance`;

interface PlotOpts {
  out: string;
  kind: PlotKind;
  layers?: string;
  normalize: 'expert' | 'group' | 'modality' | 'balanced';
  count: CountMode;
  sort?: string;
  by?: string;
  modalities?: string;
  groups?: string;
  title?: string;
  xlabel?: string;
  ylabel?: string;
  columns?: string;
  width?: string;
  height?: string;
  scale?: string;
  labels: 'none' | 'counts';
  ci?: string;
  legend?: 'right' | 'bottom' | 'top';
}

/**
 * `--out` must name a file whose folder exists or can be made: a folder is refused, and nothing
 * is created before the figure is rendered (writeFileAtomic makes missing parents at the end).
 */
function checkFigureOut(out: string): void {
  const path = resolve(out);
  if (existsSync(path) && statSync(path).isDirectory()) throw new InputError(`--out ${out}: is a folder (name a file: FIGURE.svg, .png, .pdf or .vl.json)`);
  let dir = dirname(path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a folder');
    accessSync(dir, constants.W_OK);
  } catch {
    throw new InputError(`--out ${out}: cannot write here (${dir} is not a writable folder)`);
  }
}

/** `--scale`: a positive number (PNG pixels per figure px; SVG/PDF size factor). */
function parseScale(text: string): number {
  const t = text.trim();
  const v = Number(t);
  if (!/^[0-9]*\.?[0-9]+$/.test(t) || !(v >= 0.1 && v <= 16)) throw new InputError(`--scale: expected a number in 0.1..16, got ${JSON.stringify(text)}`);
  return v;
}

/** A RangeError of a spec builder (size options that cannot be met) as an input error naming the flags. */
function sizeError(e: unknown, o: PlotOpts): never {
  if (e instanceof RangeError) {
    const flags = /PNG of/.test(e.message)
      ? `--scale ${o.scale ?? 2}`
      : [o.width && `--width ${o.width}`, o.height && `--height ${o.height}`, o.columns && `--columns ${o.columns}`, o.labels === 'counts' && '--labels counts'].filter(Boolean).join(' ');
    throw new InputError(`${flags || `--kind ${o.kind}`}: ${e.message}`);
  }
  throw e;
}

export function register(program: Command): void {
  program
    .command('plot')
    .description('figures of the routing: the seed figure (share of each group per expert, one panel per layer) and the analyses of --kind; SVG, PNG, PDF or Vega-Lite')
    .argument('<trace>', 'trace folder (routing.parquet + meta.json)')
    .requiredOption('--out <file>', 'output: FILE.svg (text as glyph paths, needs no font), FILE.png, FILE.pdf (vector, embedded font) or FILE.vl.json')
    .addOption(new Option('--kind <kind>', KIND_HELP).choices(PLOT_KINDS as unknown as string[]).default('share'))
    .option('--layers <list>', 'layers: a list (0,16,23), ranges, or all (small multiples); default first, round(2L/3), last (all for depth kinds)')
    .addOption(new Option('--normalize <how>', 'expert: bars sum to 100%; group (alias modality): P(e|g) with the k/E line; balanced: groups weighted equally').choices(['expert', 'group', 'modality', 'balanced']).default('expert'))
    .addOption(countOption())
    .option('--sort <key>', `expert order within each panel: ${SORT_ORDERS.join(', ')} or a group name (descending share of it); default text, or the first group`)
    .option('--by <column>', 'group tokens by modality (default), domain, phase, source or another VARCHAR column')
    .addOption(modalitiesOption())
    .option('--groups <list>', 'groups to show, comma-separated (same as --modalities)')
    .option('--title <text>', 'figure title')
    .option('--xlabel <text>', 'x axis title (default "Experts")')
    .option('--ylabel <text>', 'y axis title (default "% of I/T tokens", or the groups\' names)')
    .option('--columns <n>', `panels per row (1..${LIMITS.figureColumns}; default: as many as fit the width)`)
    .option('--width <px>', `limit of the whole figure's width in px (100..${LIMITS.figurePixels}): panels wrap and bars narrow to fit`)
    .option('--height <px>', `the whole figure's height in px (100..${LIMITS.figurePixels})`)
    .option('--scale <factor>', 'PNG: pixels per figure px (default 2); SVG and PDF: size factor (default 1)')
    .addOption(new Option('--labels <what>', 'write each expert\'s token count on its bar').choices(['none', 'counts']).default('none'))
    .option('--ci <level>', 'draw bootstrap error bars at this confidence level in % (50..99) when the analysis gives intervals')
    .addOption(new Option('--legend <where>', 'legend position (default: right, or bottom when --width is set or groups are many)').choices(['right', 'bottom', 'top']))
    .action(async (trace: string, o: PlotOpts) => {
      // every flag is checked before anything is read or written
      figureFormat(o.out);
      checkFigureOut(o.out);
      guardOutput(o.out, 'file', { inputs: [trace] });
      const columns = o.columns === undefined ? undefined : parseIntOption('--columns', o.columns, 1, LIMITS.figureColumns);
      const width = o.width === undefined ? undefined : parseIntOption('--width', o.width, 100, LIMITS.figurePixels);
      const height = o.height === undefined ? undefined : parseIntOption('--height', o.height, 100, LIMITS.figurePixels);
      const scale = o.scale === undefined ? undefined : parseScale(o.scale);
      const ci = o.ci === undefined ? undefined : parseIntOption('--ci', o.ci, 50, 99);
      if (o.groups !== undefined && o.modalities !== undefined) throw new InputError('--groups and --modalities: give one of them (they are the same)');
      const groups = parseList(o.groups ?? o.modalities);
      const by = o.by ?? 'modality';

      // heavy modules (DuckDB, vega, resvg, pdfkit) load only when the command runs, so other commands start fast
      const { analyzeTrace, metricsDocument } = await import('../../analysis/analyze.js');
      const { writeFigure } = await import('../../render/figure.js');
      const depthKind = ['depth', 'specialisation', 'router', 'router-entropy', 'repeat', 'load-map'].includes(o.kind);
      const ciNormalize = o.normalize === 'expert' ? 'expert' : o.normalize === 'balanced' ? null : 'group';
      if (ci !== undefined && ciNormalize === null) throw new InputError('--ci: intervals are drawn for --normalize expert or group, not balanced');
      const analyzeOpts = { layers: o.layers, defaultLayers: depthKind ? 'all' : 'figure', count: o.count, modalities: groups, by, ...(ci !== undefined && o.kind === 'share' ? { ci, ciNormalize } : {}) } as Parameters<typeof analyzeTrace>[1];
      const a = await analyzeTrace(trace, analyzeOpts);
      const counts = a.counts as typeof a.counts & { groups?: string[]; by?: string };
      // an analysis that does not know --by returns modality counts without a `groups` list: refuse rather than mislabel
      if (by !== 'modality' && counts.groups === undefined && counts.by === undefined) throw new InputError(`--by ${by}: this build's analysis groups by modality only`);
      const build = await kindBuilder(o, a, metricsDocument(a), { columns, width, height, ci });
      try {
        await writeFigure(o.out, build, { width, height, scale });
      } catch (e) {
        sizeError(e, o);
      }
      const names = counts.groups ?? counts.modalities;
      process.stdout.write(`${o.out}: ${o.kind}, layers ${counts.layers.join(', ')} (${counts.numExperts} experts, ${names.join('/')}, count ${counts.mode}${o.kind === 'share' ? `, normalize ${o.normalize}` : ''})\n`);
    });
}

type Analysis = Awaited<ReturnType<typeof import('../../analysis/analyze.js').analyzeTrace>>;

/**
 * The figure builder of a kind: thin glue from the analysis result to the pure spec builders of
 * src/render, which take plain rows and matrices in SPEC §3 shapes.
 */
async function kindBuilder(o: PlotOpts, a: Analysis, doc: Record<string, unknown>, size: { columns?: number; width?: number; height?: number; ci?: number }) {
  const { figureData } = await import('../../render/spec-data.js');
  const { allocationFigure } = await import('../../render/spec.js');
  const counts = a.counts as typeof a.counts & { groups?: string[] };
  const E = counts.numExperts;
  const metrics = depthMetrics(doc);
  const common = { title: o.title ?? null, width: size.width, height: size.height, columns: size.columns };
  type Slack = { slackX?: number; slackY?: number };
  const guard = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return sizeError(e, o);
    }
  };
  switch (o.kind) {
    case 'share': {
      // the analysis' bootstrap intervals (fractions per layer, [expert][group]) as the figure's bounds in %
      const names0 = counts.groups ?? counts.modalities;
      const bounds = a.metrics.some((m) => m.share_ci) ? a.metrics.flatMap((m) => (m.share_ci ? m.share_ci.lo.flatMap((row, expert) => row.flatMap((lo, gi) => {
        const hi = m.share_ci!.hi[expert][gi];
        return lo === null || hi === null ? [] : [{ layer: m.layer, expert, group: names0[gi], lo: 100 * lo, hi: 100 * hi }];
      })) : [])) : undefined;
      if (size.ci !== undefined && !Array.isArray(bounds)) throw new InputError(`--ci ${size.ci}: this build's analysis gives no bootstrap intervals of the shares`);
      const names = counts.groups ?? counts.modalities;
      const sort = o.sort ?? (names.includes('text') ? 'text' : names[0]);
      if (!(['id', 'load'].includes(sort) || names.includes(sort))) {
        throw new InputError(`--sort ${sort}: expected id, load or one of the groups shown (${names.join(', ')})`);
      }
      const data = figureData(counts, o.normalize, sort, { by: (counts as { by?: string }).by ?? o.by ?? 'modality', bounds: Array.isArray(bounds) ? bounds : undefined, ci: size.ci });
      const opts = { ...common, xLabel: o.xlabel, yLabel: o.ylabel, labels: o.labels, ci: size.ci !== undefined, legend: o.legend };
      guard(() => allocationFigure(data, opts));
      return (slack: Slack) => allocationFigure(data, { ...opts, ...slack });
    }
    case 'load':
    case 'load-map': {
      const { loadFigure, loadHeatmap } = await import('../../render/spec-load.js');
      const G = counts.modalities.length;
      const rows = counts.layers.flatMap((layer, li) => {
        const per = Array.from({ length: E }, (_, e) => {
          let s = 0;
          for (let g = 0; g < G; g++) s += counts.n[(li * E + e) * G + g];
          return s;
        });
        const total = per.reduce((x, y) => x + y, 0);
        return per.map((count, expert) => ({ layer, expert, count, share: total > 0 ? (100 * count) / total : 0 }));
      });
      const f = o.kind === 'load' ? loadFigure : loadHeatmap;
      guard(() => f(rows, { numExperts: E, ...common }));
      return (slack: Slack) => f(rows, { numExperts: E, ...common, ...slack });
    }
    case 'coactivation': {
      const { coactivationFigure } = await import('../../render/spec-coactivation.js');
      if (counts.topK < 2) throw new InputError(`--kind coactivation: the trace routes top-${counts.topK}; co-activation needs k >= 2`);
      const mats = metrics.flatMap((m) => (Array.isArray(m.coactivation) ? [{ layer: m.layer, matrix: m.coactivation as number[][] }] : []));
      if (!mats.length) throw new InputError('--kind coactivation: this build\'s analysis gives no co-activation matrix');
      return (slack: Slack) => coactivationFigure(mats, { ...common, ...slack });
    }
    default: {
      const d = await import('../../render/spec-depth.js');
      const f = {
        depth: () => d.specialisationDepthFigure(metrics, common),
        specialisation: () => d.tokenSpecialisationFigure(metrics, common),
        router: () => d.routerFigure(metrics, E, common),
        'router-entropy': () => d.routerEntropyFigure(metrics, E, common),
        repeat: () => d.repeatFigure(metrics, common),
      }[o.kind];
      try {
        f();
      } catch (e) {
        if (e instanceof RangeError) throw new InputError(`--kind ${o.kind}: ${e.message} in this trace's analysis`);
        throw e;
      }
      return () => f();
    }
  }
}

/**
 * The per-layer metrics in SPEC §3 names. The analysis of this branch still writes some under
 * older names (specialization, mutualInformationNormalized, ...); both are read.
 */
function depthMetrics(doc: Record<string, unknown>): (import('../../render/spec-depth.js').DepthMetrics & { coactivation?: unknown })[] {
  const layers = Array.isArray(doc.layers) ? (doc.layers as Record<string, unknown>[]) : [];
  const num = (...v: unknown[]) => (v.find((x) => typeof x === 'number') as number | undefined) ?? null;
  return layers.map((l) => ({
    ...l,
    layer: Number(l.layer),
    S: num(l.S, l.specialization),
    S0: num(l.S0, l.specializationBaseline),
    mi: num(l.mi, l.mutualInformation),
    mi_norm: num(l.mi_norm, l.mutualInformationNormalized),
    jsd: num(l.jsd, l.jsdTextImage),
    router: (l.router as never) ?? (typeof l.routerEntropy === 'number' ? { entropy_mean: l.routerEntropy } : null),
  }));
}
