import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { InputError } from '../../util/errors.js';
import { openTrace as openRouting, type TraceHandle } from '../../analysis/trace.js';
import { sqlString } from '../../analysis/db.js';
import type { TraceMeta } from '../../trace/meta.js';

/** One trace folder opened for the dashboard: the analysis handle (routing.parquet, meta) plus samples.parquet. */
export interface Trace {
  dir: string;
  name: string; // "A", or "B" with --compare
  handle: TraceHandle;
  meta: TraceMeta;
  routing: string; // SQL relation of routing.parquet
  samples: string | null; // SQL relation of samples.parquet; null when the trace has none
  rows: number; // rows of routing.parquet (from the footer)
  routingColumns: Map<string, string>; // column -> DuckDB type
  sampleColumns: Map<string, string>; // empty without samples.parquet
}

const SAMPLE_COLUMNS: Record<string, RegExp> = {
  sample: /^(TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER)$/,
  text: /^VARCHAR$/,
};
/** Optional samples.parquet columns the dashboard reads (SPEC §2), checked when present. */
const OPTIONAL_SAMPLE_COLUMNS: Record<string, RegExp> = {
  images: /^BLOB\[\]$/,
  source: /^VARCHAR$/,
  domain: /^VARCHAR$/,
  tokens: /^VARCHAR\[\]$/,
};

export async function queryRows(conn: DuckDBConnection, sql: string, params?: DuckDBValue[]): Promise<Record<string, unknown>[]> {
  return (await conn.runAndReadAll(sql, params)).getRowObjectsJS() as Record<string, unknown>[];
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/**
 * Open and check a trace folder (SPEC §2): routing.parquet and meta.json through the analysis'
 * checks, samples.parquet here. Anything wrong is an InputError naming the file.
 */
export async function openTrace(conn: DuckDBConnection, dirArg: string, name: string): Promise<Trace> {
  const dir = resolve(dirArg);
  if (existsSync(dir) && statSync(dir).isDirectory() && !existsSync(join(dir, 'routing.parquet')) && !existsSync(join(dir, 'meta.json'))) {
    throw new InputError(`${dirArg}: not a moescope trace (no routing.parquet or meta.json; make one with \`moescope demo\` or \`moescope capture\`)`);
  }
  const handle = await openRouting(conn, existsSync(dir) ? dir : dirArg);
  // the row count as meta.json records it when moescope wrote the trace (its files were just checked
  // against their records), else from the footers: reading every shard's footer at start grew with the trace
  let rows: number;
  if (handle.meta.files && handle.meta.rows !== undefined) rows = handle.meta.rows;
  else {
    try {
      rows = Number((await queryRows(conn, `SELECT sum(num_rows)::BIGINT AS n FROM parquet_file_metadata([${handle.routingFiles.map(sqlString).join(', ')}])`))[0].n);
    } catch (e) {
      throw new InputError(`${handle.routingPath}: cannot read the Parquet footer (${firstLine(e)})`);
    }
  }
  let samples: string | null = null;
  let cols = new Map<string, string>();
  const samplesPath = join(dir, 'samples.parquet');
  if (existsSync(samplesPath)) {
    try {
      cols = new Map((await queryRows(conn, `DESCRIBE SELECT * FROM read_parquet(${sqlString(samplesPath)})`)).map((r) => [String(r.column_name), String(r.column_type)]));
    } catch (e) {
      throw new InputError(`${samplesPath}: cannot read as Parquet (${firstLine(e)})`);
    }
    for (const [col, re] of Object.entries(SAMPLE_COLUMNS)) {
      const got = cols.get(col);
      if (got === undefined) throw new InputError(`${samplesPath}: missing column ${col}`);
      if (!re.test(got)) throw new InputError(`${samplesPath}: column ${col} has type ${got}, expected ${re.source.replace(/[\^$\\()]/g, '').split('|')[0]}`);
    }
    for (const [col, re] of Object.entries(OPTIONAL_SAMPLE_COLUMNS)) {
      const got = cols.get(col);
      if (got !== undefined && !re.test(got)) throw new InputError(`${samplesPath}: column ${col} has type ${got}, expected ${re.source.replace(/[\^$\\()]/g, '').replace('[]', '[]')}`);
    }
    samples = `read_parquet(${sqlString(samplesPath)})`;
  }
  return { dir, name, handle, meta: handle.meta, routing: handle.routingSql, samples, rows, routingColumns: handle.routingColumns, sampleColumns: cols };
}
