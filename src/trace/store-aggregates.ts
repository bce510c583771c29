import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { AGG_TABLES, aggFile, baseRelation, writeAggregates } from './aggregates.js';
import { recordFiles } from './files.js';
import type { TraceMeta } from './meta.js';

export interface RowSource {
  routingSql: string;
  samplesSql: string | null;
  routingColumns: Map<string, string>;
  sampleColumns: Map<string, string>;
  hasProb: boolean;
  meta: TraceMeta;
}

/** Compute the aggregates of a trace from its rows into `<outDir>/agg-*.parquet` (index, merge of shards without aggregates). */
export async function aggregatesFromRows(conn: DuckDBConnection, src: RowSource, outDir: string): Promise<void> {
  const base = baseRelation(src.routingSql, src.samplesSql, {
    domain: src.routingColumns.has('domain') ? 'routing' : src.samplesSql && src.sampleColumns.get('domain') === 'VARCHAR' ? 'samples' : null,
    phase: src.routingColumns.get('phase') === 'VARCHAR',
    prob: src.hasProb,
  });
  await writeAggregates(conn, base, outDir, { hasProb: src.hasProb, numExperts: src.meta.num_experts, topK: src.meta.top_k });
}

/**
 * `moescope index TRACE`: store the aggregates and meta.json `files` of a trace that has none
 * (hand-written, or from another tool). The new aggregate files are built in a temporary folder and
 * renamed into place; meta.json is replaced by rename, so a failed run leaves the trace as it was.
 */
export async function indexTrace(conn: DuckDBConnection, dir: string, src: RowSource): Promise<TraceMeta> {
  const tmp = join(dir, `.agg.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    await aggregatesFromRows(conn, src, tmp);
    for (const t of AGG_TABLES) renameSync(join(tmp, aggFile(t)), join(dir, aggFile(t)));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const meta: TraceMeta = { ...src.meta, files: recordFiles(dir) };
  const metaTmp = join(dir, `.meta.json.tmp-${process.pid}`);
  writeFileSync(metaTmp, JSON.stringify(meta, null, 2) + '\n');
  renameSync(metaTmp, join(dir, 'meta.json'));
  return meta;
}
