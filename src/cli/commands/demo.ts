import { routerWarnings } from '../../analysis/format.js';
import { readdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { LIMITS, intOption } from '../../util/limits.js';
import { guardOutput } from '../../util/output-guard.js';

export interface DemoOptions {
  out: string;
  samples?: number;
  seed?: number;
  progress?: boolean;
  /** Replace an existing --out folder that is not a demo output (never an input). */
  force?: boolean;
}

export interface DemoResult {
  files: string[];
  summary: string;
}

/**
 * `moescope demo`: the bundled checkpoint on `shapes` eval data -> trace -> figure, allocation and
 * metrics, all written into one folder that appears only when everything succeeded.
 */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const [{ captureTrace }, { SHAPES_DEFAULT_SAMPLES, SHAPES_EVAL_SEED }, { analyzeTrace, metricsDocument }, { selectCounts }, { resolveLayers }, { allocationCsv, allocationRows }, { textBars }, { figureData }, { allocationFigure }, { renderFigure }, { writeDirAtomic }] = await Promise.all([
    import('../../trace/capture.js'),
    import('../../data/shapes.js'),
    import('../../analysis/analyze.js'),
    import('../../analysis/counts.js'),
    import('../../analysis/layers.js'),
    import('../../analysis/allocation.js'),
    import('../../analysis/format.js'),
    import('../../render/spec-data.js'),
    import('../../render/spec.js'),
    import('../../render/figure.js'),
    import('../../util/atomic.js'),
  ]);
  const samples = opts.samples ?? SHAPES_DEFAULT_SAMPLES;
  const seed = opts.seed ?? SHAPES_EVAL_SEED;
  const { DEFAULT_MODEL_DIR } = await import('../../io/checkpoint-files.js');
  guardOutput(opts.out, 'demo', { force: opts.force, inputs: [DEFAULT_MODEL_DIR] });
  return writeDirAtomic(opts.out, async (dir) => {
    // the trace files go straight into the demo folder (capture writes its own folder atomically, then we move them up)
    const capDir = join(dir, '.capture');
    await captureTrace({ data: { kind: 'shapes', samples, seed }, out: capDir, fullProbs: true, progress: opts.progress ?? true });
    for (const f of readdirSync(capDir)) renameSync(join(capDir, f), join(dir, f));
    rmdirSync(capDir);

    const a = await analyzeTrace(dir, { layers: 'all' });
    const figLayers = resolveLayers(undefined, a.traceLayers, a.trace.meta.num_layers, 'figure', a.trace.routingPath);
    const figCounts = selectCounts(a.counts, figLayers, a.counts.modalities);
    const spec = allocationFigure(figureData(figCounts));
    writeFileSync(join(dir, 'figure.vl.json'), await renderFigure(spec, 'vl.json'));
    writeFileSync(join(dir, 'figure.svg'), await renderFigure(spec, 'svg'));
    writeFileSync(join(dir, 'figure.png'), await renderFigure(spec, 'png'));
    writeFileSync(join(dir, 'allocation.csv'), allocationCsv(allocationRows(a.counts, 'expert')));
    writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ ...metricsDocument(a), trace: opts.out }, null, 2) + '\n');

    const tok = a.trace.meta.tokens;
    const lines = [
      `moescope demo: ${samples} shapes samples (seed ${seed}) through ${a.trace.meta.model?.path ?? 'the bundled model'}`,
      `  ${a.trace.meta.num_layers} layers, ${a.counts.numExperts} experts, top-${a.counts.topK}; tokens: ${Object.entries(tok).map(([m, n]) => `${m} ${n}`).join(', ')}`,
      '',
      textBars(figCounts).trimEnd(),
      '',
      'Specialisation S per layer (S0 = no specialisation; 1 = each expert sees one modality):',
      ...sparkRows(a.metrics.map((m) => [m.layer, m.S, m.S0])),
      headline(a.metrics.map((m) => ({ layer: m.layer, specialization: m.S, routerEntropy: m.router.entropy_mean, nearUniform: m.router.near_uniform === true }))),
      ...routerWarnings(a.metrics, a.counts.numExperts),
      '',
      `wrote ${opts.out}/: routing.parquet samples.parquet meta.json figure.svg figure.png figure.vl.json allocation.csv metrics.json`,
    ];
    return { files: readdirSync(dir).sort(), summary: lines.join('\n') + '\n' };
  }, 'demo');
}

/**
 * One line: mean S, the most specialised layer among those whose router decides (a near-uniform
 * router's split is where near-ties fall, not specialisation), and mean router entropy when known.
 */
function headline(ms: { layer: number; specialization: number | null; routerEntropy: number | null; nearUniform: boolean }[]): string {
  const withS = ms.filter((m) => m.specialization !== null);
  if (!withS.length) return '';
  const mean = withS.reduce((s, m) => s + m.specialization!, 0) / withS.length;
  const decided = withS.filter((m) => !m.nearUniform);
  const top = decided.length ? decided.reduce((b, m) => (m.specialization! > b.specialization! ? m : b)) : null;
  const best = top ? `, highest in layer ${top.layer} (${top.specialization!.toFixed(3)})${decided.length < withS.length ? ' among layers whose router decides' : ''}` : ', every router near-uniform';
  const hs = ms.filter((m) => m.routerEntropy !== null);
  const h = hs.length ? `; mean router entropy ${(hs.reduce((s, m) => s + m.routerEntropy!, 0) / hs.length).toFixed(2)} bits` : '';
  return `mean S ${mean.toFixed(3)}${best}${h}`;
}

/** S per layer as rows of `layer S (S0)`, a few per line, with a small bar. */
function sparkRows(rows: [number, number | null, number | null][]): string[] {
  const bars = ' ▁▂▃▄▅▆▇█';
  const cell = ([l, s, s0]: [number, number | null, number | null]) =>
    `${String(l).padStart(3)} ${s === null ? '  -  ' : s.toFixed(3)} ${s === null ? ' ' : bars[Math.min(8, Math.max(0, Math.round(s * 8)))]}${s0 === null ? '' : ` (S0 ${s0.toFixed(3)})`}`;
  const out: string[] = [];
  for (let i = 0; i < rows.length; i += 4) out.push(rows.slice(i, i + 4).map(cell).join('   '));
  return out;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('the main job: bundled model + shapes eval data -> trace -> figure, allocation.csv, metrics.json')
    .option('--out <dir>', 'output folder (replaced only when the run succeeds)', 'moescope-demo')
    .option('--samples <n>', 'number of shapes eval samples (default 256)', intOption('--samples', 1, LIMITS.samples))
    .option('--seed <s>', 'shapes seed (default: the eval seed)', intOption('--seed', 0, LIMITS.seed))
    .action(async (o: { out: string; samples?: number; seed?: number; force?: boolean }) => {
      const r = await runDemo({ out: o.out, samples: o.samples, seed: o.seed, force: o.force });
      process.stdout.write(r.summary);
    });
}
