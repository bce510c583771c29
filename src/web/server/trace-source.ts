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
}

const SAMPLE_COLUMNS: Record<string, RegExp> = {
  sample: /^(TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER)$/,
  text: /^VARCHAR$/,
  images: /^BLOB\[\]$/,
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
  let rows: number;
  try {
    rows = Number((await queryRows(conn, `SELECT sum(num_rows)::BIGINT AS n FROM parquet_file_metadata(${sqlString(handle.routingPath)})`))[0].n);
  } catch (e) {
    throw new InputError(`${handle.routingPath}: cannot read the Parquet footer (${firstLine(e)})`);
  }
  let samples: string | null = null;
  const samplesPath = join(dir, 'samples.parquet');
  if (existsSync(samplesPath)) {
    let cols: Map<string, string>;
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
    samples = `read_parquet(${sqlString(samplesPath)})`;
  }
  return { dir, name, handle, meta: handle.meta, routing: handle.routingSql, samples, rows };
}
