import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { analyzeWith, metricsDocument, type Analysis, type AnalyzeOptions } from './analyze.js';
import { openDuck } from './db.js';
import { firstLine } from './trace.js';

export interface Comparison {
  traces: Analysis[];
  /** Per layer: saturation of each trace against the first (null for the first, and when experts cannot be matched). */
  saturation: Map<number, (number | null)[]>;
  warnings: string[];
  layers: number[];
}

/**
 * `moescope compare A B [C ...]`: each trace's metrics side by side and, per layer, the router
 * saturation of B, C, ... against A (SPEC §3): the share of a trace's top-k choices that are also
 * in A's top-k for the same (sample, pos). Reads the rows of the layers compared (a join on
 * sample, pos, layer); the metrics come from each trace's aggregates.
 */
export async function compareTraces(dirs: readonly string[], opts: AnalyzeOptions = {}): Promise<Comparison> {
  if (dirs.length < 2) throw new InputError('compare: give at least two traces');
  const { conn, close } = await openDuck({ memoryLimit: opts.memoryLimit });
  try {
    return await compareWith(conn, dirs, opts);
  } finally {
    close();
  }
}

async function compareWith(conn: DuckDBConnection, dirs: readonly string[], opts: AnalyzeOptions): Promise<Comparison> {
  const traces: Analysis[] = [];
  for (const d of dirs) traces.push(await analyzeWith(conn, [d], { ...opts, defaultLayers: 'all' }));
  const warnings: string[] = [];
  const A = traces[0];
  const E = A.trace.meta.num_experts;
  const matchable = traces.map((t) => t.trace.meta.num_experts === E && t.trace.meta.top_k >= 1);
  const cfg = (t: Analysis) => JSON.stringify(t.trace.meta.model?.config ?? null);
  traces.forEach((t, i) => {
    if (i === 0) return;
    if (!matchable[i]) warnings.push(`${dirs[i]}: ${t.trace.meta.num_experts} experts against ${E} in ${dirs[0]}: experts cannot be matched, so only group shares are compared (no saturation)`);
    else if (A.trace.meta.model && t.trace.meta.model && cfg(t) !== cfg(A)) warnings.push(`${dirs[i]}: model config differs from ${dirs[0]}; experts are matched by id`);
  });
  const layers = A.counts.layers.filter((l) => traces.every((t) => t.counts.layers.includes(l)));
  if (layers.length === 0) throw new InputError(`${dirs[1]}: no layer in common with ${dirs[0]}`);
  const saturation = new Map<number, (number | null)[]>(layers.map((l) => [l, traces.map(() => null)]));
  for (let i = 1; i < traces.length; i++) {
    if (!matchable[i]) continue;
    const B = traces[i];
    const sql = saturationSql(A.trace.routingSql, B.trace.routingSql, layers);
    let rows: unknown[][];
    try {
      rows = (await conn.runAndReadAll(sql)).getRowsJS() as unknown[][];
    } catch (e) {
      throw new InputError(`${dirs[i]}: cannot join with ${dirs[0]} (${firstLine(e)})`);
    }
    if (rows.length === 0) throw new InputError(`${dirs[i]}: no (sample, pos, layer) in common with ${dirs[0]}: compare needs traces of the same tokens`);
    for (const [layer, inter, chosen, , differ] of rows) {
      if (Number(differ) > 0) throw new InputError(`${dirs[i]}: ${differ} positions in layer ${layer} hold other tokens than in ${dirs[0]}: compare needs traces of the same tokens`);
      saturation.get(Number(layer))![i] = Number(chosen) > 0 ? Number(inter) / Number(chosen) : null;
    }
    const tb = B.counts.tokens.reduce((a, b) => a + b, 0), ta = A.counts.tokens.reduce((a, b) => a + b, 0);
    if (tb !== ta) warnings.push(`${dirs[i]}: ${tb} analysed token routings against ${ta} in ${dirs[0]}; saturation is over the positions both have`);
  }
  return { traces, saturation, warnings, layers };
}

/** `compare --json`. */
export function comparisonDocument(c: Comparison): Record<string, unknown> {
  return {
    reference: c.traces[0].trace.dir,
    traces: c.traces.map((t) => t.trace.dir),
    warnings: c.warnings,
    layers: c.layers.map((l) => ({
      layer: l,
      saturation: c.saturation.get(l),
      traces: c.traces.map((t) => t.metrics.find((m) => m.layer === l) ?? null),
    })),
    analyses: c.traces.map((t) => {
      const { layers: _omit, ...rest } = metricsDocument(t);
      return rest;
    }),
  };
}

/** `compare` as text: per layer, S and active share of each trace, and saturation against the first. */
export function comparisonTable(c: Comparison): string {
  const names = c.traces.map((_, i) => String.fromCharCode(65 + (i % 26)) + (i >= 26 ? String(Math.floor(i / 26)) : ''));
  const f = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toFixed(3));
  const head = ['layer', ...names.map((n) => `S(${n})`), ...names.slice(1).map((n) => `sat(${n})`), ...names.map((n) => `cv(${n})`)];
  const rows = c.layers.map((l) => {
    const ms = c.traces.map((t) => t.metrics.find((m) => m.layer === l));
    return [String(l), ...ms.map((m) => f(m?.S)), ...c.saturation.get(l)!.slice(1).map(f), ...ms.map((m) => f(m?.load.cv))];
  });
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  const legend = c.traces.map((t, i) => `${names[i]} = ${t.trace.dir}`).join(', ');
  return [legend, line(head), ...rows.map(line)].join('\n') + '\n';
}

/**
 * OLMoE's router saturation of trace B against trace A, per layer: the shared top-k choices of the
 * same (sample, pos), B's choices, the joined rows, and the rows whose token differs (which makes
 * the comparison meaningless: the traces must hold the same tokens).
 */
export function saturationSql(relA: string, relB: string, layers?: readonly number[]): string {
  return `SELECT b.layer, sum(len(list_intersect(a.expert, b.expert)))::DOUBLE, sum(len(b.expert))::DOUBLE, count(*)::DOUBLE,
      count(*) FILTER (WHERE a.token <> b.token OR a.modality <> b.modality)::DOUBLE
    FROM ${relB} b JOIN ${relA} a ON a.sample = b.sample AND a.pos = b.pos AND a.layer = b.layer
    ${layers ? `WHERE b.layer IN (${layers.join(', ')}) ` : ''}GROUP BY b.layer`;
}
