import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { readTraceMeta, type TraceMeta } from '../trace/meta.js';
import { sqlString } from './db.js';

/** A trace folder whose files and columns have been checked (SPEC §2). */
export interface TraceHandle {
  dir: string;
  routingPath: string;
  /** `read_parquet(...)` of routing.parquet, ready to put in a FROM clause. */
  routingSql: string;
  meta: TraceMeta;
  hasProb: boolean;
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
};

/**
 * Check a trace folder: meta.json and routing.parquet exist, the Parquet file opens and has the
 * SPEC columns with usable types. Reads only the Parquet footer; row-level checks (expert ids,
 * empty trace, layers) happen in the counting query, which scans the rows anyway.
 */
export async function openTrace(conn: DuckDBConnection, dir: string): Promise<TraceHandle> {
  if (!existsSync(dir)) throw new InputError(`${dir}: no such trace folder`);
  if (!statSync(dir).isDirectory()) throw new InputError(`${dir}: not a folder (a trace is a folder with routing.parquet and meta.json)`);
  const routingPath = join(dir, 'routing.parquet');
  if (!existsSync(routingPath)) throw new InputError(`${dir}: not a trace folder (no routing.parquet)`);
  const meta = await readTraceMeta(dir);
  const routingSql = `read_parquet(${sqlString(routingPath)})`;
  let columns: Map<string, string>;
  try {
    const res = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${routingSql}`);
    columns = new Map(res.getRowObjectsJS().map((r) => [String(r.column_name), String(r.column_type)]));
  } catch (e) {
    throw new InputError(`${routingPath}: cannot read as Parquet (${firstLine(e)})`);
  }
  for (const [name, { re, want }] of Object.entries(REQUIRED)) {
    const got = columns.get(name);
    if (got === undefined) throw new InputError(`${routingPath}: missing column ${name} (${want})`);
    if (!re.test(got)) throw new InputError(`${routingPath}: column ${name} has type ${got}, expected ${want}`);
  }
  const prob = columns.get('prob');
  if (prob !== undefined && !OPTIONAL.prob.re.test(prob)) {
    throw new InputError(`${routingPath}: column prob has type ${prob}, expected ${OPTIONAL.prob.want}`);
  }
  return { dir, routingPath, routingSql, meta, hasProb: prob !== undefined };
}

export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
