import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import type { TraceHandle } from './trace.js';
import { firstLine } from './trace.js';
import type { CountMode, Counts } from './types.js';

/**
 * The one query that reads the rows: counts per (layer, modality, expert) under a counting mode.
 * `n` is the counted assignments, `t` the tokens (each token sums to 1 over its experts), `bad`
 * choices whose gate is missing. An empty or NULL expert list yields e = NULL, caught afterwards.
 */
export function countsSql(routingSql: string, mode: CountMode, numExperts = 8, topK = 1): string {
  switch (mode) {
    case 'all':
      // Few distinct expert lists (E^k small): group the rows by their whole list first and unnest
      // only the small result; this is as fast as the bare unnest + GROUP BY and counts tokens exactly.
      if (numExperts ** topK <= 1e5) {
        return `SELECT layer, modality, e, sum(t)::DOUBLE AS n, sum(t / k)::DOUBLE AS t, 0::BIGINT AS bad
          FROM (SELECT layer, modality, unnest(CASE WHEN len(expert) > 0 THEN expert ELSE [NULL] END) AS e, greatest(len(expert), 1) AS k, t
                FROM (SELECT layer, modality, expert, count(*) AS t FROM ${routingSql} GROUP BY ALL))
          GROUP BY ALL`;
      }
      return `SELECT layer, modality, e, count(*)::DOUBLE AS n, sum(1.0 / k)::DOUBLE AS t, 0::BIGINT AS bad
        FROM (SELECT layer, modality, unnest(CASE WHEN len(expert) > 0 THEN expert ELSE [NULL] END) AS e, greatest(len(expert), 1) AS k FROM ${routingSql})
        GROUP BY ALL`;
    case 'top1':
      return `SELECT layer, modality, expert[1] AS e, count(*)::DOUBLE AS n, count(*)::DOUBLE AS t, 0::BIGINT AS bad
        FROM ${routingSql} GROUP BY ALL`;
    case 'gate':
      return `SELECT layer, modality, e, coalesce(sum(w), 0)::DOUBLE AS n, coalesce(sum(w), 0)::DOUBLE AS t,
          count(*) FILTER (WHERE w IS NULL OR isnan(w)) AS bad
        FROM (SELECT layer, modality, unnest(CASE WHEN len(expert) > 0 THEN expert ELSE [NULL] END) AS e,
                     unnest(gate) / list_sum(gate) AS w FROM ${routingSql})
        GROUP BY ALL`;
  }
}

/**
 * Counts over every layer and modality in the trace (the result is tiny: L x E x modalities), and the
 * row-level checks that need a scan: no rows, NULL keys, expert ids outside 0..E-1, missing gates.
 */
export async function loadCounts(conn: DuckDBConnection, trace: TraceHandle, mode: CountMode): Promise<Counts> {
  const E = trace.meta.num_experts;
  const where = trace.routingPath;
  let rows: unknown[][];
  try {
    rows = (await conn.runAndReadAll(countsSql(trace.routingSql, mode, E, trace.meta.top_k))).getRowsJS() as unknown[][];
  } catch (e) {
    throw new InputError(`${where}: cannot read routing rows (${firstLine(e)})`);
  }
  if (rows.length === 0) throw new InputError(`${where}: empty trace (no routing rows)`);
  const layerSet = new Set<number>();
  const modalitySet = new Set<string>();
  for (const [layer, modality, e, , , bad] of rows) {
    if (layer === null) throw new InputError(`${where}: a row has no layer (NULL)`);
    if (modality === null) throw new InputError(`${where}: a row has no modality (NULL)`);
    if (e === null) throw new InputError(`${where}: a row in layer ${layer} has an empty or NULL expert list`);
    const id = Number(e);
    if (!Number.isInteger(id) || id < 0 || id >= E) {
      throw new InputError(`${where}: expert id ${id} in layer ${layer} is outside 0..${E - 1} (num_experts ${E} in meta.json)`);
    }
    if (Number(bad) > 0) throw new InputError(`${where}: ${bad} choices in layer ${layer} have no usable gate (gate list missing, shorter than expert, or summing to 0)`);
    const l = Number(layer);
    if (l < 0 || l >= trace.meta.num_layers) throw new InputError(`${where}: layer ${l} is outside 0..${trace.meta.num_layers - 1} (num_layers ${trace.meta.num_layers} in meta.json)`);
    layerSet.add(l);
    modalitySet.add(String(modality));
  }
  const layers = [...layerSet].sort((a, b) => a - b);
  const modalities = [...modalitySet].sort();
  const M = modalities.length;
  const li = new Map(layers.map((l, i) => [l, i]));
  const mi = new Map(modalities.map((m, i) => [m, i]));
  const n = new Float64Array(layers.length * E * M);
  const tokens = new Float64Array(layers.length * M);
  for (const [layer, modality, e, cn, ct] of rows) {
    const l = li.get(Number(layer))!;
    const m = mi.get(String(modality))!;
    n[(l * E + Number(e)) * M + m] += Number(cn);
    tokens[l * M + m] += Number(ct);
  }
  return { mode, numExperts: E, topK: trace.meta.top_k, layers, modalities, n, tokens };
}

/** The counts of some layers and modalities, in the order asked (pure; the browser uses it too). */
export function selectCounts(all: Counts, layers: readonly number[], modalities: readonly string[]): Counts {
  const E = all.numExperts;
  const M0 = all.modalities.length;
  const M = modalities.length;
  const n = new Float64Array(layers.length * E * M);
  const tokens = new Float64Array(layers.length * M);
  layers.forEach((layer, li) => {
    const l0 = all.layers.indexOf(layer);
    modalities.forEach((mod, mi) => {
      const m0 = all.modalities.indexOf(mod);
      if (l0 < 0 || m0 < 0) return; // absent: zeros
      tokens[li * M + mi] = all.tokens[l0 * M0 + m0];
      for (let e = 0; e < E; e++) n[(li * E + e) * M + mi] = all.n[(l0 * E + e) * M0 + m0];
    });
  });
  return { ...all, layers: [...layers], modalities: [...modalities], n, tokens };
}
