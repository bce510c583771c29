import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export interface DuckOptions {
  /** DuckDB memory_limit; the aggregations here keep a few hundred groups, so a small limit is plenty. */
  memoryLimit?: string;
  threads?: number;
}

/**
 * An in-memory DuckDB for reading traces. Parquet is scanned in streaming fashion, so a trace larger
 * than memory is fine; spills (never expected for these small GROUP BYs) go to the system temp folder.
 * Extension auto-install is off: nothing is downloaded at run time.
 */
export async function openDuck(opts: DuckOptions = {}): Promise<{ conn: DuckDBConnection; close: () => void }> {
  const config: Record<string, string> = {
    memory_limit: opts.memoryLimit ?? '1GB',
    temp_directory: join(tmpdir(), 'moescope-duckdb'),
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  };
  if (opts.threads) config.threads = String(opts.threads);
  const instance = await DuckDBInstance.create(':memory:', config);
  const conn = await instance.connect();
  return {
    conn,
    close: () => {
      conn.closeSync();
      instance.closeSync();
    },
  };
}

/** A string literal for SQL (paths, modality names). */
export { sqlString } from '../util/sql.js';
