import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { aggregatesFor } from '../../analysis/agg-source.js';
import { choiceOrder, loadCounts, selectCounts } from '../../analysis/counts.js';
import { layerExtras } from '../../analysis/extras.js';
import { sqlString } from '../../analysis/db.js';
import { allLayerMetrics } from '../../analysis/metrics.js';
import type { CountMode, Counts, LayerMetrics } from '../../analysis/types.js';
import type { CoactivationJson, CountsJson, ExpertPage, FlowJson, GroupingInfo, LayerStatsJson, SampleDetail, SampleList, TokenRouting, WordLift } from '../api-types.js';
import { InputError } from '../../util/errors.js';
import { ApiError } from './api-error.js';
import { queryRows, type Trace } from './trace-source.js';

/** The group of a row whose grouping column is NULL (shown as such, never guessed). */
export const NO_VALUE = '(none)';

/** A column name for SQL. */
export function quoteId(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** At most this many groups in one grouping (a column with more, e.g. `source`, is not offered). */
export const MAX_GROUPS = 64;

const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : (v as number));
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map(num) : []);

/**
 * The queries behind the dashboard's API, over one trace. Counts and metrics are the analysis' own
 * (src/analysis: the same numbers as `moescope analyze` and `plot`); the rest are drill-down SQL.
 */
export class TraceQueries {
  layers: number[] = [];
  modalities: string[] = [];
  patchesPerImage = 0;
  patchGrid: [number, number] | null = null;
  grouping!: GroupingInfo;
  private vocab: string[] | null | undefined;
  private alignedWords: Promise<Map<number, string>> | undefined;
  private readonly counts = new Map<string, Promise<Counts>>();
  private readonly expertCache = new Map<string, Promise<Record<string, unknown>[]>>();
  private readonly cache = new Map<string, Promise<unknown>>();

  constructor(readonly conn: DuckDBConnection, readonly trace: Trace) {}

  private all(sql: string, params?: DuckDBValue[]): Promise<Record<string, unknown>[]> {
    return queryRows(this.conn, sql, params);
  }

  /** Counts every layer once (which also checks every row: expert ids, gates) and finds what the views need. */
  async init(): Promise<void> {
    const c = await this.allCounts('all');
    this.layers = c.layers;
    this.modalities = c.modalities;
    const cfg = this.trace.meta.model?.config as { image_size?: unknown; patch_size?: unknown } | null | undefined;
    if (typeof cfg?.image_size === 'number' && typeof cfg?.patch_size === 'number' && cfg.patch_size > 0) {
      const side = Math.floor(cfg.image_size / cfg.patch_size);
      this.patchesPerImage = side * side;
      this.patchGrid = [side, side];
    } else {
      // image tokens carry their patch index: the largest + 1 is the patches per image (from the
      // token aggregate when stored, so the start does not scan the rows)
      const agg = this.trace.handle.agg;
      const src = agg ? `read_parquet([${agg.token.map(sqlString).join(', ')}])` : this.trace.routing;
      const r = await this.all(`SELECT coalesce(max(token), -1) + 1 AS ppi FROM ${src} WHERE layer = ${this.layers[0]} AND modality = 'image'`);
      this.patchesPerImage = num(r[0].ppi);
      // An imported trace may say its patch grid in meta.json (`image_grid: [rows, cols]`); else a square count is a square.
      const g = this.trace.meta.image_grid;
      const side = Math.round(Math.sqrt(this.patchesPerImage));
      if (Array.isArray(g) && g.length === 2 && g.every((x) => Number.isInteger(x) && x > 0 && x <= 4096)) this.patchGrid = [g[0] as number, g[1] as number];
      else if (this.patchesPerImage > 0 && side * side === this.patchesPerImage) this.patchGrid = [side, side];
    }
    this.grouping = await this.findGroupings();
    // The first figure's counts (a text-only trace starts grouped by domain): counted now, not on the first request.
    if (this.grouping.by !== 'modality') await this.allCounts('all', this.grouping.by);
  }

  /** Once per key: a cached promise (dropped when it fails, so a retry can succeed). */
  private once<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.cache.get(key) as Promise<T> | undefined;
    if (!p) {
      // Bounded: many group subsets or layers asked in turn must not grow the server without end.
      if (this.cache.size >= 256) this.cache.clear();
      p = make();
      p.catch(() => this.cache.delete(key));
      this.cache.set(key, p);
    }
    return p;
  }

  /** VARCHAR columns to group by (SPEC §3 `--by`): routing's (modality, phase, ...) and samples' (domain, source, ...), each with its values. */
  private async findGroupings(): Promise<GroupingInfo> {
    const available: GroupingInfo['available'] = [{ by: 'modality', groups: [...this.modalities] }];
    const cols: [string, string][] = [];
    for (const [c, t] of this.trace.routingColumns) if (t === 'VARCHAR' && c !== 'modality') cols.push([c, `(SELECT DISTINCT ${quoteId(c)} AS g FROM ${this.trace.routing} WHERE layer = ${this.layers[0]} LIMIT ${MAX_GROUPS + 1})`]);
    if (this.trace.samples) for (const [c, t] of this.trace.sampleColumns) if (t === 'VARCHAR' && c !== 'text' && !this.trace.routingColumns.has(c)) cols.push([c, `(SELECT DISTINCT ${quoteId(c)} AS g FROM ${this.trace.samples} LIMIT ${MAX_GROUPS + 1})`]);
    for (const [c, sql] of cols) {
      const vals = (await this.all(`SELECT g FROM ${sql} ORDER BY g NULLS LAST`)).map((r) => (r.g === null ? NO_VALUE : String(r.g)));
      if (vals.length >= 1 && vals.length <= MAX_GROUPS) available.push({ by: c, groups: vals });
    }
    const content = this.modalities.filter((m) => m !== 'special');
    const domain = available.find((a) => a.by === 'domain');
    if (content.length >= 2 || (content.length === 1 && content[0] !== 'text')) {
      const groups = ['text', 'image'].filter((m) => this.modalities.includes(m));
      return { available, by: 'modality', groups: groups.length >= 2 ? groups : content.slice(0, 2), loadOnly: false, fallback: null };
    }
    if (domain && domain.groups.length >= 2) {
      return { available, by: 'domain', groups: domain.groups, loadOnly: false, fallback: 'This trace has only text tokens, so text vs image says nothing: the views group tokens by their data domain instead (samples.parquet `domain`).' };
    }
    return {
      available, by: 'modality', groups: content.length ? content : [...this.modalities], loadOnly: true,
      fallback: 'This trace has only text tokens and no data domain, so there is nothing to compare experts on: the views show load instead (each expert\u2019s share of the routings, sorted, against the uniform share).',
    };
  }

  /** `serve --by COL`: start grouped by a column the trace has (an input error otherwise). */
  startWith(by: string): void {
    const g = this.grouping.available.find((a) => a.by === by);
    if (!g) {
      const why = this.trace.routingColumns.has(by) || this.trace.sampleColumns.has(by) ? `more than ${MAX_GROUPS} values or not a text column` : 'no such column in routing.parquet or samples.parquet';
      throw new InputError(`--by ${by}: cannot group by it (${why}; this trace offers ${this.grouping.available.map((a) => a.by).join(', ')})`);
    }
    const groups = by === 'modality' ? ['text', 'image'].filter((m) => g.groups.includes(m)) : g.groups;
    const use = groups.length >= 2 ? groups : g.groups;
    this.grouping = { ...this.grouping, by, groups: use, loadOnly: use.length < 2, fallback: use.length < 2 ? `Grouped by ${by}, which has one value here: the views show load.` : null };
  }

  /** The routing rows with a `grp` column: the value of `by` for each row (a samples column is joined by sample). */
  groupedRelation(by: string): string {
    if (by === 'modality') return `(SELECT *, modality AS grp FROM ${this.trace.routing})`;
    if (this.trace.routingColumns.get(by) === 'VARCHAR') return `(SELECT *, coalesce(${quoteId(by)}, ${sqlString(NO_VALUE)}) AS grp FROM ${this.trace.routing})`;
    if (this.trace.samples && this.trace.sampleColumns.get(by) === 'VARCHAR') {
      return `(SELECT r.*, coalesce(s.g, ${sqlString(NO_VALUE)}) AS grp FROM ${this.trace.routing} r LEFT JOIN (SELECT sample, ${quoteId(by)} AS g FROM ${this.trace.samples}) s USING (sample))`;
    }
    throw new ApiError(404, `cannot group by ${JSON.stringify(by)}: not a text column of routing.parquet or samples.parquet (choose ${this.grouping.available.map((a) => a.by).join(', ')})`);
  }

  checkBy(by: string): { by: string; groups: string[] } {
    const g = this.grouping.available.find((a) => a.by === by);
    if (!g) throw new ApiError(404, `cannot group by ${JSON.stringify(by)} (this trace offers ${this.grouping.available.map((a) => a.by).join(', ')})`);
    return g;
  }

  /** The analysed rows: grouped by `by`, limited to `groups`. */
  analysedRelation(by: string, groups: readonly string[]): string {
    this.checkGroups(by, groups);
    return `(SELECT * FROM ${this.groupedRelation(by)} WHERE grp IN (${groups.map(sqlString).join(', ')}))`;
  }

  /** Router confidence, repeat rate and token specialisation of every layer (SPEC §3 names, from the analysis). */
  layerStats(by: string, groups: readonly string[]): Promise<LayerStatsJson> {
    return this.once(`stats/${by}/${groups.join(',')}`, async () => {
      const metrics = await this.metrics('all', groups, by);
      const { num_experts: E, top_k: K, router_scoring: scoring } = this.trace.meta;
      const hasProb = this.trace.handle.hasProb;
      const notes = [
        `Router: mean top-1 gate${hasProb ? ', margin and entropy from the full router distribution (prob)' : K >= 2 ? ', margin = top-1 minus top-2 gate (no prob column: no entropy)' : ' (top-1 and no prob column: no margin or entropy)'}. Near-uniform: a softmax router whose mean top-1 gate is within 10% of 1/E.`,
        'Repeat rate: consecutive positions of one sample (both analysed) with the same top-1 expert; chance = sum of squared top-1 shares.',
        'Token specialisation: over token ids with at least 8 routings at the layer, the routing-weighted mean of the largest share of one top-1 expert, with its chance level.',
      ];
      const layers = metrics.map((m) => ({
        layer: m.layer, tokens: Object.values(m.tokens).reduce((a, b) => a + b, 0), router: m.router,
        repeat_rate: m.repeat_rate, repeat_rate_chance: m.repeat_rate_chance,
        token_specialisation: m.token_specialisation, token_specialisation_chance: m.token_specialisation_chance, token_specialisation_ids: m.token_specialisation_ids,
      }));
      return { by, groups: [...groups], numExperts: E, topK: K, routerScoring: scoring, uniformGate: 1 / E, notes, layers };
    });
  }

  /** SPEC §3 `coactivation` of one layer, from the analysis; `chosen` are the diagonal counts. */
  coactivation(layer: number, by: string, groups: readonly string[]): Promise<CoactivationJson> {
    this.checkLayer(layer);
    return this.once(`coact/${layer}/${by}/${groups.join(',')}`, async () => {
      const [metrics, c] = await Promise.all([this.metrics('all', groups, by), this.countsFor('all', groups, by)]);
      const E = c.numExperts, G = c.modalities.length, li = c.layers.indexOf(layer);
      const m = metrics.find((x) => x.layer === layer);
      const chosen = Array.from({ length: E }, (_, e) => {
        let n = 0;
        for (let g = 0; g < G; g++) n += li < 0 ? 0 : c.n[(li * E + e) * G + g];
        return n;
      });
      const rows = m?.coactivation ?? null;
      const matrix = Array.from({ length: E * E }, (_, k) => (rows ? rows[Math.floor(k / E)][k % E] : null));
      return { layer, numExperts: E, topK: c.topK, chosen, matrix };
    });
  }

  checkGroups(by: string, groups: readonly string[]): void {
    const g = this.checkBy(by);
    if (!groups.length) throw new ApiError(400, 'groups: empty list');
    for (const x of groups) if (!g.groups.includes(x)) throw new ApiError(404, `${by === 'modality' ? 'modality' : `${by} value`} ${JSON.stringify(x)} is not in this trace (it has ${g.groups.join(', ')})`);
  }

  get numExperts(): number {
    return this.trace.meta.num_experts;
  }

  checkLayer(layer: number): void {
    if (!this.layers.includes(layer)) {
      const span = this.layers.length ? `${this.layers[0]}-${this.layers[this.layers.length - 1]}` : 'none';
      throw new ApiError(404, `layer ${layer} does not exist in this trace (layers ${span})`);
    }
  }

  checkExpert(e: number): void {
    if (!(e >= 0 && e < this.numExperts)) throw new ApiError(404, `expert ${e} does not exist (this trace has ${this.numExperts} experts: 0-${this.numExperts - 1})`);
  }

  /**
   * n[layer][expert][group] of every layer and group of `by` under a counting mode, from the
   * analysis (src/analysis/counts.ts), cached.
   */
  allCounts(mode: CountMode, by = 'modality'): Promise<Counts> {
    const key = `${mode}/${by}`;
    let p = this.counts.get(key);
    if (!p) {
      // the analysis' own counts (aggregates when the trace has them, else one scan of the rows) for any grouping
      p = loadCounts(this.conn, this.trace.handle, mode, by);
      p.catch(() => this.counts.delete(key));
      this.counts.set(key, p);
    }
    return p;
  }

  async countsFor(mode: CountMode, groups: readonly string[], by = 'modality'): Promise<Counts> {
    this.checkGroups(by, groups);
    const all = await this.allCounts(mode, by);
    return selectCounts(all, this.layers, groups);
  }

  async countsJson(mode: CountMode, groups: readonly string[], by = 'modality'): Promise<CountsJson> {
    const c = await this.countsFor(mode, groups, by);
    return { mode: c.mode, numExperts: c.numExperts, topK: c.topK, layers: c.layers, modalities: c.modalities, by, n: Array.from(c.n), tokens: Array.from(c.tokens) };
  }

  /** SPEC §3 metrics of every layer, as `moescope analyze` computes them (aggregates when the trace has them). */
  metrics(mode: CountMode, groups: readonly string[], by = 'modality'): Promise<LayerMetrics[]> {
    return this.once(`metrics/${mode}/${by}/${groups.join(',')}`, async () => {
      const c = await this.countsFor(mode, groups, by);
      const handle = this.trace.handle;
      const agg = await aggregatesFor(this.conn, handle, by);
      const extras = await layerExtras(this.conn, agg, c.layers, groups, {
        numExperts: handle.meta.num_experts, topK: handle.meta.top_k, routerScoring: handle.meta.router_scoring, order: await choiceOrder(this.conn, handle, agg),
      });
      return allLayerMetrics(c, extras);
    });
  }

  private requireSamples(): string {
    if (!this.trace.samples) throw new ApiError(404, `${this.trace.dir}: this trace has no samples.parquet`);
    return this.trace.samples;
  }

  private get imagesLen(): string {
    return this.trace.sampleColumns.has('images') ? 'coalesce(len(images), 0)::INTEGER' : '0';
  }

  private sampleCol(c: string): string {
    return this.trace.sampleColumns.get(c) === 'VARCHAR' ? quoteId(c) : 'NULL::VARCHAR';
  }

  async sampleList(offset: number, limit: number, q: string): Promise<SampleList> {
    const s = this.requireSamples();
    const where = q ? `WHERE text ILIKE $1 OR ${this.sampleCol('source')} ILIKE $1 OR ${this.sampleCol('domain')} ILIKE $1` : '';
    const params = q ? [`%${q}%`] : [];
    const total = num((await this.all(`SELECT count(*) AS n FROM ${s} ${where}`, params))[0].n);
    const rows = await this.all(`SELECT sample, text, ${this.imagesLen} AS images, ${this.sampleCol('source')} AS source, ${this.sampleCol('domain')} AS domain
      FROM ${s} ${where} ORDER BY sample LIMIT ${limit} OFFSET ${offset}`, params);
    return { total, rows: rows.map((r) => ({ sample: num(r.sample), text: String(r.text ?? ''), images: num(r.images), source: String(r.source ?? ''), domain: r.domain === null ? null : String(r.domain) })) };
  }

  /** The vocabulary of the checkpoint named by meta.json, when that folder is still there. */
  private loadVocab(): string[] | null {
    if (this.vocab !== undefined) return this.vocab;
    this.vocab = null;
    const p = this.trace.meta.model?.path;
    if (typeof p === 'string' && p) {
      const file = join(isAbsolute(p) ? p : resolve(this.trace.dir, p), 'tokenizer.json');
      try {
        if (existsSync(file)) {
          const t = JSON.parse(readFileSync(file, 'utf8')) as { vocab?: unknown };
          if (Array.isArray(t.vocab)) this.vocab = t.vocab.map(String);
        }
      } catch { /* no words then: ids are shown */ }
    }
    return this.vocab;
  }

  /** Token id -> word when there is no tokenizer: align each sample's text, split as the tokenizer splits it, with its text positions. */
  private wordsFromText(): Promise<Map<number, string>> {
    // Words are a help, not the answer: if the alignment fails, ids are shown instead.
    this.alignedWords ??= this.alignWords().catch(() => new Map<number, string>());
    return this.alignedWords;
  }

  private async alignWords(): Promise<Map<number, string>> {
    const map = new Map<number, string>();
    if (this.trace.samples && this.trace.sampleColumns.get('tokens') === 'VARCHAR[]' && this.layers.length) {
      // SPEC §2 `tokens`: each position's token string, written by the producer; the most common string per id.
      const rows = await this.all(`SELECT r.token, mode(s.tokens[r.pos + 1]) AS word FROM ${this.trace.routing} r JOIN ${this.trace.samples} s USING (sample)
        WHERE r.layer = ${this.layers[0]} AND r.modality <> 'image' AND s.tokens[r.pos + 1] IS NOT NULL GROUP BY r.token`);
      for (const r of rows) map.set(num(r.token), String(r.word));
      return map;
    }
    if (this.trace.samples && this.layers.length) {
      const rows = await this.all(`WITH t AS (SELECT sample, token, row_number() OVER (PARTITION BY sample ORDER BY pos) AS i
            FROM ${this.trace.routing} WHERE layer = ${this.layers[0]} AND modality = 'text'),
          nt AS (SELECT sample, count(*) AS n FROM t GROUP BY sample),
          ws AS (SELECT sample, regexp_extract_all(lower(text), '[a-z0-9]+|[^\\sa-z0-9]') AS ws FROM ${this.trace.samples}),
          w AS (SELECT sample, len(ws) AS nw, unnest(ws) AS word, unnest(range(1, len(ws) + 1)) AS i FROM ws)
        SELECT token, mode(word) AS word FROM t JOIN w USING (sample, i) JOIN nt USING (sample) WHERE nt.n = w.nw GROUP BY token`);
      for (const r of rows) map.set(num(r.token), String(r.word));
    }
    return map;
  }

  async wordOf(tokens: number[]): Promise<(string | null)[]> {
    const vocab = this.loadVocab();
    if (vocab) return tokens.map((t) => vocab[t] ?? null);
    const m = await this.wordsFromText();
    return tokens.map((t) => m.get(t) ?? null);
  }

  async sample(id: number): Promise<SampleDetail> {
    const sid = Math.trunc(id);
    const hasTokens = this.trace.sampleColumns.get('tokens') === 'VARCHAR[]';
    const hasGrids = this.trace.sampleColumns.get('image_grids') === 'INTEGER[][]';
    const meta = this.trace.samples
      ? await this.all(`SELECT text, ${this.imagesLen} AS images, ${this.sampleCol('source')} AS source, ${this.sampleCol('domain')} AS domain${hasTokens ? ', tokens' : ''}${hasGrids ? ', image_grids' : ''}
          FROM ${this.trace.samples} WHERE sample = ${sid}`)
      : [];
    const rows = await this.all(`SELECT pos, any_value(modality) AS modality, any_value(token) AS token,
        list(layer ORDER BY layer) AS layers, list(expert ORDER BY layer) AS experts, list(gate ORDER BY layer) AS gates
      FROM ${this.trace.routing} WHERE sample = ${sid} GROUP BY pos ORDER BY pos`);
    if (!rows.length && !meta.length) throw new ApiError(404, `sample ${id} does not exist in this trace`);
    const text = meta.length ? String(meta[0].text ?? '') : null;
    const stored = meta.length && Array.isArray(meta[0].tokens) ? (meta[0].tokens as unknown[]) : null;
    // Words of the text positions: the producer's own token strings (samples `tokens`), else the sample's text when its
    // pieces line up with the text positions, else the vocabulary.
    const textPos = rows.filter((r) => r.modality === 'text');
    const pieces = text ? text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? [] : [];
    const aligned = !stored && pieces.length === textPos.length;
    const vocabWords = stored || (aligned && !this.loadVocab())
      ? rows.map(() => null)
      : await this.wordOf(rows.map((r) => num(r.token)));
    let image = -1;
    let prevImage = false;
    let ti = 0;
    const tokens = rows.map((r, i): TokenRouting => {
      const modality = String(r.modality);
      const token = num(r.token);
      const pos = num(r.pos);
      if (modality === 'image' && (!prevImage || token === 0)) image++;
      prevImage = modality === 'image';
      let word: string | null = vocabWords[i];
      if (stored && modality !== 'image') word = stored[pos] === null || stored[pos] === undefined ? null : String(stored[pos]);
      else if (modality === 'text') {
        if (aligned) word = pieces[ti];
        ti++;
      }
      const layers = nums(r.layers);
      const ex = r.experts as unknown[], ga = r.gates as unknown[];
      // A position missing from some layer: keep the arrays aligned with `this.layers`.
      const at = new Map(layers.map((l, k) => [l, k]));
      return {
        pos, modality, token, word, image: modality === 'image' ? image : -1,
        experts: this.layers.map((l) => (at.has(l) ? nums(ex[at.get(l)!]) : [])),
        gates: this.layers.map((l) => (at.has(l) ? nums(ga?.[at.get(l)!]) : [])),
      };
    });
    return {
      sample: id, text, source: meta.length && meta[0].source !== null ? String(meta[0].source) : null,
      domain: meta.length && meta[0].domain !== null ? String(meta[0].domain) : null,
      images: meta.length ? num(meta[0].images) : 0,
      imageGrids: meta.length && Array.isArray(meta[0].image_grids) ? (meta[0].image_grids as unknown[]).map((g) => nums(g)) : null,
      layers: this.layers, tokens,
    };
  }

  async image(id: number, k: number): Promise<Uint8Array> {
    const s = this.requireSamples();
    if (!this.trace.sampleColumns.has('images')) throw new ApiError(404, `sample ${id} has no stored image (samples.parquet has no images column)`);
    const rows = await this.all(`SELECT images FROM ${s} WHERE sample = ${Math.trunc(id)}`);
    if (!rows.length) throw new ApiError(404, `sample ${id} does not exist in this trace`);
    const images = rows[0].images as Uint8Array[] | null;
    if (!images || !(k >= 0 && k < images.length)) throw new ApiError(404, `sample ${id} has no image ${k} (it has ${images?.length ?? 0})`);
    return images[k];
  }

  /** Per (layer, expert, mode): assignments per modality and per text token, one scan, cached (pages reuse it). */
  private expertTotals(layer: number, e: number, mode: CountMode): Promise<Record<string, unknown>[]> {
    const key = `${layer}/${e}/${mode}`;
    let p = this.expertCache.get(key);
    if (!p) {
      const match = mode === 'top1' ? `expert[1] = ${e}` : `list_contains(expert, ${e})`;
      p = this.all(`SELECT modality, CASE WHEN modality = 'text' THEN token END AS token, count(*) AS n
        FROM ${this.trace.routing} WHERE layer = ${layer} AND ${match} GROUP BY ALL`);
      p.catch(() => this.expertCache.delete(key));
      if (this.expertCache.size > 64) this.expertCache.clear();
      this.expertCache.set(key, p);
    }
    return p;
  }

  /** Routings of each text token id at a layer (any expert): the lift's baseline. Under `top1` each token counts once, else k times. */
  private layerTokenTotals(layer: number, mode: CountMode): Promise<Map<number, number>> {
    return this.once(`layer-tokens/${layer}/${mode}`, async () => {
      const k = mode === 'top1' ? '1' : 'len(expert)';
      const rows = await this.all(`SELECT token, sum(${k})::DOUBLE AS n FROM ${this.trace.routing} WHERE layer = ${layer} AND modality = 'text' GROUP BY token`);
      return new Map(rows.map((r) => [num(r.token), num(r.n)]));
    });
  }

  /**
   * Tokens and patches routed to expert e at a layer: totals, words ranked by over-representation
   * (lift against the layer's own frequency, with counts), and a page of examples by descending gate,
   * each text example with the words around it.
   */
  async expert(layer: number, e: number, mode: CountMode, modality: string, offset: number, limit: number, token: number | null = null): Promise<ExpertPage> {
    this.checkLayer(layer);
    this.checkExpert(e);
    if (!this.modalities.includes(modality)) throw new ApiError(404, `modality ${JSON.stringify(modality)} is not in this trace (it has ${this.modalities.join(', ')})`);
    const r = this.trace.routing;
    const match = mode === 'top1' ? `expert[1] = ${e}` : `list_contains(expert, ${e})`;
    const groups = await this.expertTotals(layer, e, mode);
    const totals: Record<string, number> = {};
    for (const g of groups) totals[String(g.modality)] = (totals[String(g.modality)] ?? 0) + num(g.n);
    // Lift: (n / expert's text total) / (layer count / layer's text total). Words seen fewer than MIN_COUNT times here are noise.
    const layerTok = await this.layerTokenTotals(layer, mode);
    let layerTextTotal = 0;
    for (const v of layerTok.values()) layerTextTotal += v;
    const expertTextTotal = totals.text ?? 0;
    const minCount = 3;
    const ranked = groups.filter((g) => g.modality === 'text' && num(g.n) >= minCount).map((g) => {
      const n = num(g.n), ln = layerTok.get(num(g.token)) ?? n;
      return { token: num(g.token), n, layerN: ln, lift: expertTextTotal > 0 && layerTextTotal > 0 ? (n / expertTextTotal) / (ln / layerTextTotal) : 0 };
    }).sort((a, b) => b.lift - a.lift || b.n - a.n || a.token - b.token).slice(0, 30);
    const words = await this.wordOf(ranked.map((t) => t.token));
    const topWords: WordLift[] = ranked.map((t, i) => ({ ...t, word: words[i] }));
    const tokenFilter = token === null ? '' : ` AND token = ${Math.trunc(token)}`;
    // The expert's own gate (its slot in the list); examples by descending gate, ties in trace order.
    const ex = await this.all(`SELECT sample, pos, token, expert, gate, gate[list_position(expert, ${e})] AS g FROM ${r}
        WHERE layer = ${layer} AND ${match} AND modality = $1${tokenFilter}
        ORDER BY g DESC NULLS LAST, sample, pos LIMIT ${limit} OFFSET ${offset}`, [modality]);
    const total = token === null
      ? totals[modality] ?? 0
      : num((await this.all(`SELECT count(*) AS n FROM ${r} WHERE layer = ${layer} AND ${match} AND modality = $1${tokenFilter}`, [modality]))[0].n);
    // Which image of its sample each example patch belongs to: count the image starts before it.
    const samples = [...new Set(ex.map((x) => num(x.sample)))];
    const starts = new Map<number, number[]>();
    if (modality === 'image' && samples.length) {
      const st = await this.all(`SELECT sample, list(pos ORDER BY pos) AS starts FROM ${r}
          WHERE layer = ${layer} AND modality = 'image' AND token = 0 AND sample IN (${samples.join(',')}) GROUP BY sample`);
      for (const x of st) starts.set(num(x.sample), nums(x.starts));
    }
    const stored = new Map<number, number>();
    if (modality === 'image' && samples.length && this.trace.samples && this.trace.sampleColumns.has('images')) {
      for (const x of await this.all(`SELECT sample, ${this.imagesLen} AS n FROM ${this.trace.samples} WHERE sample IN (${samples.join(',')})`)) stored.set(num(x.sample), num(x.n));
    }
    const exWords = modality === 'image' ? ex.map(() => null) : await this.wordOf(ex.map((x) => num(x.token)));
    const context = modality === 'image' ? null : await this.contexts(layer, ex.map((x) => [num(x.sample), num(x.pos)]));
    return {
      layer, expert: e, mode, modality, token, totals, topWords, minCount, layerTextTotal, expertTextTotal,
      offset, limit, total,
      examples: ex.map((x, i) => {
        const pos = num(x.pos);
        const st = starts.get(num(x.sample)) ?? [];
        const image = modality === 'image' ? st.filter((p) => p <= pos).length - 1 : -1;
        return {
          sample: num(x.sample), pos, token: num(x.token), word: exWords[i],
          image, imageStored: image >= 0 && image < (stored.get(num(x.sample)) ?? 0),
          experts: nums(x.expert), gates: nums(x.gate), gate: x.g === null ? null : num(x.g),
          context: context?.[i] ?? null,
        };
      }),
      patchesPerImage: this.patchesPerImage,
      patchGrid: this.patchGrid,
    };
  }

  /** The words before and after each (sample, pos), up to 6 each side (image patches shown as one [image]). */
  private async contexts(layer: number, at: [number, number][]): Promise<{ before: string; after: string }[]> {
    if (!at.length) return [];
    const W = 6;
    const values = at.map(([s, p], i) => `(${i}, ${s}, ${p})`).join(', ');
    const rows = await this.all(`SELECT q.i, r.pos - q.p AS d, r.modality, r.token FROM (VALUES ${values}) q(i, s, p)
      JOIN ${this.trace.routing} r ON r.sample = q.s AND r.layer = ${layer} AND r.pos BETWEEN q.p - ${W} AND q.p + ${W} AND r.pos <> q.p
      ORDER BY q.i, d`);
    const words = await this.wordOf(rows.map((x) => num(x.token)));
    const out = at.map(() => ({ before: [] as string[], after: [] as string[] }));
    rows.forEach((x, k) => {
      const w = x.modality === 'image' ? '[image]' : words[k] ?? `#${num(x.token)}`;
      const side = num(x.d) < 0 ? out[num(x.i)].before : out[num(x.i)].after;
      if (!(w === '[image]' && side[side.length - 1] === '[image]')) side.push(w);
    });
    return out.map((o) => ({ before: o.before.join(' '), after: o.after.join(' ') }));
  }

  /** Top-1 expert at layer a -> top-1 expert at layer b, per group (the same token at both layers): one E x E matrix per group. */
  async flow(a: number, b: number, by: string, groups: readonly string[]): Promise<FlowJson> {
    this.checkLayer(a);
    this.checkLayer(b);
    const rel = this.analysedRelation(by, groups);
    const rows = await this.all(`SELECT x.grp, x.expert[1]::INTEGER AS source, y.expert[1]::INTEGER AS target, count(*) AS n
      FROM (SELECT sample, pos, grp, expert FROM ${rel} WHERE layer = ${a}) x
      JOIN (SELECT sample, pos, expert FROM ${this.trace.routing} WHERE layer = ${b}) y USING (sample, pos)
      GROUP BY ALL`);
    const E = this.numExperts;
    const n = groups.map(() => new Array<number>(E * E).fill(0));
    for (const x of rows) {
      const g = groups.indexOf(String(x.grp)), s = num(x.source), t = num(x.target);
      if (g >= 0 && s >= 0 && s < E && t >= 0 && t < E) n[g][s * E + t] += num(x.n);
    }
    return { a, b, numExperts: E, groups: [...groups], n };
  }
}
