import { mkdirSync, renameSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { firstOutside, maxOf } from '../util/int-scan.js';
import { InputError } from '../util/errors.js';
import { VERSION } from '../version.js';
import type { FileRecord, TraceMeta, TraceMetaInput } from './meta.js';
import { MODALITIES } from '../analysis/groups.js';
import { aggregateQueries, baseRelation, writeAggregateQueries, type AggQuery, type AggTable } from './aggregates.js';
import { AggregateAccumulator } from './agg-accumulator.js';
import { recordFiles } from './files.js';
import { Dictionary } from './dictionary.js';
import { RowStage } from './row-stage.js';
import { writeRoutingFile, type RoutingFileSpec } from './parquet/routing-file.js';
import { ShardThread, type ShardWritten } from './shard-thread.js';
import { SamplesFile } from './parquet/samples-file.js';
import { sqlString } from '../util/sql.js';

/**
 * A batch of routing rows (SPEC §2), one per token per MoE layer, in column form.
 * `modality` is either names or codes into MODALITY_NAMES of src/data/sample.ts
 * (0 special, 1 text, 2 image), which saves building a string array per row.
 */
export interface RoutingRows {
  sample: Int32Array;
  pos: Int32Array;
  modality: readonly string[] | Uint8Array;
  token: Int32Array;
  layer: Int32Array;
  experts: Int32Array; // n*K, by descending gate
  gates: Float32Array; // n*K; or none (length 0) after dropGates: the gate column is NULL then
  probs?: Float32Array; // n*E, only with fullProbs
  /**
   * The caller checked every expert id against this count (0 <= id < expertsBelow): the writer
   * does not scan them again when it is at most numExperts (an importer's routing step checks each
   * id as it reads it; a second scan was a twentieth of the writer thread's time).
   */
  expertsBelow?: number;
  /** Values of the extra columns declared in `open` (e.g. an importer's `phase`), n each. */
  extra?: Record<string, readonly string[] | Int32Array | CodedStrings>;
}

/** A text column as codes into `names` (which may only grow from batch to batch). */
export interface CodedStrings {
  codes: Uint16Array;
  names: readonly string[];
}

export interface SampleRow {
  sample: number;
  text: string;
  images: Uint8Array[]; // PNG bytes
  source: string;
  /** The data domain (SPEC §2 samples.parquet `domain`, e.g. `arxiv`), when the data says. */
  domain?: string | null;
  tokens?: string[] | null; // each position's token string (SPEC §2 `tokens`)
  image_grids?: number[][] | null; // per image its [t, h, w] grid of image tokens (patch p: row-major)
}

export interface TraceWriterOptions {
  topK: number;
  numExperts: number;
  fullProbs: boolean;
  /** Extra routing columns after the SPEC ones: VARCHAR (dictionary-coded while writing) or INTEGER. */
  extraColumns?: { name: string; type: 'VARCHAR' | 'INTEGER' }[];
  /** DuckDB memory limit, when the writer needs DuckDB (default 64MB; beyond it DuckDB spills to the trace's temporary folder). */
  memoryLimit?: string;
  /** Rows per routing file (default: what fits BUFFER_BYTES, in whole row groups); tests use small ones to get shards. */
  bufferRows?: number;
  /** Tests: fold the aggregates' 32-bit co-activation counts every this many rows (default before they could overflow). */
  coactFoldRows?: number;
  /** Tests: move the per-token counts to disk every this many rows (default 131,072). */
  tokenSpill?: number;
  /** Encode and write the routing files in a thread of their own (shard-thread.ts), beside the aggregates' counting. */
  shardThread?: boolean;
}

const CODE_NAMES = MODALITIES.slice(0, 3); // codes 0 special, 1 text, 2 image (= MODALITY_NAMES of src/data/sample.ts)
const TMP_PREFIX = '.trace-tmp';
/** samples.parquet while it is written (open through the whole trace), renamed by finish */
const SAMPLES_TMP = `${TMP_PREFIX}-samples.parquet`;
const ROW_GROUP = 122880;
/** Routing rows held in memory before they go out as one Parquet file (a shard when more follow). */
const BUFFER_BYTES = 16 << 20;
const MAX_SAMPLE_DOMAINS = 1 << 20;
const SQL_IDENT = /^[a-z_][a-z0-9_]*$/;
/** Routing files rewritten by DuckDB (rarely: see nullGatesOfEarlyShards). */
const PARQUET = `FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP}`;


/**
 * Streams a routing trace to disk (SPEC §2). Rows are held in the writer's own column arrays
 * (row-stage.ts) until they fill BUFFER_BYTES, then written in the shard's order as one Parquet
 * shard (routing/part-NNNNN.parquet, by parquet/routing-file.ts): memory stays flat however long
 * the input. A trace that fits one buffer is a single routing.parquet. The aggregates are counted
 * on the way in (agg-accumulator.ts), so finishing costs no second pass over the rows, and written
 * with samples.parquet by the same encoder (parquet/agg-file.ts, token-file.ts, samples-file.ts).
 * DuckDB starts only when something still needs it: the rare fallbacks (gates dropped after
 * shards went out, tables one pass could not count). The caller makes the folder atomic
 * (src/util/atomic.ts writeDirAtomic).
 */
export class TraceWriter {
  private rows = 0;
  private samples = 0;
  private closed = false;
  private gatesRecorded = true;
  private readonly modalities = new Dictionary(CODE_NAMES);
  private readonly extraDicts = new Map<string, Dictionary>();
  private readonly layerModalityCounts = new Map<number, Float64Array>(); // layer -> rows per modality code
  private readonly bufferRows: number;
  /** rows appended since the last shard, held until the buffer is full */
  private readonly stage: RowStage;
  private shards: string[] = []; // relative paths written so far
  /** size and SHA-256 of routing files as they were written (meta.json `files`; hashing them at the end read them back) */
  private readonly records = new Map<string, FileRecord>();
  private shardsWithGates = 0; // the first shards, written while gates were still taken as recorded
  private samplesFile: SamplesFile | null = null; // from the first sample on
  private db: { instance: DuckDBInstance; conn: DuckDBConnection } | null = null; // started by duck() on first use
  // the samples' domains (SPEC §2 samples.domain), for the aggregates' domain key
  private readonly sampleDomains = new Dictionary();
  private readonly sampleDomain = new Map<number, number>();
  private maxSampleWithoutDomain = -1;
  private readonly acc: AggregateAccumulator;
  /** the thread that writes the routing files (shardThread), started at the first shard that is not the last */
  private shardOut: ShardThread | null = null;

  private constructor(readonly dir: string, readonly opts: TraceWriterOptions) {
    const rowBytes = 19 + 6 * opts.topK + (opts.fullProbs ? 4 * opts.numExperts : 0) + 2 * (opts.extraColumns?.length ?? 0);
    // whole row groups when they fit; wide rows (full probabilities of many experts) get fewer
    const fit = Math.max(2048, Math.floor(BUFFER_BYTES / rowBytes));
    this.bufferRows = opts.bufferRows ?? (fit >= ROW_GROUP ? fit - (fit % ROW_GROUP) : fit);
    this.stage = new RowStage(opts.topK, opts.fullProbs ? opts.numExperts : 0, (opts.extraColumns ?? []).map((c) => c.type), this.bufferRows);
    for (const c of opts.extraColumns ?? []) if (c.type === 'VARCHAR') this.extraDicts.set(c.name, new Dictionary());
    const varchar = (name: string) => (opts.extraColumns ?? []).some((c) => c.name === name && c.type === 'VARCHAR');
    this.acc = new AggregateAccumulator({
      numExperts: opts.numExperts, hasProb: opts.fullProbs,
      // the dictionaries themselves, which grow as rows arrive: a spill sorts by the groups' names
      names: {
        modality: this.modalities.names,
        domain: varchar('domain') ? this.extraDicts.get('domain')!.names : this.sampleDomains.names,
        phase: varchar('phase') ? this.extraDicts.get('phase')!.names : [],
      },
      spillPrefix: join(dir, `${TMP_PREFIX}-token-`), coactFoldRows: opts.coactFoldRows, tokenSpill: opts.tokenSpill,
    });
  }

  static async open(dir: string, opts: TraceWriterOptions): Promise<TraceWriter> {
    const { topK, numExperts } = opts;
    if (opts.bufferRows !== undefined && !(Number.isInteger(opts.bufferRows) && opts.bufferRows >= 1)) throw new Error(`TraceWriter: bad bufferRows ${opts.bufferRows}`);
    if (!Number.isInteger(topK) || topK < 1 || !Number.isInteger(numExperts) || numExperts < 1 || topK > numExperts) {
      throw new Error(`TraceWriter: bad topK ${topK} / numExperts ${numExperts}`);
    }
    const extra = opts.extraColumns ?? [];
    for (const c of extra) {
      if (!SQL_IDENT.test(c.name) || ['sample', 'pos', 'modality', 'token', 'layer', 'expert', 'gate', 'prob'].includes(c.name)) {
        throw new Error(`TraceWriter: bad extra column name ${JSON.stringify(c.name)}`);
      }
    }
    return new TraceWriter(dir, opts);
  }

  /** DuckDB, started on first use; its module too (loading it takes about 0.25 s). */
  private async duck(): Promise<DuckDBConnection> {
    if (!this.db) {
      const { DuckDBInstance } = await import('@duckdb/node-api');
      const instance = await DuckDBInstance.create(':memory:', {
        memory_limit: this.opts.memoryLimit ?? '64MB',
        threads: '2',
        temp_directory: join(this.dir, TMP_PREFIX + '.spill'),
        preserve_insertion_order: 'true',
      });
      this.db = { instance, conn: await instance.connect() };
    }
    return this.db.conn;
  }

  get rowCount(): number {
    return this.rows;
  }

  get sampleCount(): number {
    return this.samples;
  }

  /** Take a batch of rows: they are copied (held rows, counts), so the caller may fill its arrays again once this returns. */
  async appendRouting(r: RoutingRows): Promise<void> {
    this.checkOpen();
    const n = r.sample.length;
    const { topK: K, numExperts: E, fullProbs } = this.opts;
    const bad = (what: string) => new Error(`TraceWriter.appendRouting: ${what}`);
    if (r.pos.length !== n || r.modality.length !== n || r.token.length !== n || r.layer.length !== n) throw bad('columns differ in length');
    if (r.experts.length !== n * K || (r.gates.length !== n * K && (this.gatesRecorded || r.gates.length !== 0))) throw bad(`experts/gates must have ${n}*${K} values`);
    if (fullProbs && (!r.probs || r.probs.length !== n * E)) throw bad(`probs must have ${n}*${E} values`);
    // columns in locals: rows posted from another thread are objects whose property loads are slow in loops
    const experts = r.experts, layer = r.layer;
    const badExpert = r.expertsBelow !== undefined && r.expertsBelow <= E ? -1 : firstOutside(experts, 0, E - 1);
    if (badExpert >= 0) throw new InputError(`routing row ${Math.floor(badExpert / K)}: expert ${experts[badExpert]} outside 0..${E - 1}`);
    const badLayer = firstOutside(layer, 0, 32767);
    if (badLayer >= 0) throw new InputError(`routing row ${badLayer}: layer ${layer[badLayer]} outside 0..32767`);
    const extraCols = this.opts.extraColumns ?? [];
    for (const c of extraCols) {
      const v = r.extra?.[c.name];
      const len = v && ('codes' in v ? v.codes.length : v.length);
      if (len !== n) throw bad(`extra column ${c.name} must have ${n} values`);
      if (c.type === 'INTEGER' && !(v instanceof Int32Array)) throw bad(`extra column ${c.name} must be an Int32Array`);
      if (c.type === 'VARCHAR' && v instanceof Int32Array) throw bad(`extra column ${c.name} must be strings`);
    }
    // whole-batch codes: modality, VARCHAR extra columns, the aggregates' domain
    let mod: Uint8Array<ArrayBuffer>;
    if (r.modality instanceof Uint8Array) {
      const m = r.modality;
      const badCode = firstCodeAbove(m, CODE_NAMES.length - 1);
      if (badCode >= 0) throw bad(`modality code ${m[badCode]} is not one of 0..${CODE_NAMES.length - 1}`);
      mod = r.modality.byteOffset === 0 && r.modality.buffer instanceof ArrayBuffer ? (r.modality as Uint8Array<ArrayBuffer>) : new Uint8Array(r.modality);
    } else {
      mod = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const c = this.modalities.code(r.modality[i]);
        if (c > 255) throw new InputError(`routing: more than 256 distinct modalities`);
        mod[i] = c;
      }
    }
    const extraCodes = new Map<string, Uint16Array<ArrayBuffer>>();
    for (const c of extraCols) {
      if (c.type !== 'VARCHAR') continue;
      const v = r.extra![c.name] as readonly string[] | CodedStrings;
      const d = this.extraDicts.get(c.name)!;
      const codes = new Uint16Array(n);
      if ('codes' in v) {
        const badCode = recode(v.codes, Int32Array.from(v.names, (name) => d.code(name)), codes, n);
        if (badCode >= 0) throw bad(`extra column ${c.name}: code ${v.codes[badCode]} has no name`);
      } else for (let i = 0; i < n; i++) codes[i] = d.code(v[i]);
      extraCodes.set(c.name, codes);
    }
    countLayerModality(this.layerModalityCounts, layer, mod, n);

    // held until the buffer is full, then written in the shard's order (flushRouting)
    this.stage.append({
      n, sample: r.sample, pos: r.pos, mod, token: r.token, layer, experts, gates: this.gatesRecorded ? r.gates : null,
      probs: fullProbs ? r.probs! : null, extra: extraCols.map((col) => (col.type === 'INTEGER' ? (r.extra![col.name] as Int32Array) : extraCodes.get(col.name)!)),
    });

    this.acc.add({
      n, K, sample: r.sample, pos: r.pos, token: r.token, layer: r.layer, mod,
      dom: this.domainCodes(r.sample, extraCodes), phase: extraCodes.get('phase') ?? null,
      experts: r.experts, gates: this.gatesRecorded ? r.gates : null, probs: r.probs,
    });
    this.rows += n;
    if (this.stage.rows >= this.bufferRows) await this.flushRouting(false);
  }

  /**
   * Per row, the code of its domain for the aggregates: a routing `domain` column, else its
   * sample's domain. A sample's domain must be known before its rows; when it arrives later, the
   * aggregates are computed from the written rows instead (see appendSample).
   */
  private domainCodes(sample: Int32Array, extraCodes: Map<string, Uint16Array>): Int32Array | null {
    const fromRouting = extraCodes.get('domain');
    if (fromRouting) return Int32Array.from(fromRouting);
    if (this.sampleDomain.size === 0) {
      this.maxSampleWithoutDomain = Math.max(this.maxSampleWithoutDomain, maxOf(sample));
      return null;
    }
    const dom = new Int32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const d = this.sampleDomain.get(sample[i]);
      if (d === undefined) {
        dom[i] = -1;
        if (sample[i] > this.maxSampleWithoutDomain) this.maxSampleWithoutDomain = sample[i];
      } else dom[i] = d;
    }
    return dom;
  }

  /**
   * Write the held rows as one routing file, laid out by layer, then sample and position
   * (RowStage.order): here, or handed to the shard thread (which may still be writing it on return).
   */
  private async flushRouting(last: boolean): Promise<void> {
    const st = this.stage;
    // an empty trace still has its routing file
    if (st.rows === 0 && !(last && this.shards.length === 0)) return;
    let rel: string;
    if (last && this.shards.length === 0) rel = 'routing.parquet';
    else {
      if (this.shards.length === 0) mkdirSync(join(this.dir, 'routing'));
      rel = `routing/part-${String(this.shards.length).padStart(5, '0')}.parquet`;
    }
    const { topK: K, numExperts: E, fullProbs } = this.opts;
    const spec: RoutingFileSpec = {
      K, E, probs: fullProbs ? E : 0, rowGroupRows: ROW_GROUP,
      gates: this.gatesRecorded && st.hasGates,
      modalityNames: this.modalities.names,
      extra: (this.opts.extraColumns ?? []).map((c) => ({ ...c, names: this.extraDicts.get(c.name)?.names ?? [] })),
    };
    const path = join(this.dir, rel);
    st.order();
    this.shards.push(rel);
    if (this.gatesRecorded) this.shardsWithGates = this.shards.length;
    // a trace that fits one buffer is written here: a thread costs more than it saves then
    if (!last && this.opts.shardThread) this.shardOut ??= new ShardThread();
    if (this.shardOut) {
      const cols = st.take();
      st.clear();
      this.shardWritten(await this.shardOut.write({ rel, path, cols, spec }));
      return;
    }
    this.records.set(rel, writeRoutingFile(path, st, spec));
    st.clear();
  }

  /** Every routing file handed to the shard thread is written (reading them, or finishing). */
  private async routingWritten(): Promise<void> {
    if (this.shardOut) this.shardWritten(await this.shardOut.idle());
  }

  /** A file the shard thread wrote: its record kept, its columns filled again. */
  private shardWritten(w: ShardWritten | null): void {
    if (!w) return;
    this.records.set(w.rel, w.record);
    this.stage.giveBack(w.cols);
  }

  async appendSample(s: SampleRow): Promise<void> {
    this.checkOpen();
    if (s.domain !== undefined && s.domain !== null && !(this.opts.extraColumns ?? []).some((c) => c.name === 'domain')) {
      // rows of this sample already counted without its domain, or too many to remember: the
      // aggregates come from the written rows instead
      if (s.sample <= this.maxSampleWithoutDomain || this.sampleDomain.size >= MAX_SAMPLE_DOMAINS) this.acc.giveUp();
      else this.sampleDomain.set(s.sample, this.sampleDomains.code(s.domain));
    }
    this.samplesOut().add(s);
    this.samples++;
  }

  private samplesOut(): SamplesFile {
    return (this.samplesFile ??= new SamplesFile(join(this.dir, SAMPLES_TMP)));
  }

  /**
   * Write the last routing rows, samples.parquet, the aggregates and meta.json, and remove the
   * temporaries. `tokens` (per modality, each token once) is counted from the rows unless given.
   */
  async finish(meta: TraceMetaInput): Promise<TraceMeta> {
    this.checkOpen();
    try {
      await this.flushRouting(true);
      if (!this.gatesRecorded) await this.nullGatesOfEarlyShards();
      this.samplesOut().finish();
      renameSync(join(this.dir, SAMPLES_TMP), join(this.dir, 'samples.parquet'));
      await this.writeAggregates();
      // tokens per modality: rows of one layer are its tokens; the largest layer count covers
      // importers whose layers saw different token sets
      let tokens = meta.tokens;
      if (!tokens) {
        tokens = {};
        for (const counts of this.layerModalityCounts.values()) {
          counts.forEach((c, code) => {
            if (c > 0) tokens![this.modalities.names[code]] = Math.max(tokens![this.modalities.names[code]] ?? 0, c);
          });
        }
        tokens = Object.fromEntries(Object.entries(tokens).sort(([a], [b]) => (a < b ? -1 : 1)));
      }
      await this.routingWritten();
      await this.close();
      const full: TraceMeta = {
        moescope_version: VERSION,
        ...meta,
        num_experts: meta.num_experts ?? this.opts.numExperts,
        top_k: meta.top_k ?? this.opts.topK,
        tokens,
        full_probs: this.opts.fullProbs,
        samples: this.samples,
        rows: this.rows,
        layers: meta.layers ?? [...this.layerModalityCounts.keys()].sort((a, b) => a - b),
        files: recordFiles(this.dir, this.records),
      };
      writeFileSync(join(this.dir, 'meta.json'), JSON.stringify(full, null, 2) + '\n');
      return full;
    } finally {
      await this.close();
    }
  }

  /**
   * agg-*.parquet: the tables counted on the way in, and (rarely) the ones one pass could not
   * count, computed with SQL from the files just written.
   */
  private async writeAggregates(): Promise<void> {
    const extra = this.opts.extraColumns ?? [];
    const hasVarchar = (name: string) => extra.some((c) => c.name === name && c.type === 'VARCHAR');
    const queries = this.acc.tables(!this.gatesRecorded);
    if (this.acc.sqlTables.size) {
      await this.routingWritten();
      const routing = `read_parquet([${this.shards.map((f) => sqlString(join(this.dir, f))).join(', ')}])`;
      const base = baseRelation(routing, `read_parquet(${sqlString(join(this.dir, 'samples.parquet'))})`, {
        domain: hasVarchar('domain') ? 'routing' : this.samplesFile?.filled.has('domain') ? 'samples' : null,
        phase: hasVarchar('phase'),
        prob: this.opts.fullProbs,
      });
      const sql = aggregateQueries(base, { hasProb: this.opts.fullProbs, numExperts: this.opts.numExperts, topK: this.opts.topK });
      for (const t of this.acc.sqlTables) queries[t] = sql[t];
    }
    await writeAggregateQueries(() => this.duck(), queries as Record<AggTable, AggQuery>, this.dir);
  }

  /**
   * The producer recorded no gate weights: routing.gate is written NULL (SPEC §2) whatever was
   * appended (appended gates are placeholders then). Call before the first rows go out.
   */
  dropGates(): void {
    this.gatesRecorded = false;
  }

  /** Shards written before the writer learnt that gates are placeholders get their gate column NULLed. */
  private async nullGatesOfEarlyShards(): Promise<void> {
    await this.routingWritten();
    for (const rel of this.shards.slice(0, this.shardsWithGates)) {
      const f = join(this.dir, rel);
      const tmp = join(this.dir, `${TMP_PREFIX}-regate.parquet`);
      await (await this.duck()).run(`COPY (SELECT * REPLACE (NULL::FLOAT[] AS gate) FROM read_parquet(${sqlString(f)})) TO ${sqlString(tmp)} (${PARQUET})`);
      renameSync(tmp, f);
      this.records.delete(rel);
    }
    this.shardsWithGates = 0;
  }

  /** Stop and remove the temporaries (the caller's atomic folder removes the rest). */
  async abort(): Promise<void> {
    await this.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('TraceWriter: already finished or aborted');
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.shardOut?.close();
      this.samplesFile?.close();
      this.db?.conn.closeSync();
      this.db?.instance.closeSync();
    } finally {
      for (const f of readdirSync(this.dir)) {
        if (f.startsWith(TMP_PREFIX)) rmSync(join(this.dir, f), { recursive: true, force: true });
      }
    }
  }
}

// The batch loops of appendRouting, each a function of its own (see util/int-scan.ts).

/** The first index whose code is above max, or -1. */
function firstCodeAbove(v: Uint8Array, max: number): number {
  for (let i = 0; i < v.length; i++) if (v[i] > max) return i;
  return -1;
}

/** codes[i] = map[from[i]] for the n rows; the first row whose code has no entry in map, or -1. */
function recode(from: Uint16Array, map: Int32Array, codes: Uint16Array, n: number): number {
  for (let i = 0; i < n; i++) {
    const x = from[i];
    if (x >= map.length) return i;
    codes[i] = map[x];
  }
  return -1;
}

/** counts.get(layer)[modality code] += 1 per row; rows come in runs of one layer. */
function countLayerModality(counts: Map<number, Float64Array>, layer: Int32Array, mod: Uint8Array, n: number): void {
  let last = -1;
  let c: Float64Array | undefined;
  for (let i = 0; i < n; i++) {
    const l = layer[i];
    if (l !== last) {
      c = counts.get(l);
      if (!c) counts.set(l, (c = new Float64Array(256)));
      last = l;
    }
    c![mod[i]]++;
  }
}
