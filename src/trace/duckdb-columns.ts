import duckdb from '@duckdb/node-bindings';
import { DOUBLE, DuckDBDataChunk, INTEGER, type DuckDBConnection } from '@duckdb/node-api';

/**
 * Append whole typed-array columns to a table (INTEGER for Int32Array, DOUBLE for Float64Array):
 * each vector-sized slice is one memcpy into a data chunk, not a call per value.
 */
export async function appendColumns(conn: DuckDBConnection, table: string, columns: (Int32Array | Float64Array)[]): Promise<void> {
  const n = columns[0]?.length ?? 0;
  if (columns.some((c) => c.length !== n)) throw new Error(`appendColumns ${table}: columns differ in length`);
  const appender = await conn.createAppender(table);
  const chunk = DuckDBDataChunk.create(columns.map((c) => (c instanceof Int32Array ? INTEGER : DOUBLE)));
  const CH = duckdb.vector_size();
  for (let start = 0; start < n; start += CH) {
    const m = Math.min(CH, n - start);
    chunk.reset();
    columns.forEach((c, j) => {
      const v = duckdb.data_chunk_get_vector(chunk.chunk, j);
      duckdb.copy_data_to_vector(v, 0, c.buffer as ArrayBuffer, c.byteOffset + start * c.BYTES_PER_ELEMENT, m * c.BYTES_PER_ELEMENT);
    });
    chunk.rowCount = m;
    appender.appendDataChunk(chunk);
  }
  appender.flushSync();
  appender.closeSync();
}
