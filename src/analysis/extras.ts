import type { DuckDBConnection } from '@duckdb/node-api';
import { exactSum } from '../trace/aggregates.js';
import type { AggRelations } from './agg-source.js';
import type { ChoiceOrder } from './counts.js';
import { sqlString } from './db.js';
import type { LayerExtras, RouterMetrics } from './types.js';
export type { LayerExtras } from './types.js';

/**
 * The §3 metrics beyond the E x G counts, per layer, each one small GROUP BY over the aggregates
 * (never over routing rows): router confidence, repeat rate, co-activation, token specialisation.
 */
export interface ExtrasContext {
  numExperts: number;
  topK: number;
  routerScoring: string;
  order: ChoiceOrder;
}

/** Token ids with fewer routings than this are left out of token specialisation (SPEC §3). */
export const TOKEN_MIN_ROUTINGS = 8;

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));

async function rows(conn: DuckDBConnection, sql: string): Promise<unknown[][]> {
  return (await conn.runAndReadAll(sql)).getRowsJS() as unknown[][];
}

export async function layerExtras(conn: DuckDBConnection, agg: AggRelations, layers: readonly number[], groups: readonly string[], ctx: ExtrasContext): Promise<Map<number, LayerExtras>> {
  const E = ctx.numExperts;
  const inGroups = `(${groups.map(sqlString).join(', ')})`;
  const where = `layer IN (${layers.join(', ')}) AND g IN ${inGroups}`;
  const out = new Map<number, LayerExtras>();
  for (const l of layers) {
    out.set(l, {
      router: { gate_top1_mean: null, top1_prob_mean: null, margin_mean: null, entropy_mean: null, near_uniform: null },
      repeat_rate: null, repeat_rate_chance: null, coactivation: null,
      token_specialisation: null, token_specialisation_chance: null, token_specialisation_ids: 0,
    });
  }

  // router confidence
  for (const [layer, tokens, gateRows, gateSumOne, gTop1, gMargin, gMarginRows, pTop1, pMargin, pEntropy, probRows] of await rows(conn,
    `SELECT layer, sum(tokens), sum(gate_rows), sum(gate_sum_one), ${exactSum('gate_top1_sum')}, ${exactSum('gate_margin_sum')}, sum(gate_margin_rows),
            ${exactSum('prob_top1_sum')}, ${exactSum('prob_margin_sum')}, ${exactSum('prob_entropy_sum')}, sum(prob_rows)
     FROM ${agg.tokens} WHERE ${where} GROUP BY layer`)) {
    const x = out.get(Number(layer))!.router;
    const T = num(tokens), GR = num(gateRows), PR = num(probRows);
    const hasGates = ctx.order.gates && GR > 0;
    if (hasGates) x.gate_top1_mean = num(gTop1) / GR;
    if (PR > 0 && PR === T) {
      x.top1_prob_mean = num(pTop1) / PR;
      x.margin_mean = E >= 2 ? num(pMargin) / PR : null;
      x.entropy_mean = num(pEntropy) / PR;
    } else if (hasGates) {
      // gates are the top-1 probability unless renormalised over k < E (then every row sums to 1)
      const renormalised = ctx.topK < E && num(gateSumOne) === GR;
      if (!renormalised) x.top1_prob_mean = x.gate_top1_mean;
      if (ctx.topK >= 2 && num(gMarginRows) > 0) x.margin_mean = num(gMargin) / num(gMarginRows);
    }
    if (x.top1_prob_mean !== null && ctx.routerScoring === 'softmax') x.near_uniform = x.top1_prob_mean <= 1.1 / E;
  }

  if (ctx.order.ranked) {
    // top-1 shares f_e over the analysed groups: the chance level of a repeat is sum_e f_e^2
    const top1 = new Map<number, Float64Array>();
    for (const [layer, e, n] of await rows(conn, `SELECT layer, expert, sum(n_top1) FROM ${agg.counts} WHERE ${where} GROUP BY ALL`)) {
      const l = Number(layer);
      if (!top1.has(l)) top1.set(l, new Float64Array(E));
      top1.get(l)![Number(e)] += num(n);
    }
    for (const [layer, pairs, same] of await rows(conn, `SELECT layer, sum(pairs), sum(same) FROM ${agg.repeat} WHERE ${where} AND prev_g IN ${inGroups} GROUP BY layer`)) {
      const x = out.get(Number(layer))!;
      if (num(pairs) > 0) x.repeat_rate = num(same) / num(pairs);
      const f = top1.get(Number(layer));
      if (f && x.repeat_rate !== null) {
        const tot = f.reduce((a, b) => a + b, 0);
        x.repeat_rate_chance = tot > 0 ? f.reduce((s, v) => s + (v / tot) ** 2, 0) : null;
      }
    }
    // token specialisation: per (modality, token id) with >= 8 routings, max_e P(top-1 = e | token)
    for (const [layer, mx, tot, ids, chance] of await rows(conn,
      `WITH per AS (SELECT layer, modality, token, expert, sum(n) AS n FROM ${agg.token} WHERE ${where} GROUP BY ALL),
            tok AS (SELECT layer, modality, token, max(n) AS mx, sum(n) AS tot FROM per GROUP BY ALL HAVING sum(n) >= ${TOKEN_MIN_ROUTINGS}),
            ex AS (SELECT per.layer, per.expert, sum(per.n) AS n FROM per JOIN tok USING (layer, modality, token) GROUP BY ALL)
       SELECT tok.layer, sum(mx), sum(tot), count(*), (SELECT max(n) FROM ex WHERE ex.layer = tok.layer) / sum(tot)
       FROM tok GROUP BY tok.layer`)) {
      const x = out.get(Number(layer))!;
      if (num(tot) > 0) {
        x.token_specialisation = num(mx) / num(tot);
        x.token_specialisation_chance = num(chance);
        x.token_specialisation_ids = num(ids);
      }
    }
  }

  // co-activation C[i][j] = #(i and j both chosen) / #(i chosen)
  if (ctx.topK >= 2) {
    const count = new Map<number, Float64Array>();
    for (const [layer, e, n] of await rows(conn, `SELECT layer, expert, sum(n_all) FROM ${agg.counts} WHERE ${where} GROUP BY ALL`)) {
      const l = Number(layer);
      if (!count.has(l)) count.set(l, new Float64Array(E));
      count.get(l)![Number(e)] += num(n);
    }
    const pairs = new Map<number, Float64Array>();
    for (const [layer, i, j, n] of await rows(conn, `SELECT layer, i, j, sum(n) FROM ${agg.coact} WHERE ${where} GROUP BY ALL`)) {
      const l = Number(layer);
      if (!pairs.has(l)) pairs.set(l, new Float64Array(E * E));
      pairs.get(l)![Number(i) * E + Number(j)] += num(n);
    }
    for (const l of layers) {
      const c = count.get(l) ?? new Float64Array(E);
      const p = pairs.get(l) ?? new Float64Array(E * E);
      out.get(l)!.coactivation = Array.from({ length: E }, (_, i) =>
        Array.from({ length: E }, (_, j) => (c[i] > 0 ? (i === j ? 1 : round6(p[i * E + j] / c[i])) : null)));
    }
  }
  return out;
}

/** Six significant digits: the matrix is E x E per layer, so the JSON stays small. */
function round6(x: number): number {
  return x === 0 ? 0 : Number(x.toPrecision(6));
}
