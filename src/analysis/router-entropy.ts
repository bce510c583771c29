import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { sqlString } from './db.js';
import { firstLine, type TraceHandle } from './trace.js';

/** Mean per-token entropy (bits) of the router distribution `prob`, per layer, over the given modalities. */
export async function routerEntropy(conn: DuckDBConnection, trace: TraceHandle, layers: readonly number[], modalities: readonly string[]): Promise<Map<number, number | null>> {
  const sql = `SELECT layer, sum(h)::DOUBLE AS hs, count(h)::DOUBLE AS c
    FROM (SELECT layer, -list_sum(list_transform(prob, lambda p: CASE WHEN p > 0 THEN p * log2(p) ELSE 0 END)) AS h
          FROM ${trace.routingSql}
          WHERE layer IN (${layers.join(', ')}) AND modality IN (${modalities.map(sqlString).join(', ')}))
    GROUP BY layer`;
  let rows: unknown[][];
  try {
    rows = (await conn.runAndReadAll(sql)).getRowsJS() as unknown[][];
  } catch (e) {
    throw new InputError(`${trace.routingPath}: cannot read column prob (${firstLine(e)})`);
  }
  const out = new Map<number, number | null>(layers.map((l) => [l, null]));
  for (const [layer, hs, c] of rows) if (Number(c) > 0) out.set(Number(layer), Number(hs) / Number(c));
  return out;
}
