import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from '../util/sql.js';

/**
 * Aggregates (SPEC §2): the sums every §3 metric needs, per (layer, modality, domain, phase),
 * stored beside the rows as small Parquet files `agg-<table>.parquet`. They merge by summation (shards,
 * `moescope merge`), and `analyze`, `plot` and the dashboard's first views read only them.
 *
 * - counts:  per expert: n_all (each of the k choices 1), n_top1 (first = highest-gate slot),
 *            n_gate (gate / sum of the token's gates), n_gate_bad (choices without a usable gate)
 * - tokens:  tokens, empty expert lists, router sums (top-1 gate, top-1 minus top-2, entropy of prob)
 * - repeat:  consecutive positions of one sample and layer: pairs, and pairs with the same top-1
 * - coact:   pairs i != j chosen together (k >= 2 only)
 * - token:   top-1 expert per token id (bounded by vocabulary x experts, not by rows)
 */
export const AGG_TABLES = ['counts', 'tokens', 'repeat', 'coact', 'token'] as const;
export type AggTable = (typeof AGG_TABLES)[number];


/**
 * A float sum whose result does not depend on the order DuckDB's threads add in (exact DECIMAL
 * addition of values rounded to 1e-15), so that the same rows give the same bytes.
 */
export const exactSum = (expr: string, filter?: string) =>
  `sum(CASE WHEN ${filter ? `(${filter}) AND ` : ''}(${expr}) IS NOT NULL AND NOT isnan(${expr}) THEN (${expr})::DOUBLE::DECIMAL(38, 15) END)::DOUBLE`;
/** Flat in the trace folder (no subfolder: tools that list a trace's files see them beside the rows). */
export const aggFile = (table: AggTable) => `agg-${table}.parquet`;

/** The keys of every aggregate (SPEC §2 group columns), plus an ad-hoc `--by` column when computed from rows. */
export const AGG_KEYS = ['layer', 'modality', 'domain', 'phase'] as const;

export interface AggSqlOptions {
  /** Extra key (an ad-hoc `--by` column, named `xg` in the base relation). */
  extraKey?: boolean;
  hasProb: boolean;
  numExperts: number;
  topK: number;
}

/**
 * The aggregate queries over a base relation with columns layer, modality, domain, phase, [xg],
 * sample, pos, token, expert, gate, prob (prob may be a NULL column). DuckDB dialect; the portable
 * versions users run in Spark or Trino are in docs/metrics.md.
 */
export function aggregateQueries(base: string, opts: AggSqlOptions): Record<AggTable, string> {
  const keys = [...AGG_KEYS, ...(opts.extraKey ? ['xg'] : [])];
  const k = keys.join(', ');
  const x = (sql: string) => (opts.extraKey ? sql : '');
  // per row once: list length, gate sum, whether the gates are usable
  const rows = `(SELECT ${k}, sample, pos, token, expert, gate, prob, coalesce(len(expert), 0) AS nk, gs,
      (gate IS NOT NULL AND len(gate) = len(expert) AND list_count(gate) = len(gate) AND gs > 0 AND NOT isnan(gs)) AS ok
    FROM (SELECT *, list_sum(gate) AS gs FROM ${base}))`;
  const K = opts.topK;
  // few distinct expert lists (E^k small): group rows by their whole list first, then unnest the small result
  const grouped = opts.numExperts ** K <= 1e5;
  const slotSums = Array.from({ length: K }, (_, s) => `${exactSum(`gate[${s + 1}] / gs`, 'ok')} AS w${s + 1}`).join(', ');
  const slotList = `[${Array.from({ length: K }, (_, s) => `w${s + 1}`).join(', ')}]`;
  const counts = grouped
    ? `SELECT ${k}, e::SMALLINT AS expert, sum(c)::BIGINT AS n_all, coalesce(sum(c) FILTER (WHERE slot = 1), 0)::BIGINT AS n_top1,
          coalesce(${exactSum('w')}, 0)::DOUBLE AS n_gate, sum(bad)::BIGINT AS n_gate_bad
        FROM (SELECT ${k}, unnest(expert) AS e, unnest(generate_series(1, len(expert))) AS slot, c, bad,
                     unnest(list_slice(${slotList}, 1, len(expert))) AS w
              FROM (SELECT ${k}, expert, count(*) AS c, count(*) FILTER (WHERE NOT ok) AS bad, ${slotSums} FROM ${rows} WHERE nk > 0 GROUP BY ALL))
        GROUP BY ALL`
    : `SELECT ${k}, e::SMALLINT AS expert, count(*)::BIGINT AS n_all,
          count(*) FILTER (WHERE slot = 1)::BIGINT AS n_top1,
          coalesce(${exactSum('w')}, 0)::DOUBLE AS n_gate,
          count(*) FILTER (WHERE w IS NULL OR isnan(w))::BIGINT AS n_gate_bad
        FROM (SELECT ${k}, unnest(expert) AS e, unnest(generate_series(1, len(expert))) AS slot,
                     unnest(CASE WHEN ok THEN list_transform(gate, lambda v: v / gs) ELSE list_transform(expert, lambda v: NULL::DOUBLE) END) AS w
              FROM ${rows} WHERE nk > 0)
        GROUP BY ALL`;
  const prob = opts.hasProb
    ? `${exactSum('list_max(prob)')} AS prob_top1_sum,
       ${exactSum(`list_sort(prob, 'DESC')[1] - list_sort(prob, 'DESC')[2]`, 'len(prob) >= 2')} AS prob_margin_sum,
       ${exactSum('-list_sum(list_transform(prob, lambda p: CASE WHEN p > 0 THEN p * log2(p) ELSE 0 END))')} AS prob_entropy_sum,
       count(prob)::BIGINT AS prob_rows`
    : `NULL::DOUBLE AS prob_top1_sum, NULL::DOUBLE AS prob_margin_sum, NULL::DOUBLE AS prob_entropy_sum, 0::BIGINT AS prob_rows`;
  return {
    counts,
    tokens: `SELECT ${k}, count(*)::BIGINT AS tokens,
        count(*) FILTER (WHERE nk = 0)::BIGINT AS empty,
        count(*) FILTER (WHERE ok)::BIGINT AS gate_rows,
        count(*) FILTER (WHERE ok AND abs(gs - 1) < 1e-3)::BIGINT AS gate_sum_one,
        coalesce(${exactSum('gate[1]', 'ok')}, 0)::DOUBLE AS gate_top1_sum,
        coalesce(${exactSum('gate[1] - gate[2]', 'ok AND nk >= 2')}, 0)::DOUBLE AS gate_margin_sum,
        count(*) FILTER (WHERE ok AND nk >= 2)::BIGINT AS gate_margin_rows,
        ${prob}
      FROM ${rows} GROUP BY ALL`,
    // consecutive positions without a window or a self-join: every row also speaks for position
    // pos + 1 and one GROUP BY (which spills to disk) pairs them; the group keys travel as a hash
    // (string aggregate state does not spill), resolved through the small table of distinct keys
    repeat: `WITH dict AS (SELECT DISTINCT modality, domain, phase${x(', xg')}, hash(modality, domain, phase${x(', xg')}) AS kid FROM ${base}),
           c AS (SELECT layer, kid, prev_kid, count(*) AS pairs, count(*) FILTER (WHERE top1 = prev_top1) AS same
                 FROM (SELECT sample, layer, pos,
                              max(top1) FILTER (WHERE dd = 0) AS top1, max(top1) FILTER (WHERE dd = 1) AS prev_top1,
                              max(kid) FILTER (WHERE dd = 0) AS kid, max(kid) FILTER (WHERE dd = 1) AS prev_kid,
                              count(*) FILTER (WHERE dd = 0) AS n0, count(*) FILTER (WHERE dd = 1) AS n1
                       FROM (SELECT sample, layer, pos + dd AS pos, dd, expert[1] AS top1, hash(modality, domain, phase${x(', xg')}) AS kid
                             FROM ${base} CROSS JOIN (VALUES (0), (1)) t(dd) WHERE len(expert) > 0)
                       GROUP BY sample, layer, pos)
                 WHERE n0 = 1 AND n1 = 1 GROUP BY ALL)
      SELECT c.layer, d.modality, d.domain, d.phase${x(', d.xg')}, pd.modality AS prev_modality, pd.phase AS prev_phase${x(', pd.xg AS prev_xg')},
             c.pairs::BIGINT AS pairs, c.same::BIGINT AS same
      FROM c JOIN dict d ON d.kid = c.kid JOIN dict pd ON pd.kid = c.prev_kid`,
    coact: `SELECT ${k}, i::SMALLINT AS i, j::SMALLINT AS j, sum(c)::BIGINT AS n
      FROM (SELECT ${k}, i, unnest(list_filter(expert, lambda v: v <> i)) AS j, c
            FROM (SELECT ${k}, expert, unnest(expert) AS i, c
                  FROM (SELECT ${k}, expert, count(*) AS c FROM ${base} WHERE len(expert) >= 2 GROUP BY ALL)))
      GROUP BY ALL`,
    token: `SELECT ${k}, token, expert[1]::SMALLINT AS expert, count(*)::BIGINT AS n
      FROM ${base} WHERE len(expert) > 0 GROUP BY ALL`,
  };
}

export interface BaseColumns {
  /** Where `domain` comes from: a routing column, a samples column, or nowhere (NULL). */
  domain: 'routing' | 'samples' | null;
  phase: boolean;
  prob: boolean;
  /** An ad-hoc grouping column: from routing or samples. */
  extra?: { name: string; from: 'routing' | 'samples' };
}

const q = sqlString;

/** The base relation of `aggregateQueries` over routing (and samples for per-sample columns). */
export function baseRelation(routing: string, samples: string | null, cols: BaseColumns): string {
  const sampleCols: string[] = [];
  if (cols.domain === 'samples') sampleCols.push('domain');
  if (cols.extra?.from === 'samples') sampleCols.push(`"${cols.extra.name}"`);
  const domain = cols.domain === 'routing' ? 'r.domain' : cols.domain === 'samples' ? 's.domain' : 'NULL::VARCHAR';
  const select = [
    'r.layer', 'r.modality', `${domain} AS domain`, `${cols.phase ? 'r.phase' : 'NULL::VARCHAR'} AS phase`,
    'r.sample', 'r.pos', 'r.token', 'r.expert', 'r.gate', cols.prob ? 'r.prob' : 'NULL::FLOAT[] AS prob',
  ];
  if (cols.extra) select.splice(4, 0, `${cols.extra.from === 'routing' ? 'r' : 's'}."${cols.extra.name}"::VARCHAR AS xg`);
  const join = sampleCols.length && samples
    ? ` LEFT JOIN (SELECT sample, ${sampleCols.map((c) => `any_value(${c}) AS ${c}`).join(', ')} FROM ${samples} GROUP BY sample) s ON s.sample = r.sample`
    : '';
  return `(SELECT ${select.join(', ')} FROM ${routing} r${join})`;
}

/** Write every aggregate of a base relation as agg-*.parquet into `dir` (index, merge). */
export async function writeAggregates(conn: DuckDBConnection, base: string, dir: string, opts: AggSqlOptions): Promise<void> {
  await writeAggregateQueries(async () => conn, aggregateQueries(base, opts), dir);
}

/**
 * An aggregate's query, or how to write its file without DuckDB (the writer's tables counted in
 * JS, in the rows and order the query would give, ORDER BY ALL).
 */
export type AggQuery = string | { write(file: string): void };

/**
 * Write one query per aggregate table as agg-*.parquet into `dir`. DuckDB is asked for only when a
 * table is SQL, and then writes them all in one call on its own threads while the tables written by
 * the caller's code are written here.
 */
export async function writeAggregateQueries(connect: () => Promise<DuckDBConnection>, queries: Record<AggTable, AggQuery>, dir: string): Promise<void> {
  // sorted, and floats summed in a fixed order, so that the same rows give the same bytes
  const copies = AGG_TABLES.flatMap((t) => {
    const qt = queries[t];
    return typeof qt === 'string' ? [`COPY (SELECT * FROM (${qt}) ORDER BY ALL) TO ${q(join(dir, aggFile(t)))} (FORMAT parquet, COMPRESSION zstd)`] : [];
  });
  const sql = copies.length ? connect().then((conn) => conn.run(copies.join(';\n'))) : Promise.resolve();
  try {
    for (const t of AGG_TABLES) {
      const qt = queries[t];
      if (typeof qt !== 'string') qt.write(join(dir, aggFile(t)));
    }
  } catch (e) {
    await sql.catch(() => {}); // the connection is closed after this: let DuckDB finish first
    throw e;
  }
  await sql;
}

const DOUBLE_SUMS = new Set(['n_gate', 'gate_top1_sum', 'gate_margin_sum', 'prob_top1_sum', 'prob_margin_sum', 'prob_entropy_sum']);

/** Merge the aggregates of several traces by summation (same keys, same schema). */
export function mergeAggregateSql(table: AggTable, files: string[]): string {
  const src = `read_parquet([${files.map(q).join(', ')}], union_by_name = true)`;
  const sums: Record<AggTable, string[]> = {
    counts: ['n_all', 'n_top1', 'n_gate', 'n_gate_bad'],
    tokens: ['tokens', 'empty', 'gate_rows', 'gate_sum_one', 'gate_top1_sum', 'gate_margin_sum', 'gate_margin_rows', 'prob_top1_sum', 'prob_margin_sum', 'prob_entropy_sum', 'prob_rows'],
    repeat: ['pairs', 'same'],
    coact: ['n'],
    token: ['n'],
  };
  const s = sums[table];
  const typed = (c: string) => (DOUBLE_SUMS.has(c) ? `${exactSum(c)} AS ${c}` : `sum(${c})::BIGINT AS ${c}`);
  return `SELECT * EXCLUDE (${s.join(', ')}), ${s.map(typed).join(', ')} FROM ${src} GROUP BY ALL`;
}
