import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { readTraceMeta, type TraceMeta } from '../trace/meta.js';
import { AGG_TABLES, aggFile, type AggTable } from '../trace/aggregates.js';
import { checkLiteralPath, listRoutingFiles, verifyFiles } from '../trace/files.js';
import { sqlString } from './db.js';

/** A trace (one folder, or several read as shards of one) whose files and columns have been checked (SPEC §2). */
export interface TraceHandle {
  dir: string; // the first folder
  dirs: string[];
  /** routing.parquet or routing/ of the first folder (for messages). */
  routingPath: string;
  routingFiles: string[];
  /** `read_parquet([...])` over every routing file, ready to put in a FROM clause. */
  routingSql: string;
  /** `read_parquet([...])` over samples.parquet of every folder, or null when none has one. */
  samplesSql: string | null;
  meta: TraceMeta;
  hasProb: boolean;
  /** VARCHAR columns of routing and of samples (the `--by` candidates). */
  routingColumns: Map<string, string>;
  sampleColumns: Map<string, string>;
  /** Aggregate files per table (one per folder) when every folder has all of them; null otherwise. */
  agg: Record<AggTable, string[]> | null;
}

export interface OpenTraceOptions {
  /** Skip the SHA-256 checks (sizes are still checked). */
  noVerify?: boolean;
}

const INT = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT)$/;
const INT_LIST = /^(TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT)\[\d*\]$/;
const FLOAT_LIST = /^(FLOAT|DOUBLE)\[\d*\]$/;

/** Column -> accepted DuckDB types. Integer widths are not insisted on, so traces from other tools read too. */
const REQUIRED: Record<string, { re: RegExp; want: string }> = {
  sample: { re: INT, want: 'INTEGER' },
  pos: { re: INT, want: 'INTEGER' },
  modality: { re: /^VARCHAR$/, want: 'VARCHAR' },
  token: { re: INT, want: 'INTEGER' },
  layer: { re: INT, want: 'SMALLINT' },
  expert: { re: INT_LIST, want: 'SMALLINT[]' },
  gate: { re: FLOAT_LIST, want: 'FLOAT[]' },
};
const OPTIONAL: Record<string, { re: RegExp; want: string }> = {
  prob: { re: FLOAT_LIST, want: 'FLOAT[]' },
  phase: { re: /^VARCHAR$/, want: 'VARCHAR' },
  domain: { re: /^VARCHAR$/, want: 'VARCHAR' },
};

const parquetList = (files: string[]) => `[${files.map(sqlString).join(', ')}]`;

async function describe(conn: DuckDBConnection, rel: string, where: string): Promise<Map<string, string>> {
  try {
    const res = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${rel}`);
    return new Map(res.getRowObjectsJS().map((r) => [String(r.column_name), String(r.column_type)]));
  } catch (e) {
    throw new InputError(`${where}: cannot read as Parquet (${firstLine(e)})`);
  }
}

/** Several traces read as shards of one must describe the same model routing. */
function combineMeta(metas: TraceMeta[], dirs: string[]): TraceMeta {
  const first = metas[0];
  for (let i = 1; i < metas.length; i++) {
    for (const k of ['num_layers', 'num_experts', 'top_k', 'router_scoring'] as const) {
      if (metas[i][k] !== first[k]) throw new InputError(`${dirs[i]}: ${k} ${JSON.stringify(metas[i][k])} differs from ${dirs[0]} (${JSON.stringify(first[k])}); traces read together must come from one model`);
    }
  }
  if (metas.length === 1) return first;
  const tokens: Record<string, number> = {};
  for (const m of metas) for (const [k, v] of Object.entries(m.tokens)) tokens[k] = (tokens[k] ?? 0) + v;
  const layers = [...new Set(metas.flatMap((m) => m.layers ?? []))].sort((a, b) => a - b);
  // gates/expert_order: the weakest statement of the shards holds for all
  const gates = metas.find((m) => m.gates !== undefined && !/^router\b/.test(m.gates))?.gates ?? first.gates;
  const order = metas.some((m) => m.expert_order === 'unranked') ? 'unranked' : first.expert_order;
  return { ...first, tokens, layers, gates, expert_order: order, files: undefined, data: metas.map((m) => m.data) };
}

/**
 * Open trace folders (several = shards of one trace): meta.json checked and bounded, recorded file
 * sizes (and hashes where cheap) verified, routing columns checked from the Parquet footer of each
 * folder's first routing file (the others are read with union_by_name when their rows are).
 * Row-level checks (expert ids, empty lists, layers) come with the counts.
 */
export async function openTraces(conn: DuckDBConnection, dirs: readonly string[], opts: OpenTraceOptions = {}): Promise<TraceHandle> {
  if (dirs.length === 0) throw new InputError('no trace given');
  const metas: TraceMeta[] = [];
  const routingFiles: string[] = [];
  const firstShards: string[] = []; // each folder's first routing file
  const sampleFiles: string[] = [];
  let hive = false;
  let routingPath = '';
  let agg: Record<AggTable, string[]> | null = Object.fromEntries(AGG_TABLES.map((t) => [t, [] as string[]])) as Record<AggTable, string[]>;
  for (const dir of dirs) {
    checkLiteralPath(dir);
    if (!existsSync(dir)) throw new InputError(`${dir}: no such trace folder`);
    if (!statSync(dir).isDirectory()) throw new InputError(`${dir}: not a folder (a trace is a folder with routing.parquet and meta.json)`);
    const r = listRoutingFiles(dir);
    const meta = await readTraceMeta(dir);
    verifyFiles(dir, meta.files, { hashes: !opts.noVerify });
    metas.push(meta);
    routingFiles.push(...r.files);
    firstShards.push(r.files[0]);
    hive ||= r.hive;
    routingPath ||= r.display;
    const samples = join(dir, 'samples.parquet');
    if (existsSync(samples)) {
      if (!statSync(samples).isFile()) throw new InputError(`${samples}: not a regular file`);
      sampleFiles.push(samples);
    }
    if (agg) {
      for (const t of AGG_TABLES) {
        const f = join(dir, aggFile(t));
        if (existsSync(f) && statSync(f).isFile()) agg[t].push(f);
        else agg = null;
        if (!agg) break;
      }
    }
  }
  const meta = combineMeta(metas, [...dirs]);
  const readParquet = (files: string[]) => `read_parquet(${parquetList(files)}${hive ? ', hive_partitioning = true, hive_types_autocast = false' : ''}, union_by_name = true)`;
  const routingSql = readParquet(routingFiles);
  // the columns from each folder's first shard: a folder's shards come from one writer, and
  // describing them all read every footer, a cost that grew with the trace (~0.2 ms a shard)
  const columns = await describe(conn, readParquet(firstShards), routingPath);
  for (const [name, { re, want }] of Object.entries(REQUIRED)) {
    const got = columns.get(name);
    if (got === undefined) throw new InputError(`${routingPath}: missing column ${name} (${want})`);
    if (!re.test(got)) throw new InputError(`${routingPath}: column ${name} has type ${got}, expected ${want}`);
  }
  for (const [name, { re, want }] of Object.entries(OPTIONAL)) {
    const got = columns.get(name);
    if (got !== undefined && !re.test(got)) throw new InputError(`${routingPath}: column ${name} has type ${got}, expected ${want}`);
  }
  const samplesSql = sampleFiles.length ? `read_parquet(${parquetList(sampleFiles)}, union_by_name = true)` : null;
  const sampleColumns = samplesSql ? await describe(conn, samplesSql, sampleFiles[0]) : new Map<string, string>();
  if (samplesSql) {
    const t = sampleColumns.get('sample');
    if (t === undefined || !INT.test(t)) throw new InputError(`${sampleFiles[0]}: column sample missing or not an integer`);
  }
  return {
    dir: dirs[0], dirs: [...dirs], routingPath, routingFiles, routingSql, samplesSql, meta,
    hasProb: columns.has('prob'), routingColumns: columns, sampleColumns, agg,
  };
}

/** One trace folder (the dashboard's and older callers' entry point). */
export async function openTrace(conn: DuckDBConnection, dir: string, opts: OpenTraceOptions = {}): Promise<TraceHandle> {
  return openTraces(conn, [dir], opts);
}

export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
