import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { aggregatesFor } from './agg-source.js';
import { shareIntervals } from './bootstrap.js';
import { openDuck } from './db.js';
import { checkCountMode, choiceOrder, loadCounts, selectCounts, type ChoiceOrder } from './counts.js';
import { layerExtras } from './extras.js';
import { defaultGroups } from './groups.js';
import { resolveLayers } from './layers.js';
import { allLayerMetrics } from './metrics.js';
import { openTraces, type TraceHandle } from './trace.js';
import type { CountMode, Counts, LayerMetrics } from './types.js';

export interface AnalyzeOptions {
  /** `--layers`: a list, ranges, or `all`; when absent, `defaultLayers` decides. */
  layers?: string;
  defaultLayers?: 'all' | 'figure';
  count?: CountMode;
  /** `--by`: modality (default), domain, phase, source, or a VARCHAR column of routing or samples. */
  by?: string;
  /** `--groups` (alias `--modalities`): the groups to analyse, in order. */
  groups?: readonly string[];
  /** @deprecated alias of `groups` */
  modalities?: readonly string[];
  /** `--ci 95`: bootstrap intervals over samples for the shares (reads the rows). */
  ci?: number;
  ciReplicates?: number;
  ciSeed?: number;
  ciNormalize?: 'expert' | 'group';
  /** Skip SHA-256 checks of the trace files (`--no-verify`). */
  noVerify?: boolean;
  memoryLimit?: string;
}

export interface Analysis {
  trace: TraceHandle;
  by: string;
  traceLayers: number[];
  /** Every group the trace has under `by` (named for the figure's callers). */
  traceModalities: string[];
  counts: Counts; // the selected layers and groups
  metrics: LayerMetrics[];
  order: ChoiceOrder;
  /** What the analysis decided on its own (fallbacks), for the summary. */
  notes: string[];
}

/** Trace folder(s) -> counts and SPEC §3 metrics, from the aggregates (rows only when there are none, or with `ci`). */
export async function analyzeTrace(dir: string | readonly string[], opts: AnalyzeOptions = {}): Promise<Analysis> {
  const { conn, close } = await openDuck({ memoryLimit: opts.memoryLimit });
  try {
    return await analyzeWith(conn, dir, opts);
  } finally {
    close();
  }
}

export async function analyzeWith(conn: DuckDBConnection, dir: string | readonly string[], opts: AnalyzeOptions = {}): Promise<Analysis> {
  const trace = await openTraces(conn, typeof dir === 'string' ? [dir] : dir, { noVerify: opts.noVerify });
  const mode = opts.count ?? 'all';
  const order = await choiceOrder(conn, trace);
  checkCountMode(mode, order);
  const asked = opts.groups ?? opts.modalities;
  let by = opts.by ?? 'modality';
  const notes: string[] = [];
  let all = await loadCounts(conn, trace, mode, by);
  const present = (c: Counts) => c.modalities.map((g, gi) => ({ group: g, tokens: c.layers.reduce((s, _, li) => s + c.tokens[li * c.modalities.length + gi], 0) }));
  let groups: string[];
  if (asked) {
    groups = checkGroups(asked, all.modalities, trace.routingPath, by);
  } else {
    groups = defaultGroups(by, present(all));
    if (by === 'modality' && !groups.includes('image') && groups.includes('text')) {
      // text-only: the chart over domains when the trace has them, else load views (SPEC §3)
      const hasDomain = trace.routingColumns.has('domain') || trace.sampleColumns.get('domain') === 'VARCHAR';
      const domains = hasDomain ? await loadCounts(conn, trace, mode, 'domain') : null;
      if (domains && domains.modalities.length > 0) {
        by = 'domain';
        all = domains;
        groups = defaultGroups(by, present(all));
        notes.push(`text-only trace: grouping by domain (${groups.join(', ')}) instead of modality`);
      } else {
        notes.push('text-only trace without domains: load only (S, MI and JSD need two groups; try --by COLUMN)');
      }
    }
    if (groups.length === 0) throw new InputError(`${trace.routingPath}: no tokens to group by ${by} (the trace has ${all.modalities.join(', ') || 'no values'}; choose with --groups)`);
  }
  const layers = resolveLayers(opts.layers, all.layers, trace.meta.num_layers, opts.defaultLayers ?? 'all', trace.routingPath);
  const counts = selectCounts(all, layers, groups);
  if (counts.n.every((v) => v === 0)) {
    throw new InputError(`${trace.routingPath}: no ${groups.join(' or ')} tokens in layer${layers.length > 1 ? 's' : ''} ${layers.join(', ')}`);
  }
  const agg = await aggregatesFor(conn, trace, by);
  const extras = await layerExtras(conn, agg, layers, groups, {
    numExperts: trace.meta.num_experts, topK: trace.meta.top_k, routerScoring: trace.meta.router_scoring, order,
  });
  const metrics = allLayerMetrics(counts, extras);
  if (opts.ci !== undefined) {
    const ci = await shareIntervals(conn, trace, by, mode, layers, groups, {
      level: opts.ci / 100, replicates: opts.ciReplicates ?? 200, seed: opts.ciSeed ?? 0, normalize: opts.ciNormalize ?? 'expert',
    });
    for (const m of metrics) m.share_ci = ci.get(m.layer);
  }
  return { trace, by, traceLayers: all.layers, traceModalities: all.modalities, counts, metrics, order, notes };
}

function checkGroups(want: readonly string[], have: readonly string[], where: string, by: string): string[] {
  const out = [...new Set(want.map((m) => m.trim()).filter((m) => m !== ''))];
  if (out.length === 0) throw new InputError('--groups: empty list');
  for (const m of out) {
    if (!have.includes(m)) throw new InputError(`${where}: ${by} "${m}" is not in the trace (it has ${have.join(', ')})`);
  }
  return out;
}

/** metrics.json / `analyze --json`: what was analysed and the per-layer metrics (SPEC §3 names). */
export function metricsDocument(a: Analysis): Record<string, unknown> {
  return {
    trace: a.trace.dirs.length === 1 ? a.trace.dir : a.trace.dirs,
    num_layers: a.trace.meta.num_layers,
    num_experts: a.counts.numExperts,
    top_k: a.counts.topK,
    count: a.counts.mode,
    by: a.by,
    groups: a.counts.modalities,
    modalities: a.counts.modalities,
    notes: a.notes,
    units: { entropy: 'bits', share: 'fraction' },
    layers: a.metrics,
  };
}
