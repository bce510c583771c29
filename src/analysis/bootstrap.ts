import type { DuckDBConnection } from '@duckdb/node-api';
import { baseRelation } from '../trace/aggregates.js';
import { resolveBy } from './agg-source.js';
import { sqlString } from './db.js';
import { isAggGroupColumn } from './groups.js';
import type { TraceHandle } from './trace.js';
import type { CountMode, ShareInterval } from './types.js';

export interface BootstrapOptions {
  level: number; // e.g. 0.95
  replicates: number;
  seed: number;
  normalize: 'expert' | 'group';
}

/**
 * Bootstrap intervals over samples for the shares of each (layer, expert, group), in SQL: each
 * replicate weights every sample by a Poisson(1) draw taken from a hash of (sample, replicate,
 * seed) — the Poisson bootstrap, deterministic for a seed — and the interval is the replicates'
 * central quantiles. Reads the rows (per-sample counts are not in the aggregates).
 */
export async function shareIntervals(
  conn: DuckDBConnection, trace: TraceHandle, by: string, mode: CountMode,
  layers: readonly number[], groups: readonly string[], opts: BootstrapOptions,
): Promise<Map<number, ShareInterval>> {
  const E = trace.meta.num_experts;
  const extra = isAggGroupColumn(by) ? undefined : resolveBy(trace, by);
  const base = baseRelation(trace.routingSql, trace.samplesSql, {
    domain: trace.routingColumns.has('domain') ? 'routing' : trace.sampleColumns.get('domain') === 'VARCHAR' ? 'samples' : null,
    phase: trace.routingColumns.has('phase'),
    prob: false,
    extra,
  });
  const g = extra ? 'xg' : by;
  const weights = mode === 'all'
    ? 'list_transform(expert, lambda x: 1.0)'
    : mode === 'top1'
      ? 'list_transform(generate_series(1, len(expert)), lambda i: CASE WHEN i = 1 THEN 1.0 ELSE 0.0 END)'
      : 'list_transform(gate, lambda x: x / list_sum(gate))';
  const u = `hash(s.sample, r.r, ${Math.trunc(opts.seed)})::DOUBLE / 18446744073709551616.0`;
  // inverse CDF of Poisson(1)
  const poisson = `CASE WHEN u < 0.36787944 THEN 0 WHEN u < 0.73575888 THEN 1 WHEN u < 0.91969860 THEN 2 WHEN u < 0.98101184 THEN 3
    WHEN u < 0.99634015 THEN 4 WHEN u < 0.99940582 THEN 5 WHEN u < 0.99991676 THEN 6 WHEN u < 0.99998975 THEN 7 ELSE 8 END`;
  const part = opts.normalize === 'expert' ? 'layer, r, expert' : 'layer, r, g';
  const a = (1 - opts.level) / 2;
  const sql = `
    WITH per AS (SELECT layer, sample, g, expert, sum(w) AS n
                 FROM (SELECT layer, sample, ${g} AS g, unnest(expert) AS expert, unnest(${weights}) AS w
                       FROM ${base} WHERE layer IN (${layers.join(', ')}) AND ${g} IN (${groups.map(sqlString).join(', ')}))
                 GROUP BY ALL),
         sw AS (SELECT sample, r, ${poisson} AS w
                FROM (SELECT s.sample, r.r, ${u} AS u FROM (SELECT DISTINCT sample FROM per) s CROSS JOIN range(${opts.replicates}) r(r))),
         rep AS (SELECT layer, r, g, expert, sum(n * w) AS n FROM per JOIN sw USING (sample) GROUP BY ALL),
         sh AS (SELECT layer, g, expert, n / nullif(sum(n) OVER (PARTITION BY ${part}), 0) AS share FROM rep)
    SELECT layer, g, expert, quantile_cont(share, ${a}), quantile_cont(share, ${1 - a}) FROM sh WHERE share IS NOT NULL GROUP BY ALL`;
  const rows = (await conn.runAndReadAll(sql)).getRowsJS() as unknown[][];
  const out = new Map<number, ShareInterval>();
  for (const l of layers) {
    const blank = () => Array.from({ length: E }, () => groups.map(() => null as number | null));
    out.set(l, { level: opts.level, replicates: opts.replicates, normalize: opts.normalize, lo: blank(), hi: blank() });
  }
  for (const [layer, gv, e, lo, hi] of rows) {
    const iv = out.get(Number(layer))!;
    const gi = groups.indexOf(String(gv));
    iv.lo[Number(e)][gi] = Number(lo);
    iv.hi[Number(e)][gi] = Number(hi);
  }
  return out;
}
