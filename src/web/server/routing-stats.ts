/**
 * SPEC §3 metrics that need the routing rows and that src/analysis does not compute yet on this
 * branch (router confidence, repeat rate, co-activation, token specialisation, saturation): plain
 * SQL over a routing relation, with the SPEC's JSON names, so that the integrator can swap each
 * function for the analysis' own. `rel` is a SQL relation with at least
 * sample, pos, modality, token, layer, expert, gate (and prob when `hasProb`), already limited to the
 * analysed tokens.
 */
import type { CoactivationJson, LayerStats } from '../api-types.js';

export interface StatsQuery {
  rel: string;
  numExperts: number;
  topK: number;
  routerScoring: string;
  hasProb: boolean;
}

export type Rows = Record<string, unknown>[];
export type RunSql = (sql: string) => Promise<Rows>;

const num = (v: unknown): number | null => (v === null || v === undefined ? null : typeof v === 'bigint' ? Number(v) : Number(v));

/** Minimum routings of a token id at a layer before its own top-1 distribution is trusted (SPEC §3). */
export const TOKEN_MIN_ROUTINGS = 8;

/**
 * Router confidence per layer: mean top-1 gate, mean top-1 minus top-2 (probabilities from `prob`
 * when present, else the gates when k >= 2), mean router entropy in bits (needs `prob`).
 */
export function routerSql(q: StatsQuery): string {
  const margin = q.hasProb
    ? `avg(list_sort(prob, 'DESC')[1] - list_sort(prob, 'DESC')[2])`
    : q.topK >= 2 ? `avg(gate[1] - gate[2])` : `NULL::DOUBLE`;
  const entropy = q.hasProb ? `avg(list_sum(list_transform(prob, p -> CASE WHEN p > 0 THEN -p * log2(p) ELSE 0 END)))` : `NULL::DOUBLE`;
  return `SELECT layer, count(*) AS tokens, avg(gate[1])::DOUBLE AS gate_top1_mean, ${margin}::DOUBLE AS margin_mean, ${entropy}::DOUBLE AS entropy_mean
    FROM ${q.rel} GROUP BY layer ORDER BY layer`;
}

/**
 * Repeat rate (Mixtral's temporal locality): of the pairs of consecutive positions of one sample that
 * are both analysed, the share whose top-1 expert is the same. Chance: sum_e f_e^2 with f_e the
 * layer's top-1 shares (two independent draws agree this often).
 */
export function repeatSql(q: StatsQuery): string {
  return `WITH t AS (SELECT layer, pos, expert[1] AS e,
        lag(expert[1]) OVER w AS prev_e, lag(pos) OVER w AS prev_pos
      FROM ${q.rel} WINDOW w AS (PARTITION BY layer, sample ORDER BY pos)),
    rr AS (SELECT layer, avg((e = prev_e)::INTEGER)::DOUBLE AS repeat_rate FROM t WHERE prev_pos = pos - 1 GROUP BY layer),
    f AS (SELECT layer, e, count(*) AS n FROM t GROUP BY ALL),
    ch AS (SELECT layer, (sum(n * n) / (sum(n) * sum(n)))::DOUBLE AS repeat_rate_chance FROM f GROUP BY layer)
    SELECT layer, repeat_rate, repeat_rate_chance FROM ch LEFT JOIN rr USING (layer) ORDER BY layer`;
}

/**
 * Token specialisation (OLMoE's vocabulary specialisation): over token ids with at least 8 routings at
 * the layer, the routing-weighted mean of max_e P(top-1 = e | token id) = sum of each id's largest top-1
 * count / sum of its routings. Image patches are excluded (their `token` is a patch index, not an id).
 * Chance: the same number after shuffling the top-1 experts among the layer's routings (a fixed,
 * seeded permutation), i.e. what the id's counts alone give when routing ignores the id.
 */
export function tokenSpecSql(q: StatsQuery): string {
  const base = `SELECT layer, token, expert[1] AS e,
      row_number() OVER (PARTITION BY layer ORDER BY sample, pos) AS i,
      row_number() OVER (PARTITION BY layer ORDER BY hash(sample, pos, 'moescope-shuffle'), sample, pos) AS j
    FROM ${q.rel} WHERE modality <> 'image'`;
  const spec = (expertCol: string, name: string) => `SELECT layer, sum(mx)::DOUBLE / sum(tot) AS ${name}, count(*) AS ids FROM (
        SELECT layer, token, sum(n) AS tot, max(n) AS mx FROM (SELECT layer, token, ${expertCol} AS e, count(*) AS n FROM paired GROUP BY ALL) GROUP BY ALL
        HAVING sum(n) >= ${TOKEN_MIN_ROUTINGS}) GROUP BY layer`;
  return `WITH b AS (${base}),
    paired AS (SELECT x.layer, x.token, x.e, y.e AS shuffled FROM b x JOIN b y ON x.layer = y.layer AND x.i = y.j),
    real AS (${spec('e', 'token_specialisation')}),
    chance AS (${spec('shuffled', 'token_specialisation_chance')})
    SELECT layer, token_specialisation, token_specialisation_chance, real.ids FROM real JOIN chance USING (layer) ORDER BY layer`;
}

/** The three per-layer queries, merged by layer. */
export async function layerStats(run: RunSql, q: StatsQuery): Promise<LayerStats[]> {
  const [router, repeat, spec] = await Promise.all([run(routerSql(q)), run(repeatSql(q)), run(tokenSpecSql(q))]);
  const rep = new Map(repeat.map((r) => [num(r.layer), r]));
  const sp = new Map(spec.map((r) => [num(r.layer), r]));
  const uniform = 1 / q.numExperts;
  return router.map((r) => {
    const layer = num(r.layer)!;
    const g1 = num(r.gate_top1_mean);
    const rr = rep.get(layer), s = sp.get(layer);
    return {
      layer,
      tokens: num(r.tokens) ?? 0,
      router: {
        gate_top1_mean: g1,
        margin_mean: num(r.margin_mean),
        entropy_mean: num(r.entropy_mean),
        // SPEC §3: a softmax router whose mean top-1 gate is within 10% of 1/E is close to a tie.
        near_uniform: q.routerScoring === 'softmax' && g1 !== null && Math.abs(g1 - uniform) <= 0.1 * uniform,
      },
      repeat_rate: num(rr?.repeat_rate),
      repeat_rate_chance: num(rr?.repeat_rate_chance),
      token_specialisation: num(s?.token_specialisation),
      token_specialisation_chance: num(s?.token_specialisation_chance),
      token_specialisation_ids: num(s?.ids) ?? 0,
    };
  });
}

/** Co-activation of one layer (OLMoE): C[i][j] = #(tokens with i and j both in the top-k) / #(tokens with i in the top-k). */
export async function coactivation(run: RunSql, q: StatsQuery, layer: number): Promise<CoactivationJson> {
  const E = q.numExperts;
  // Group identical expert lists first: with small E^k many tokens share a list.
  const rows = await run(`SELECT i, j, sum(n)::DOUBLE AS n FROM (
      SELECT unnest(expert) AS i, expert AS ex, n FROM (SELECT list_distinct(expert) AS expert, count(*) AS n FROM ${q.rel} WHERE layer = ${layer} GROUP BY ALL)
    ), unnest(ex) AS u(j) GROUP BY ALL`);
  const m = new Float64Array(E * E);
  for (const r of rows) {
    const i = num(r.i)!, j = num(r.j)!;
    if (i >= 0 && i < E && j >= 0 && j < E) m[i * E + j] = num(r.n)!;
  }
  const chosen = Array.from({ length: E }, (_, i) => m[i * E + i]);
  const matrix = Array.from(m, (v, k) => {
    const d = chosen[Math.floor(k / E)];
    return d > 0 ? v / d : null;
  });
  return { layer, numExperts: E, topK: q.topK, chosen, matrix };
}

/**
 * Router saturation (OLMoE) of trace B against trace A: per layer, the share of B's top-k choices that
 * are also in A's top-k for the same (sample, pos).
 */
export async function saturation(run: RunSql, relA: string, relB: string): Promise<Map<number, number>> {
  const rows = await run(`SELECT b.layer, (sum(len(list_intersect(a.expert, b.expert)))::DOUBLE / sum(len(b.expert))) AS s
    FROM ${relA} a JOIN ${relB} b USING (sample, pos, layer) GROUP BY b.layer ORDER BY b.layer`);
  return new Map(rows.map((r) => [num(r.layer)!, num(r.s)!]));
}
