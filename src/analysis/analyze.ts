import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { openDuck } from './db.js';
import { loadCounts, selectCounts } from './counts.js';
import { resolveLayers } from './layers.js';
import { allLayerMetrics } from './metrics.js';
import { routerEntropy } from './router-entropy.js';
import { openTrace, type TraceHandle } from './trace.js';
import { DEFAULT_MODALITIES, type CountMode, type Counts, type LayerMetrics } from './types.js';

export interface AnalyzeOptions {
  /** `--layers`: a list, ranges, or `all`; when absent, `defaultLayers` decides. */
  layers?: string;
  defaultLayers?: 'all' | 'figure';
  count?: CountMode;
  modalities?: readonly string[];
  memoryLimit?: string;
}

export interface Analysis {
  trace: TraceHandle;
  traceLayers: number[];
  traceModalities: string[];
  counts: Counts; // the selected layers and modalities
  metrics: LayerMetrics[];
}

/** Trace folder -> counts and SPEC §3 metrics. All row work is DuckDB's (one scan, two with `prob`). */
export async function analyzeTrace(dir: string, opts: AnalyzeOptions = {}): Promise<Analysis> {
  const { conn, close } = await openDuck({ memoryLimit: opts.memoryLimit });
  try {
    return await analyzeWith(conn, dir, opts);
  } finally {
    close();
  }
}

export async function analyzeWith(conn: DuckDBConnection, dir: string, opts: AnalyzeOptions = {}): Promise<Analysis> {
  const trace = await openTrace(conn, dir);
  const all = await loadCounts(conn, trace, opts.count ?? 'all');
  // asked-for modalities must exist; the default (text, image) keeps those the trace has
  const modalities = opts.modalities
    ? checkModalities(opts.modalities, all.modalities, trace.routingPath)
    : checkModalities(DEFAULT_MODALITIES.filter((m) => all.modalities.includes(m)), all.modalities, trace.routingPath, DEFAULT_MODALITIES);
  const layers = resolveLayers(opts.layers, all.layers, trace.meta.num_layers, opts.defaultLayers ?? 'all', trace.routingPath);
  const counts = selectCounts(all, layers, modalities);
  if (counts.n.every((v) => v === 0)) {
    throw new InputError(`${trace.routingPath}: no ${modalities.join(' or ')} tokens in layer${layers.length > 1 ? 's' : ''} ${layers.join(', ')}`);
  }
  const entropy = trace.hasProb ? await routerEntropy(conn, trace, layers, modalities) : undefined;
  return { trace, traceLayers: all.layers, traceModalities: all.modalities, counts, metrics: allLayerMetrics(counts, entropy) };
}

function checkModalities(want: readonly string[], have: readonly string[], where: string, defaults?: readonly string[]): string[] {
  const out = [...new Set(want.map((m) => m.trim()).filter((m) => m !== ''))];
  if (out.length === 0 && defaults) throw new InputError(`${where}: no ${defaults.join(' or ')} tokens (the trace has ${have.join(', ')}; choose with --modalities)`);
  if (out.length === 0) throw new InputError('--modalities: empty list');
  for (const m of out) {
    if (!have.includes(m)) throw new InputError(`${where}: modality "${m}" is not in the trace (it has ${have.join(', ')})`);
  }
  return out;
}

/** metrics.json / `analyze --json`: what was analysed and the per-layer metrics. */
export function metricsDocument(a: Analysis): Record<string, unknown> {
  return {
    trace: a.trace.dir,
    num_layers: a.trace.meta.num_layers,
    num_experts: a.counts.numExperts,
    top_k: a.counts.topK,
    count: a.counts.mode,
    modalities: a.counts.modalities,
    units: { entropy: 'bits', share: 'fraction' },
    layers: a.metrics,
  };
}
