import { readFileSync } from 'node:fs';
import { parquetReadObjects } from 'hyparquet';
import * as parquetWasm from 'parquet-wasm';
import { tableFromIPC } from 'apache-arrow';
import { query, sqlPath } from '../capture/helpers.js';

/**
 * A Parquet file as three independent readers see it: DuckDB (C++), hyparquet (JS) and arrow-rs
 * (Rust, as parquet-wasm), rows as plain JS values, for the tests of moescope's own encoder.
 */

/** Readers' values as plain JS: numbers, strings, arrays (arrow's vectors and typed arrays too), objects. */
export function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v as ArrayLike<unknown>, plain);
  // an arrow Vector: iterated, which gives NULL slots as null (toArray() gives a primitive vector's raw values)
  if (v && typeof v === 'object' && typeof (v as { toArray?: unknown }).toArray === 'function') return Array.from(v as Iterable<unknown>, plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Every row from each reader (hyparquet: un-annotated BYTE_ARRAY as bytes, not as text). */
export async function readAll(path: string): Promise<Record<string, Record<string, unknown>[]>> {
  const cols = (await query(`SELECT column_name FROM (DESCRIBE SELECT * FROM ${sqlPath(path)})`)).map((r) => String(r[0]));
  const duck = (await query(`SELECT * FROM ${sqlPath(path)}`)).map((row) => Object.fromEntries(cols.map((k, j) => [k, plain(row[j])])));
  const buf = readFileSync(path);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const hy = (await parquetReadObjects({ file: ab, utf8: false })).map((r) => plain(r) as Record<string, unknown>);
  const table = tableFromIPC(parquetWasm.readParquet(new Uint8Array(buf)).intoIPCStream());
  const arrow = [...table].map((r) => plain(r!.toJSON()) as Record<string, unknown>);
  return { duckdb: duck, hyparquet: hy, 'arrow-rs': arrow };
}

