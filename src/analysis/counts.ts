import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { gatesRecorded } from '../trace/meta.js';
import { exactSum } from '../trace/aggregates.js';
import { aggregatesFor, type AggRelations } from './agg-source.js';
import type { TraceHandle } from './trace.js';
import type { CountMode, Counts } from './types.js';

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));

async function rowsOf(conn: DuckDBConnection, sql: string): Promise<unknown[][]> {
  return (await conn.runAndReadAll(sql)).getRowsJS() as unknown[][];
}

/** What the trace says about its choices' order: gates present (router weights), ids ranked (top-1 known). */
export interface ChoiceOrder {
  gates: boolean;
  ranked: boolean;
  /** Why not, for messages. */
  reason: string;
}

/**
 * meta.json `gates` / `expert_order` decide; a trace without those keys (hand-written, older)
 * has gates when every row has a usable gate list. Never inferred from slot order alone.
 */
export async function choiceOrder(conn: DuckDBConnection, trace: TraceHandle, agg?: AggRelations): Promise<ChoiceOrder> {
  const a = agg ?? (await aggregatesFor(conn, trace, 'modality'));
  let gates = gatesRecorded(trace.meta);
  if (gates === undefined) {
    const [[tokens, gateRows]] = await rowsOf(conn, `SELECT sum(tokens - empty), sum(gate_rows) FROM ${a.tokens}`);
    gates = num(tokens) > 0 && num(gateRows) === num(tokens);
  }
  const k = trace.meta.top_k;
  const ranked = k === 1 || gates || trace.meta.expert_order === 'ranked';
  const what = trace.meta.gates !== undefined ? `gates: ${JSON.stringify(trace.meta.gates)}` : 'the gate column is missing or incomplete';
  const reason = `${trace.dir}/meta.json: ${what}, expert_order: ${JSON.stringify(trace.meta.expert_order ?? 'unranked')}`;
  return { gates, ranked, reason };
}

/** Refuse a counting mode the trace cannot support (SPEC §3): never computed from slot order. */
export function checkCountMode(mode: CountMode, order: ChoiceOrder): void {
  if (mode === 'gate' && !order.gates) throw new InputError(`--count gate: the trace has no router gates (${order.reason}); use --count all`);
  if (mode === 'top1' && !order.ranked) throw new InputError(`--count top1: the top-1 expert is unknown: no gates and expert ids not ranked (${order.reason}); use --count all`);
}

const COUNT_COLUMN: Record<CountMode, string> = { all: 'n_all', top1: 'n_top1', gate: 'n_gate' };

/**
 * Counts over every layer and group in the trace (L x E x G, small), from the aggregates, with the
 * row-level checks the aggregates carry: no rows, NULL keys, expert ids outside 0..E-1, empty
 * expert lists, missing gates.
 */
export async function loadCounts(conn: DuckDBConnection, trace: TraceHandle, mode: CountMode, by = 'modality'): Promise<Counts> {
  const E = trace.meta.num_experts;
  const where = trace.routingPath;
  const agg = await aggregatesFor(conn, trace, by);
  checkCountMode(mode, await choiceOrder(conn, trace));
  const rows = await rowsOf(conn, `SELECT layer, g, expert, ${exactSum(COUNT_COLUMN[mode])}, sum(n_gate_bad)::DOUBLE FROM ${agg.counts} GROUP BY ALL`);
  const tok = await rowsOf(conn, `SELECT layer, g, sum(tokens)::DOUBLE, sum(empty)::DOUBLE, bool_or(modality IS NULL) FROM ${agg.tokens} GROUP BY ALL`);
  if (tok.length === 0) throw new InputError(`${where}: empty trace (no routing rows)`);
  const layerSet = new Set<number>();
  const groupSet = new Set<string>();
  for (const [layer, g, , empty, nullModality] of tok) {
    if (layer === null) throw new InputError(`${where}: a row has no layer (NULL)`);
    if (nullModality) throw new InputError(`${where}: a row has no modality (NULL)`);
    if (num(empty) > 0) throw new InputError(`${where}: a row in layer ${layer} has an empty or NULL expert list`);
    const l = Number(layer);
    if (l < 0 || l >= trace.meta.num_layers) throw new InputError(`${where}: layer ${l} is outside 0..${trace.meta.num_layers - 1} (num_layers ${trace.meta.num_layers} in meta.json)`);
    layerSet.add(l);
    if (g !== null) groupSet.add(String(g));
  }
  for (const [layer, , e, , bad] of rows) {
    const id = Number(e);
    if (e === null || !Number.isInteger(id) || id < 0 || id >= E) {
      throw new InputError(`${where}: expert id ${e} in layer ${layer} is outside 0..${E - 1} (num_experts ${E} in meta.json)`);
    }
    if (mode === 'gate' && num(bad) > 0) throw new InputError(`${where}: ${bad} choices in layer ${layer} have no usable gate (gate list missing, shorter than expert, or summing to 0)`);
  }
  const layers = [...layerSet].sort((a, b) => a - b);
  const groups = [...groupSet].sort();
  const G = groups.length;
  const li = new Map(layers.map((l, i) => [l, i]));
  const gi = new Map(groups.map((m, i) => [m, i]));
  const n = new Float64Array(layers.length * E * G);
  const tokens = new Float64Array(layers.length * G);
  for (const [layer, g, e, cn] of rows) {
    if (g === null) continue;
    n[(li.get(Number(layer))! * E + Number(e)) * G + gi.get(String(g))!] += num(cn);
  }
  for (const [layer, g, t] of tok) {
    if (g === null) continue;
    tokens[li.get(Number(layer))! * G + gi.get(String(g))!] += num(t);
  }
  return { mode, by, numExperts: E, topK: trace.meta.top_k, layers, modalities: groups, n, tokens };
}

/** The counts of some layers and groups, in the order asked (pure; the browser uses it too). */
export function selectCounts(all: Counts, layers: readonly number[], groups: readonly string[]): Counts {
  const E = all.numExperts;
  const M0 = all.modalities.length;
  const M = groups.length;
  const n = new Float64Array(layers.length * E * M);
  const tokens = new Float64Array(layers.length * M);
  layers.forEach((layer, li) => {
    const l0 = all.layers.indexOf(layer);
    groups.forEach((mod, mi) => {
      const m0 = all.modalities.indexOf(mod);
      if (l0 < 0 || m0 < 0) return; // absent: zeros
      tokens[li * M + mi] = all.tokens[l0 * M0 + m0];
      for (let e = 0; e < E; e++) n[(li * E + e) * M + mi] = all.n[(l0 * E + e) * M0 + m0];
    });
  });
  return { ...all, layers: [...layers], modalities: [...groups], n, tokens };
}
