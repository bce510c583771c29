import { basename } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { CountMode } from '../../analysis/types.js';
import type { CompareJson } from '../api-types.js';
import { queryRows } from './trace-source.js';
import { saturation } from './saturation.js';
import type { TraceQueries } from './trace-queries.js';

/** The model of a trace, as far as meta.json says: its architecture config without the folder path. */
function modelKey(t: TraceQueries): string | null {
  const cfg = t.trace.meta.model?.config;
  return cfg && typeof cfg === 'object' ? JSON.stringify(Object.entries(cfg).sort(([a], [b]) => (a < b ? -1 : 1))) : null;
}

/**
 * Do the traces' expert ids mean the same thing? `same` when every trace records the same model
 * architecture (checkpoints of one run), `different` when expert or layer counts or the recorded
 * configs differ, `unknown` when a trace records no model (imported): then ids are matched with a warning.
 */
export function modelsAgree(traces: readonly TraceQueries[]): { models: CompareJson['models']; warning: string | null } {
  const [A] = traces;
  const shape = (t: TraceQueries) => `${t.trace.meta.num_experts}/${t.trace.meta.num_layers}/${t.trace.meta.top_k}`;
  const names = (ts: readonly TraceQueries[]) => ts.map((t) => basename(t.trace.dir)).join(', ');
  const differ = traces.filter((t) => shape(t) !== shape(A));
  if (differ.length) {
    return { models: 'different', warning: `${names(differ)} ${differ.length > 1 ? 'have' : 'has'} a different number of experts, layers or top-k than ${basename(A.trace.dir)}: experts are not matched by id; only per-layer summaries are compared.` };
  }
  const keys = traces.map(modelKey);
  if (keys.every((k) => k !== null)) {
    const other = traces.filter((_, i) => keys[i] !== keys[0]);
    return other.length
      ? { models: 'different', warning: `${names(other)} record${other.length > 1 ? '' : 's'} a different model configuration than ${basename(A.trace.dir)}: experts are not matched by id; only per-layer summaries are compared.` }
      : { models: 'same', warning: null };
  }
  return { models: 'unknown', warning: `${names(traces.filter((_, i) => keys[i] === null))}: meta.json records no model, so whether expert ids mean the same thing in every trace is not known; experts are matched by id as if they did.` };
}

/** Per layer: each trace's S and load CV, and saturation of each trace against A (same tokens); counts when ids match. */
export async function compareTraces(conn: DuckDBConnection, traces: readonly TraceQueries[], mode: CountMode, by: string, groups: readonly string[]): Promise<CompareJson> {
  const { models, warning } = modelsAgree(traces);
  const [A] = traces;
  // A grouping A has may be missing from another trace: then that trace's S is not shown (null), never computed on other groups.
  const metrics = await Promise.all(traces.map(async (t) => {
    try {
      return await t.metrics(mode, groups, by);
    } catch {
      return null;
    }
  }));
  // Saturation needs the same tokens in every trace (checkpoints captured on one data set): same row counts, else not computed.
  const unlike = traces.filter((t) => t.trace.rows !== A.trace.rows);
  const sat = await Promise.all(traces.map((t, i) => (i === 0 || models === 'different' || t.trace.rows !== A.trace.rows
    ? null
    : saturation(async (sql) => (await conn.runAndReadAll(sql)).getRowsJS() as unknown[][], A.trace.routing, t.trace.routing))));
  const notes = [warning, unlike.length ? `${unlike.map((t) => basename(t.trace.dir)).join(', ')}: not the same tokens as ${basename(A.trace.dir)} (different row counts), so no saturation.` : null].filter((x): x is string => x !== null);
  const layers = A.layers.map((layer) => ({
    layer,
    S: metrics.map((m) => m?.find((x) => x.layer === layer)?.S ?? null),
    cv: metrics.map((m) => m?.find((x) => x.layer === layer)?.load.cv ?? null),
    saturation: sat.map((s) => s?.get(layer) ?? null),
  }));
  const counts = models === 'different' ? null : await Promise.all(traces.map((t) => t.countsJson(mode, groups, by).catch(() => null)));
  return {
    names: traces.map((t) => t.trace.name), folders: traces.map((t) => basename(t.trace.dir)), models, warning: notes.length ? notes.join(' ') : null, by, groups: [...groups], layers,
    counts: counts && counts.every((c) => c !== null) ? (counts as NonNullable<(typeof counts)[number]>[]) : null,
  };
}
