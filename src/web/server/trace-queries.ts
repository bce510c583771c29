import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import { loadCounts, selectCounts } from '../../analysis/counts.js';
import { sqlString } from '../../analysis/db.js';
import { allLayerMetrics } from '../../analysis/metrics.js';
import { routerEntropy } from '../../analysis/router-entropy.js';
import type { CountMode, Counts, LayerMetrics } from '../../analysis/types.js';
import { ApiError } from './api-error.js';
import { queryRows, type Trace } from './trace-source.js';

/** Counts as JSON: the typed arrays of the analysis' `Counts` as plain arrays (the browser rebuilds them). */
export interface CountsJson extends Omit<Counts, 'n' | 'tokens'> {
  n: number[];
  tokens: number[];
}

export interface TokenRouting {
  pos: number;
  modality: string;
  token: number;
  word: string | null; // text/special: the word when known
  image: number; // index of the image part in the sample, -1 if none
  experts: number[][]; // per layer (in `layers` order): chosen experts, by descending gate
  gates: number[][];
}

const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : (v as number));

/**
 * The queries behind the dashboard's API, over one trace. Counts and metrics are the analysis' own
 * (src/analysis: the same numbers as `moescope analyze` and `plot`); the rest are drill-down SQL.
 */
export class TraceQueries {
  layers: number[] = [];
  modalities: string[] = [];
  patchesPerImage = 0;
  private vocab: string[] | null | undefined;
  private alignedWords: Promise<Map<number, string>> | undefined;
  private readonly counts = new Map<CountMode, Promise<Counts>>();
  private readonly entropy = new Map<string, Promise<Map<number, number | null>>>();
  private readonly expertCache = new Map<string, Promise<Record<string, unknown>[]>>();

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
      this.patchesPerImage = (cfg.image_size / cfg.patch_size) ** 2;
    } else {
      const r = await this.all(`SELECT coalesce(max(token), -1) + 1 AS ppi FROM ${this.trace.routing} WHERE layer = ${this.layers[0]} AND modality = 'image'`);
      this.patchesPerImage = num(r[0].ppi);
    }
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

  checkModalities(mods: readonly string[]): void {
    for (const m of mods) if (!this.modalities.includes(m)) throw new ApiError(404, `modality ${JSON.stringify(m)} is not in this trace (it has ${this.modalities.join(', ')})`);
  }

  /** n[layer][expert][modality] of every layer and modality under a counting mode: one scan, cached. */
  allCounts(mode: CountMode): Promise<Counts> {
    let p = this.counts.get(mode);
    if (!p) {
      p = loadCounts(this.conn, this.trace.handle, mode);
      p.catch(() => this.counts.delete(mode));
      this.counts.set(mode, p);
    }
    return p;
  }

  async countsFor(mode: CountMode, modalities: readonly string[]): Promise<Counts> {
    this.checkModalities(modalities);
    const all = await this.allCounts(mode);
    return selectCounts(all, all.layers, modalities);
  }

  async countsJson(mode: CountMode, modalities: readonly string[]): Promise<CountsJson> {
    const c = await this.countsFor(mode, modalities);
    return { ...c, n: Array.from(c.n), tokens: Array.from(c.tokens) };
  }

  /** SPEC §3 metrics of every layer (and the router entropy when the trace has `prob`). */
  async metrics(mode: CountMode, modalities: readonly string[]): Promise<LayerMetrics[]> {
    const c = await this.countsFor(mode, modalities);
    let ent: Promise<Map<number, number | null>> | undefined;
    if (this.trace.handle.hasProb) {
      const key = modalities.join(',');
      ent = this.entropy.get(key);
      if (!ent) {
        ent = routerEntropy(this.conn, this.trace.handle, c.layers, modalities);
        this.entropy.set(key, ent);
      }
    }
    return allLayerMetrics(c, ent ? await ent : undefined);
  }

  private requireSamples(): string {
    if (!this.trace.samples) throw new ApiError(404, `${this.trace.dir}: this trace has no samples.parquet`);
    return this.trace.samples;
  }

  async sampleList(offset: number, limit: number, q: string): Promise<{ total: number; rows: Record<string, unknown>[] }> {
    const s = this.requireSamples();
    const where = q ? `WHERE text ILIKE $1 OR source ILIKE $1` : '';
    const params = q ? [`%${q}%`] : [];
    const total = num((await this.all(`SELECT count(*) AS n FROM ${s} ${where}`, params))[0].n);
    const rows = await this.all(`SELECT sample, text, len(images)::INTEGER AS images, source FROM ${s} ${where} ORDER BY sample LIMIT ${limit} OFFSET ${offset}`, params);
    return { total, rows: rows.map((r) => ({ ...r, sample: num(r.sample) })) };
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

  async sample(id: number): Promise<{ sample: number; text: string | null; source: string | null; images: number; layers: number[]; tokens: TokenRouting[] }> {
    const meta = this.trace.samples ? await this.all(`SELECT text, len(images)::INTEGER AS images, source FROM ${this.trace.samples} WHERE sample = ${Math.trunc(id)}`) : [];
    const rows = await this.all(`SELECT pos, any_value(modality) AS modality, any_value(token) AS token,
        list(layer ORDER BY layer) AS layers, list(expert ORDER BY layer) AS experts, list(gate ORDER BY layer) AS gates
      FROM ${this.trace.routing} WHERE sample = ${Math.trunc(id)} GROUP BY pos ORDER BY pos`);
    if (!rows.length && !meta.length) throw new ApiError(404, `sample ${id} does not exist in this trace`);
    const text = meta.length ? String(meta[0].text ?? '') : null;
    // Words of the text positions: the sample's own text when its pieces line up, else the vocabulary.
    const textPos = rows.filter((r) => r.modality === 'text');
    const pieces = text ? text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? [] : [];
    // The vocabulary is needed only when the text does not line up (or for special tokens); it may cost a scan once.
    const aligned = pieces.length === textPos.length;
    const vocabWords = aligned && !this.loadVocab()
      ? rows.map(() => null)
      : await this.wordOf(rows.map((r) => num(r.token)));
    let image = -1;
    let prevImage = false;
    let ti = 0;
    const tokens = rows.map((r, i): TokenRouting => {
      const modality = String(r.modality);
      const token = num(r.token);
      if (modality === 'image' && (!prevImage || token === 0)) image++;
      prevImage = modality === 'image';
      let word: string | null = vocabWords[i];
      if (modality === 'text') {
        if (pieces.length === textPos.length) word = pieces[ti];
        ti++;
      }
      const layers = (r.layers as unknown[]).map(num);
      if (layers.length !== this.layers.length) {
        // A position missing from some layer: keep the arrays aligned with `this.layers`.
        const at = new Map(layers.map((l, k) => [l, k]));
        const ex = r.experts as unknown[][], ga = r.gates as unknown[][];
        return {
          pos: num(r.pos), modality, token, word, image: modality === 'image' ? image : -1,
          experts: this.layers.map((l) => (at.has(l) ? ex[at.get(l)!].map(num) : [])),
          gates: this.layers.map((l) => (at.has(l) ? ga[at.get(l)!].map(num) : [])),
        };
      }
      return {
        pos: num(r.pos), modality, token, word, image: modality === 'image' ? image : -1,
        experts: (r.experts as unknown[][]).map((e) => e.map(num)),
        gates: (r.gates as unknown[][]).map((g) => g.map(num)),
      };
    });
    return { sample: id, text, source: meta.length ? String(meta[0].source ?? '') : null, images: meta.length ? num(meta[0].images) : 0, layers: this.layers, tokens };
  }

  async image(id: number, k: number): Promise<Uint8Array> {
    const s = this.requireSamples();
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

  /** Tokens and patches routed to expert e at a layer: totals, most frequent words, a page of examples (in trace order). */
  async expert(layer: number, e: number, mode: CountMode, modality: string, offset: number, limit: number): Promise<Record<string, unknown>> {
    this.checkLayer(layer);
    this.checkExpert(e);
    const r = this.trace.routing;
    const match = mode === 'top1' ? `expert[1] = ${e}` : `list_contains(expert, ${e})`;
    const groups = await this.expertTotals(layer, e, mode);
    const totals: Record<string, number> = {};
    for (const g of groups) totals[String(g.modality)] = (totals[String(g.modality)] ?? 0) + num(g.n);
    const top = groups.filter((g) => g.modality === 'text').sort((a, b) => num(b.n) - num(a.n) || num(a.token) - num(b.token)).slice(0, 30);
    const words = await this.wordOf(top.map((t) => num(t.token)));
    // No ORDER BY: DuckDB keeps the file's order (a capture writes sample by sample), so a page stops reading early.
    const ex = await this.all(`SELECT sample, pos, token, expert, gate FROM ${r} WHERE layer = ${layer} AND ${match} AND modality = $1
        LIMIT ${limit} OFFSET ${offset}`, [modality]);
    // Which image of its sample each example patch belongs to: count the image starts before it.
    const samples = [...new Set(ex.map((x) => num(x.sample)))];
    const starts = new Map<number, number[]>();
    if (modality === 'image' && samples.length) {
      const st = await this.all(`SELECT sample, list(pos ORDER BY pos) AS starts FROM ${r}
          WHERE layer = ${layer} AND modality = 'image' AND token = 0 AND sample IN (${samples.join(',')}) GROUP BY sample`);
      for (const x of st) starts.set(num(x.sample), (x.starts as unknown[]).map(num));
    }
    const exWords = modality === 'image' ? ex.map(() => null) : await this.wordOf(ex.map((x) => num(x.token)));
    return {
      layer, expert: e, mode, modality, totals,
      topWords: top.map((t, i) => ({ token: num(t.token), word: words[i], n: num(t.n) })),
      offset, limit, total: totals[modality] ?? 0,
      examples: ex.map((x, i) => {
        const pos = num(x.pos);
        const st = starts.get(num(x.sample)) ?? [];
        return {
          sample: num(x.sample), pos, token: num(x.token), word: exWords[i],
          image: modality === 'image' ? st.filter((p) => p <= pos).length - 1 : -1,
          experts: (x.expert as unknown[]).map(num), gates: (x.gate as unknown[]).map(num),
        };
      }),
      patchesPerImage: this.patchesPerImage,
    };
  }

  /** Top-1 expert at layer a -> top-1 expert at layer b, per modality (the same token at both layers). */
  async flow(a: number, b: number, modalities: string[]): Promise<Record<string, unknown>[]> {
    this.checkLayer(a);
    this.checkLayer(b);
    const r = this.trace.routing;
    const rows = await this.all(`SELECT x.modality, x.expert[1]::INTEGER AS source, y.expert[1]::INTEGER AS target, count(*) AS n
      FROM (SELECT sample, pos, modality, expert FROM ${r} WHERE layer = ${a}) x
      JOIN (SELECT sample, pos, expert FROM ${r} WHERE layer = ${b}) y USING (sample, pos)
      WHERE x.modality IN (${modalities.map(sqlString).join(', ')}) GROUP BY ALL ORDER BY ALL`);
    return rows.map((x) => ({ modality: String(x.modality), source: num(x.source), target: num(x.target), n: num(x.n) }));
  }
}
