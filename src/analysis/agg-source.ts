import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { AGG_TABLES, aggregateQueries, baseRelation, type AggTable, type BaseColumns } from '../trace/aggregates.js';
import { isAggGroupColumn, isGroupColumnName } from './groups.js';
import { sqlString } from './db.js';
import { firstLine, type TraceHandle } from './trace.js';

/**
 * The aggregates of a trace under a grouping, as SQL relations with the group in column `g`
 * (and `prev_g` in `repeat`): read from the stored agg-*.parquet when the trace has them and the
 * grouping is one they hold, otherwise computed once from the rows into temporary tables.
 */
export interface AggRelations {
  by: string;
  fromRows: boolean;
  counts: string;
  tokens: string;
  repeat: string;
  coact: string;
  token: string;
}

const RESERVED = new Set(['sample', 'pos', 'token', 'layer', 'expert', 'gate', 'prob']);

/** Where a `--by` column lives, checked against the trace (a VARCHAR column of routing or samples). */
export function resolveBy(trace: TraceHandle, by: string): { name: string; from: 'routing' | 'samples' } {
  if (!isGroupColumnName(by) || RESERVED.has(by)) throw new InputError(`--by: "${by}" is not a grouping (modality, domain, phase, source, or a VARCHAR column)`);
  const r = trace.routingColumns.get(by);
  if (r !== undefined) {
    if (r !== 'VARCHAR') throw new InputError(`--by: column ${by} of ${trace.routingPath} has type ${r}, not VARCHAR`);
    return { name: by, from: 'routing' };
  }
  const s = trace.sampleColumns.get(by);
  if (s !== undefined) {
    if (s !== 'VARCHAR') throw new InputError(`--by: column ${by} of samples.parquet has type ${s}, not VARCHAR`);
    return { name: by, from: 'samples' };
  }
  const cols = [...trace.routingColumns.entries(), ...trace.sampleColumns.entries()].filter(([, t]) => t === 'VARCHAR').map(([c]) => c);
  throw new InputError(`--by: the trace has no column ${by} (VARCHAR columns: ${[...new Set(cols)].join(', ')})`);
}

function baseColumns(trace: TraceHandle): BaseColumns {
  return {
    domain: trace.routingColumns.has('domain') ? 'routing' : trace.sampleColumns.get('domain') === 'VARCHAR' ? 'samples' : null,
    phase: trace.routingColumns.has('phase'),
    prob: trace.hasProb,
  };
}

let tempCounter = 0;
const cache = new WeakMap<TraceHandle, Map<string, Promise<AggRelations>>>();

export function aggregatesFor(conn: DuckDBConnection, trace: TraceHandle, by: string): Promise<AggRelations> {
  let m = cache.get(trace);
  if (!m) cache.set(trace, (m = new Map()));
  let p = m.get(by);
  if (!p) {
    p = build(conn, trace, by);
    p.catch(() => m!.delete(by));
    m.set(by, p);
  }
  return p;
}

async function build(conn: DuckDBConnection, trace: TraceHandle, by: string): Promise<AggRelations> {
  const where = resolveWhere(trace, by);
  const prev = by === 'modality' ? 'prev_modality' : by === 'phase' ? 'prev_phase' : by === 'domain' ? 'domain' : 'prev_xg';
  const stored = trace.agg && isAggGroupColumn(by);
  const rel: Partial<Record<AggTable, string>> = {};
  if (stored) {
    for (const t of AGG_TABLES) rel[t] = `read_parquet([${trace.agg![t].map(sqlString).join(', ')}], union_by_name = true)`;
  } else {
    const cols = baseColumns(trace);
    const extra = isAggGroupColumn(by) ? undefined : resolveBy(trace, by);
    if (extra) cols.extra = extra;
    if (extra?.from === 'samples' || cols.domain === 'samples') {
      if (!trace.samplesSql) throw new InputError(`${where}: no samples.parquet`);
    }
    const base = baseRelation(trace.routingSql, trace.samplesSql, cols);
    const queries = aggregateQueries(base, { extraKey: !!extra, hasProb: trace.hasProb, numExperts: trace.meta.num_experts, topK: trace.meta.top_k });
    const id = `agg_${++tempCounter}`;
    for (const t of AGG_TABLES) {
      try {
        await conn.run(`CREATE TEMP TABLE ${id}_${t} AS ${queries[t]}`);
      } catch (e) {
        throw new InputError(`${where}: cannot read routing rows (${firstLine(e)})`);
      }
      rel[t] = `${id}_${t}`;
    }
  }
  const g = isAggGroupColumn(by) ? by : 'xg';
  const view = (t: AggTable, extraCols = '') => `(SELECT *, ${g} AS g${extraCols} FROM ${rel[t]})`;
  return {
    by,
    fromRows: !stored,
    counts: view('counts'),
    tokens: view('tokens'),
    repeat: view('repeat', `, ${prev} AS prev_g`),
    coact: view('coact'),
    token: view('token'),
  };
}

function resolveWhere(trace: TraceHandle, by: string): string {
  if (by === 'modality' || by === 'phase' || by === 'domain') {
    if (by === 'phase' && !trace.routingColumns.has('phase')) throw new InputError(`--by phase: ${trace.routingPath} has no phase column`);
    if (by === 'domain' && !trace.routingColumns.has('domain') && trace.sampleColumns.get('domain') !== 'VARCHAR') {
      throw new InputError(`--by domain: the trace has no domain (no domain column in routing or samples.parquet)`);
    }
  }
  return trace.routingPath;
}
