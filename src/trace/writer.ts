import { rmSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import duckdb from '@duckdb/node-bindings';
import {
  ARRAY, BLOB, DuckDBAppender, DuckDBConnection, DuckDBDataChunk, DuckDBInstance, INTEGER, LIST, SMALLINT,
  FLOAT, USMALLINT, UTINYINT, VARCHAR, blobValue, listValue, type DuckDBType,
} from '@duckdb/node-api';
import { InputError } from '../util/errors.js';
import { VERSION } from '../version.js';
import type { TraceMeta, TraceMetaInput } from './meta.js';
import { MODALITIES } from '../analysis/groups.js';
import { baseRelation, writeAggregates } from './aggregates.js';
import { recordFiles } from './files.js';

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
  gates: Float32Array; // n*K
  probs?: Float32Array; // n*E, only with fullProbs
  /** Values of the extra columns declared in `open` (e.g. an importer's `phase`), n each. */
  extra?: Record<string, readonly string[] | Int32Array>;
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
  /** DuckDB memory limit while writing (default 32MB); the temporary table spills to disk beyond it. */
  memoryLimit?: string;
}

const CODE_NAMES = MODALITIES.slice(0, 3); // codes 0 special, 1 text, 2 image (= MODALITY_NAMES of src/data/sample.ts)
const TMP_DB = '.trace-tmp.duckdb';
const AGG_MEMORY = '128MB';
const CHECKPOINT_ROWS = 1 << 18;
const SQL_IDENT = /^[a-z_][a-z0-9_]*$/;

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Names <-> small integer codes, so that string columns travel as one byte per row. */
class Dictionary {
  readonly names: string[] = [];
  private readonly codes = new Map<string, number>();
  constructor(initial: readonly string[] = []) {
    for (const n of initial) this.code(n);
  }
  code(name: string): number {
    let c = this.codes.get(name);
    if (c === undefined) {
      c = this.names.length;
      if (c > 65535) throw new InputError(`trace: more than 65536 distinct values in a text column`);
      this.names.push(name);
      this.codes.set(name, c);
    }
    return c;
  }
  /** SQL list literal, indexed 1-based by code+1. */
  sqlList(): string {
    return `[${this.names.map(sqlString).join(', ')}]::VARCHAR[]`;
  }
}

/**
 * Streams a routing trace to disk: rows go into a DuckDB table in an on-disk temporary database
 * inside the output folder (memory-limited, so it spills rather than grows), and `finish` copies
 * them to routing.parquet / samples.parquet and writes meta.json. The caller makes the folder
 * atomic (src/util/atomic.ts writeDirAtomic).
 *
 * Rows are written as raw data chunks: each column's typed array is copied straight into the
 * DuckDB vector (fixed-size ARRAY columns for expert/gate/prob, cast to LIST when copied out),
 * so the cost per row is a few memcpys, not a call per value.
 */
export class TraceWriter {
  private rows = 0;
  private lastCheckpoint = 0;
  private samples = 0;
  private readonly sampleColumns = new Set<string>(); // optional samples columns some sample filled
  /** A CHECKPOINT still running; awaited before the connection is used again. */
  private checkpoint: Promise<void> | null = null;
  private closed = false;
  private gatesRecorded = true;
  private readonly modalities = new Dictionary(CODE_NAMES);
  private readonly extraDicts = new Map<string, Dictionary>();
  private readonly layerModalityCounts = new Map<number, Float64Array>(); // layer -> rows per modality code
  private readonly chunk: DuckDBDataChunk;
  private readonly chunkRows: number;
  // scratch buffers for columns whose in-memory type differs from the input
  private readonly u8: Uint8Array<ArrayBuffer>;
  private readonly i16: Int16Array<ArrayBuffer>;
  private readonly i16k: Int16Array<ArrayBuffer>;
  private readonly extraU16: Uint16Array<ArrayBuffer>;

  private constructor(
    readonly dir: string,
    readonly opts: TraceWriterOptions,
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly routingAppender: DuckDBAppender,
    private readonly samplesAppender: DuckDBAppender,
    private readonly routingTypes: DuckDBType[],
  ) {
    this.chunkRows = duckdb.vector_size();
    this.chunk = DuckDBDataChunk.create(routingTypes);
    this.u8 = new Uint8Array(this.chunkRows);
    this.i16 = new Int16Array(this.chunkRows);
    this.i16k = new Int16Array(this.chunkRows * opts.topK);
    this.extraU16 = new Uint16Array(this.chunkRows);
    for (const c of opts.extraColumns ?? []) if (c.type === 'VARCHAR') this.extraDicts.set(c.name, new Dictionary());
  }

  static async open(dir: string, opts: TraceWriterOptions): Promise<TraceWriter> {
    const { topK, numExperts } = opts;
    if (!Number.isInteger(topK) || topK < 1 || !Number.isInteger(numExperts) || numExperts < 1 || topK > numExperts) {
      throw new Error(`TraceWriter: bad topK ${topK} / numExperts ${numExperts}`);
    }
    const extra = opts.extraColumns ?? [];
    for (const c of extra) {
      if (!SQL_IDENT.test(c.name) || ['sample', 'pos', 'modality', 'token', 'layer', 'expert', 'gate', 'prob'].includes(c.name)) {
        throw new Error(`TraceWriter: bad extra column name ${JSON.stringify(c.name)}`);
      }
    }
    const dbPath = join(dir, TMP_DB);
    const instance = await DuckDBInstance.create(dbPath, {
      memory_limit: opts.memoryLimit ?? '32MB',
      threads: '2',
      temp_directory: join(dir, TMP_DB + '.spill'),
      preserve_insertion_order: 'true',
    });
    const conn = await instance.connect();
    const types: DuckDBType[] = [INTEGER, INTEGER, UTINYINT, INTEGER, SMALLINT, ARRAY(SMALLINT, topK), ARRAY(FLOAT, topK)];
    const cols = ['sample INTEGER', 'pos INTEGER', 'modality UTINYINT', 'token INTEGER', 'layer SMALLINT', `expert SMALLINT[${topK}]`, `gate FLOAT[${topK}]`];
    if (opts.fullProbs) {
      types.push(ARRAY(FLOAT, numExperts));
      cols.push(`prob FLOAT[${numExperts}]`);
    }
    for (const c of extra) {
      types.push(c.type === 'VARCHAR' ? USMALLINT : INTEGER);
      cols.push(`${c.name} ${c.type === 'VARCHAR' ? 'USMALLINT' : 'INTEGER'}`);
    }
    await conn.run(`CREATE TABLE routing (${cols.join(', ')})`);
    await conn.run('CREATE TABLE samples (sample INTEGER, text VARCHAR, images BLOB[], source VARCHAR, domain VARCHAR, tokens VARCHAR[], image_grids INTEGER[][])');
    const ra = await conn.createAppender('routing');
    const sa = await conn.createAppender('samples');
    return new TraceWriter(dir, opts, instance, conn, ra, sa, types);
  }

  get rowCount(): number {
    return this.rows;
  }

  get sampleCount(): number {
    return this.samples;
  }

  async appendRouting(r: RoutingRows): Promise<void> {
    this.checkOpen();
    await this.settleCheckpoint();
    const n = r.sample.length;
    const { topK: K, numExperts: E, fullProbs } = this.opts;
    const bad = (what: string) => new Error(`TraceWriter.appendRouting: ${what}`);
    if (r.pos.length !== n || r.modality.length !== n || r.token.length !== n || r.layer.length !== n) throw bad('columns differ in length');
    if (r.experts.length !== n * K || r.gates.length !== n * K) throw bad(`experts/gates must have ${n}*${K} values`);
    if (fullProbs && (!r.probs || r.probs.length !== n * E)) throw bad(`probs must have ${n}*${E} values`);
    for (let i = 0; i < r.experts.length; i++) {
      const e = r.experts[i];
      if (!(e >= 0 && e < E)) throw new InputError(`routing row ${Math.floor(i / K)}: expert ${e} outside 0..${E - 1}`);
    }
    for (let i = 0; i < n; i++) {
      const l = r.layer[i];
      if (!(l >= 0 && l <= 32767)) throw new InputError(`routing row ${i}: layer ${l} outside 0..32767`);
    }
    const extraCols = this.opts.extraColumns ?? [];
    for (const c of extraCols) {
      const v = r.extra?.[c.name];
      if (!v || v.length !== n) throw bad(`extra column ${c.name} must have ${n} values`);
    }

    const raw = this.chunk.chunk;
    const CH = this.chunkRows;
    for (let start = 0; start < n; start += CH) {
      const m = Math.min(CH, n - start);
      this.chunk.reset();
      const vec = (c: number) => duckdb.data_chunk_get_vector(raw, c);
      const copy = (c: number, a: ArrayBufferView, bytesPerRow: number, child = false) => {
        const v = child ? duckdb.array_vector_get_child(vec(c)) : vec(c);
        duckdb.copy_data_to_vector(v, 0, a.buffer as ArrayBuffer, a.byteOffset + start * bytesPerRow, m * bytesPerRow);
      };
      copy(0, r.sample, 4);
      copy(1, r.pos, 4);
      // modality: codes (given or looked up)
      if (r.modality instanceof Uint8Array) {
        for (let i = 0; i < m; i++) {
          const c = r.modality[start + i];
          if (c >= CODE_NAMES.length) throw bad(`modality code ${c} is not one of 0..${CODE_NAMES.length - 1}`);
          this.u8[i] = c;
        }
      } else {
        for (let i = 0; i < m; i++) {
          const c = this.modalities.code(r.modality[start + i]);
          if (c > 255) throw new InputError(`routing: more than 256 distinct modalities`);
          this.u8[i] = c;
        }
      }
      duckdb.copy_data_to_vector(vec(2), 0, this.u8.buffer, 0, m);
      let lastLayer = -1;
      let counts: Float64Array | undefined;
      for (let i = 0; i < m; i++) {
        const l = r.layer[start + i];
        if (l !== lastLayer) {
          counts = this.layerModalityCounts.get(l);
          if (!counts) this.layerModalityCounts.set(l, (counts = new Float64Array(256)));
          lastLayer = l;
        }
        counts![this.u8[i]]++;
      }
      copy(3, r.token, 4);
      for (let i = 0; i < m; i++) this.i16[i] = r.layer[start + i];
      duckdb.copy_data_to_vector(vec(4), 0, this.i16.buffer, 0, m * 2);
      for (let i = 0; i < m * K; i++) this.i16k[i] = r.experts[start * K + i];
      duckdb.copy_data_to_vector(duckdb.array_vector_get_child(vec(5)), 0, this.i16k.buffer, 0, m * K * 2);
      copy(6, r.gates, 4 * K, true);
      let c = 7;
      if (fullProbs) copy(c++, r.probs!, 4 * E, true);
      for (const col of extraCols) {
        const v = r.extra![col.name];
        if (col.type === 'INTEGER') {
          if (!(v instanceof Int32Array)) throw bad(`extra column ${col.name} must be an Int32Array`);
          copy(c, v, 4);
        } else {
          if (v instanceof Int32Array) throw bad(`extra column ${col.name} must be strings`);
          const d = this.extraDicts.get(col.name)!;
          for (let i = 0; i < m; i++) this.extraU16[i] = d.code(v[start + i]);
          duckdb.copy_data_to_vector(vec(c), 0, this.extraU16.buffer, 0, m * 2);
        }
        c++;
      }
      this.chunk.rowCount = m;
      this.routingAppender.appendDataChunk(this.chunk);
    }
    this.rows += n;
    if (this.rows - this.lastCheckpoint >= CHECKPOINT_ROWS) {
      // move appended rows from the write-ahead log into the database file, so they can leave memory;
      // the appender is flushed only here (each flush is a commit: flushing every batch cost ~25%)
      this.routingAppender.flushSync();
      // not awaited here: the caller prepares its next rows meanwhile (DuckDB works on its own threads)
      const p = this.conn.run('CHECKPOINT').then(() => undefined);
      p.catch(() => undefined); // a failure surfaces at the next settleCheckpoint
      this.checkpoint = p;
      this.lastCheckpoint = this.rows;
    }
  }

  async appendSample(s: SampleRow): Promise<void> {
    this.checkOpen();
    await this.settleCheckpoint();
    const a = this.samplesAppender;
    a.appendInteger(s.sample);
    a.appendVarchar(s.text);
    a.appendList(listValue(s.images.map((b) => blobValue(b))), LIST(BLOB));
    a.appendVarchar(s.source);
    if (s.domain === undefined || s.domain === null) a.appendNull();
    else {
      a.appendVarchar(s.domain);
      this.sampleColumns.add('domain');
    }
    if (s.tokens) {
      a.appendList(listValue(s.tokens), LIST(VARCHAR));
      this.sampleColumns.add('tokens');
    } else a.appendNull();
    if (s.image_grids) {
      a.appendList(listValue(s.image_grids.map((g) => listValue(g))), LIST(LIST(INTEGER)));
      this.sampleColumns.add('image_grids');
    } else a.appendNull();
    a.endRow();
    this.samples++;
    if (this.samples % 256 === 0) a.flushSync();
  }

  /**
   * Write routing.parquet, samples.parquet and meta.json into the folder and remove the temporary
   * database. `tokens` (per modality, each token once) is counted from the rows unless given.
   */
  async finish(meta: TraceMetaInput): Promise<TraceMeta> {
    this.checkOpen();
    try {
      await this.settleCheckpoint();
      this.routingAppender.flushSync();
      this.routingAppender.closeSync();
      this.samplesAppender.flushSync();
      this.samplesAppender.closeSync();
      const modality = `(${this.modalities.sqlList()})[modality + 1]`;
      const select = [
        'sample', 'pos', `${modality} AS modality`, 'token', 'layer',
        'expert::SMALLINT[] AS expert', this.gatesRecorded ? 'gate::FLOAT[] AS gate' : 'NULL::FLOAT[] AS gate',
      ];
      if (this.opts.fullProbs) select.push('prob::FLOAT[] AS prob');
      for (const c of this.opts.extraColumns ?? []) {
        select.push(c.type === 'VARCHAR' ? `(${this.extraDicts.get(c.name)!.sqlList()})[${c.name} + 1] AS ${c.name}` : c.name);
      }
      const parquet = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880";
      await this.conn.run(`COPY (SELECT ${select.join(', ')} FROM routing) TO ${sqlString(join(this.dir, 'routing.parquet'))} (${parquet})`);
      const sampleCols = ['sample', 'text', 'images', 'source', ...['domain', 'tokens', 'image_grids'].filter((c) => this.sampleColumns.has(c))];
      await this.conn.run(`COPY (SELECT ${sampleCols.join(', ')} FROM samples) TO ${sqlString(join(this.dir, 'samples.parquet'))} (${parquet})`);
      // aggregates (SPEC §2) from the rows just written: analyze, plot and the dashboard read only these
      const extra = this.opts.extraColumns ?? [];
      // read from the temporary table (native storage scans faster than decoding the Parquet just written)
      const routingRel = `(SELECT ${select.join(', ')} FROM routing)`;
      const base = baseRelation(routingRel, 'samples', {
        domain: extra.some((c) => c.name === 'domain' && c.type === 'VARCHAR') ? 'routing' : this.sampleColumns.has('domain') ? 'samples' : null,
        phase: extra.some((c) => c.name === 'phase' && c.type === 'VARCHAR'),
        prob: this.opts.fullProbs,
      });
      // pairing consecutive positions groups every row once: DuckDB spills it, but needs a little room for 2 threads
      if (!this.opts.memoryLimit) await this.conn.run(`SET memory_limit = '${AGG_MEMORY}'`);
      await writeAggregates(this.conn, base, this.dir, { hasProb: this.opts.fullProbs, numExperts: this.opts.numExperts, topK: this.opts.topK });
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
        files: recordFiles(this.dir),
      };
      writeFileSync(join(this.dir, 'meta.json'), JSON.stringify(full, null, 2) + '\n');
      return full;
    } finally {
      this.close();
    }
  }

  /**
   * The producer recorded no gate weights: routing.gate is written NULL (SPEC §2) whatever was
   * appended (appended gates are placeholders then).
   */
  dropGates(): void {
    this.gatesRecorded = false;
  }

  /** Stop and remove the temporary database (the caller's atomic folder removes the rest). */
  async abort(): Promise<void> {
    if (this.closed) return;
    try {
      await this.settleCheckpoint();
    } catch {
      // already failing
    }
    try {
      this.routingAppender.closeSync();
      this.samplesAppender.closeSync();
    } catch {
      // already failing; the files are removed below
    }
    this.close();
  }

  private async settleCheckpoint(): Promise<void> {
    const p = this.checkpoint;
    if (!p) return;
    this.checkpoint = null;
    await p;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('TraceWriter: already finished or aborted');
  }

  private close(): void {
    this.closed = true;
    try {
      this.conn.closeSync();
      this.instance.closeSync();
    } finally {
      for (const f of readdirSync(this.dir)) {
        if (f.startsWith(TMP_DB)) rmSync(join(this.dir, f), { recursive: true, force: true });
      }
    }
  }
}
