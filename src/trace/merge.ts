import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { writeDirAtomic } from '../util/atomic.js';
import { openTraces, type TraceHandle } from '../analysis/trace.js';
import { AGG_TABLES, aggFile, mergeAggregateSql } from './aggregates.js';
import { recordFiles } from './files.js';
import type { TraceMeta } from './meta.js';
import { aggregatesFromRows } from './store-aggregates.js';
import { sqlString } from '../analysis/db.js';

const q = sqlString;

/** The sample ids a shard holds, from the Parquet footers' statistics (no row is read when they are there). */
async function sampleRange(conn: DuckDBConnection, t: TraceHandle): Promise<[number, number]> {
  const rows = (await conn.runAndReadAll(`SELECT min(TRY_CAST(stats_min_value AS BIGINT)), max(TRY_CAST(stats_max_value AS BIGINT)), bool_or(stats_min_value IS NULL)
    FROM parquet_metadata([${t.routingFiles.map(q).join(', ')}]) WHERE path_in_schema = 'sample'`)).getRowsJS() as unknown[][];
  let [lo, hi, missing] = rows[0] ?? [null, null, true];
  if (lo === null || hi === null || missing) {
    [[lo, hi]] = (await conn.runAndReadAll(`SELECT min(sample), max(sample) FROM ${t.routingSql}`)).getRowsJS() as unknown[][];
  }
  return [Number(lo), Number(hi)];
}

/** A total only when every shard knows its part. */
const sumOf = (xs: (number | undefined)[]) => (xs.every((x) => typeof x === 'number') ? xs.reduce((a, b) => a! + b!, 0) : undefined);

function sameModel(a: TraceMeta, b: TraceMeta): boolean {
  const cfg = (m: TraceMeta) => (m.model && typeof m.model === 'object' ? JSON.stringify(m.model.config ?? null) : null);
  return cfg(a) === null || cfg(b) === null || cfg(a) === cfg(b);
}

/**
 * `moescope merge SHARD... --out TRACE`: one trace from shards captured apart (ranks, machines).
 * Routing files are hard-linked (copied only across file systems), never rewritten; aggregates are
 * summed; samples are concatenated. Shards must describe one model and hold disjoint samples.
 */
export async function mergeTraces(conn: DuckDBConnection, shards: readonly string[], out: string, version: string): Promise<TraceMeta> {
  if (shards.length < 1) throw new InputError('merge: give at least one shard');
  const outAbs = resolve(out);
  for (const s of shards) {
    const a = resolve(s);
    if (a === outAbs || outAbs.startsWith(a + '/') || a.startsWith(outAbs + '/')) throw new InputError(`--out: ${out} is (inside) the input ${s}`);
  }
  if (existsSync(out)) {
    if (!statSync(out).isDirectory() || (readdirSync(out).length > 0 && !existsSync(join(out, 'meta.json')))) {
      throw new InputError(`--out: ${out} exists and is not a trace folder`);
    }
  }
  const handles: TraceHandle[] = [];
  for (const s of shards) handles.push(await openTraces(conn, [s]));
  const first = handles[0].meta;
  const cols = (h: TraceHandle) => [...h.routingColumns].map(([c, t]) => `${c} ${t}`).sort().join(', ');
  for (let i = 1; i < handles.length; i++) {
    const m = handles[i].meta;
    for (const k of ['num_layers', 'num_experts', 'top_k', 'router_scoring'] as const) {
      if (m[k] !== first[k]) throw new InputError(`${shards[i]}: ${k} ${JSON.stringify(m[k])} differs from ${shards[0]} (${JSON.stringify(first[k])}); shards of one trace come from one model`);
    }
    if (!sameModel(first, m)) throw new InputError(`${shards[i]}: model config differs from ${shards[0]}; shards of one trace come from one model`);
    if (handles[i].hasProb !== handles[0].hasProb) throw new InputError(`${shards[i]}: ${handles[i].hasProb ? 'has' : 'lacks'} the prob column, unlike ${shards[0]}`);
    // the merged folder's routing files are then all of one schema, which reading its columns from its first file relies on (analysis/trace.ts)
    if (cols(handles[i]) !== cols(handles[0])) throw new InputError(`${shards[i]}: routing columns (${cols(handles[i])}) differ from ${shards[0]} (${cols(handles[0])}); shards of one trace have the same columns`);
  }
  const ranges = await Promise.all(handles.map((h) => sampleRange(conn, h)));
  const order = ranges.map((r, i) => ({ r, i })).sort((a, b) => a.r[0] - b.r[0]);
  for (let j = 1; j < order.length; j++) {
    const p = order[j - 1], c = order[j];
    if (c.r[0] <= p.r[1]) throw new InputError(`${shards[c.i]}: samples ${c.r[0]}..${c.r[1]} overlap ${shards[p.i]} (${p.r[0]}..${p.r[1]}); shards must hold disjoint sample ids (capture each with its own --first-sample range)`);
  }
  const combined = await openTraces(conn, shards, { noVerify: true }); // checks done above; combines meta
  return writeDirAtomic(out, async (dir) => {
    let part = 0;
    for (const h of handles) {
      for (const f of h.routingFiles) {
        // keep hive key=value/ subfolders of a sharded shard
        const sub = h.routingFiles.length === 1 && f.endsWith('routing.parquet') ? '' : dirname(relative(join(h.dir, 'routing'), f));
        const destDir = join(dir, 'routing', sub === '.' ? '' : sub);
        mkdirSync(destDir, { recursive: true });
        const dest = join(destDir, `part-${String(part++).padStart(5, '0')}.parquet`);
        try {
          linkSync(f, dest);
        } catch {
          copyFileSync(f, dest);
        }
      }
    }
    if (combined.samplesSql) {
      await conn.run(`COPY (SELECT * FROM ${combined.samplesSql} ORDER BY sample) TO ${q(join(dir, 'samples.parquet'))} (FORMAT parquet, COMPRESSION zstd)`);
    }
    if (handles.every((h) => h.agg)) {
      for (const t of AGG_TABLES) {
        await conn.run(`COPY (SELECT * FROM (${mergeAggregateSql(t, handles.map((h) => h.agg![t][0]))}) ORDER BY ALL) TO ${q(join(dir, aggFile(t)))} (FORMAT parquet, COMPRESSION zstd)`);
      }
    } else {
      await aggregatesFromRows(conn, combined, dir);
    }
    const meta: TraceMeta = {
      ...combined.meta,
      moescope_version: version,
      data: { merged: shards.map((s, i) => ({ path: s, data: handles[i].meta.data })) },
      samples: sumOf(handles.map((h) => h.meta.samples)),
      rows: sumOf(handles.map((h) => h.meta.rows)),
      files: undefined,
    };
    meta.files = recordFiles(dir);
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    return meta;
  }, 'trace');
}
