import { InputError } from '../util/errors.js';
import { maxByte, maxOf } from '../util/int-scan.js';
import type { SampleRow } from '../trace/writer.js';
import { TraceWriterThread } from '../trace/writer-thread.js';
import { Dictionary } from '../trace/dictionary.js';
import type { TraceMeta, TraceMetaInput } from '../trace/meta.js';
import { MODALITIES } from '../analysis/groups.js';
import type { Routed } from './routing.js';

/** What a sample may carry besides its text (SPEC §2 samples.parquet `images`, `tokens`, `image_grids`). */
export interface SampleExtras {
  images: Uint8Array[]; // PNG bytes
  tokens: string[] | null; // one string per position
  imageGrids: number[][] | null; // per image [t, h, w] in image tokens
}

/** Rows of one sample in one decoder layer (or several layers, `layer` per row). */
export interface LayerRows {
  where: string; // file and record, for messages
  sample: number;
  layer: number | Int32Array;
  pos: Int32Array;
  token: Int32Array;
  modality: Uint8Array; // MOD_* codes
  routed: Routed;
  K: number;
  phase?: readonly string[];
}

export interface SinkOptions {
  fullProbs: boolean;
  numExperts?: number; // known up front (config, logits width); else inferred from the ids
  extraColumns?: { name: string; type: 'VARCHAR' | 'INTEGER' }[];
  /** add a phase column when the first rows have one (formats where the input may or may not say) */
  phaseAuto?: boolean;
}

const FLUSH_ROWS = 1 << 15;
const UNKNOWN_E = 32767; // expert is SMALLINT: any id fits until we know the real count

/**
 * Collects importer rows and streams them to the trace writer in batches of ~32k rows. Opens the
 * writer at the first rows (top-k is known only then), checks what every format must satisfy
 * (one top-k size, ids in range, the same MoE layers with the same token count in every sample),
 * and fills meta.json.
 */
export class ImportSink {
  private writer: TraceWriterThread | null = null;
  private K = 0;
  private E: number | undefined;
  private maxExpert = -1;
  private maxLayer = -1;
  private nextSample = 0;
  private pendingSamples: SampleRow[] = [];
  private gates = true;
  private buf: LayerRows[] = [];
  private bufRows = 0;
  /** every id in buf was checked in 0..E-1 by its routing step (routed.idsBelow) */
  private bufChecked = true;
  private readonly perSample = new Map<number, Map<number, number>>(); // sample -> layer -> rows
  private readonly phases = new Dictionary();
  private readonly phaseCache = new WeakMap<readonly string[], Uint16Array>();
  private refLayers: { sample: number; layers: number[] } | null = null;
  rows = 0;

  /** where the expert count came from, for the error when a record disagrees */
  private eFrom: string;

  constructor(readonly dir: string, readonly opts: SinkOptions) {
    this.E = opts.numExperts;
    this.eFrom = 'given (--num-experts/--config)';
  }

  get numExperts(): number | undefined {
    return this.E;
  }

  /** The width of the router's scores fixes the expert count (before the first rows). */
  setNumExperts(E: number, where: string): void {
    if (this.E === undefined && !this.writer) {
      this.E = E;
      this.eFrom = `in ${where}`;
    } else if (this.E === undefined) throw new InputError(`${where}: router scores after records with expert ids only (the expert count was left to the data): pass --num-experts or --config`);
    else if (this.E !== E) throw new InputError(`${where}: ${E} experts, but ${this.E} ${this.eFrom}`);
  }

  get nextSampleIndex(): number {
    return this.nextSample;
  }

  /** The producer saved no gate weights: the trace's gate column is NULL. */
  dropGates(): void {
    this.gates = false;
    this.writer?.dropGates();
  }

  /** Record a sample (samples.parquet) and return its index. */
  async addSample(text: string, source: string, domain: string | null = null, tokens: string[] | null = null, extras?: SampleExtras): Promise<number> {
    const sample = this.nextSample++;
    this.pendingSamples.push({ sample, text, source, domain, tokens, images: extras?.images ?? [], image_grids: extras?.imageGrids ?? null });
    if (this.writer) await this.flushSamples();
    return sample;
  }

  async add(r: LayerRows): Promise<void> {
    const n = r.pos.length;
    if (r.token.length !== n || r.modality.length !== n || r.routed.experts.length !== n * r.K || r.routed.gates.length !== n * r.K) {
      throw new Error(`importer bug at ${r.where}: row arrays differ in length`);
    }
    if (this.K === 0) this.K = r.K;
    else if (r.K !== this.K) throw new InputError(`${r.where}: top-k is ${r.K} but earlier records have ${this.K}`);
    if (this.opts.fullProbs && !r.routed.probs) throw new InputError(`${r.where}: --full-probs needs the router's full scores, which this input does not have`);
    this.checkExperts(r);
    const counts = this.perSample.get(r.sample) ?? new Map<number, number>();
    this.perSample.set(r.sample, counts);
    if (typeof r.layer === 'number') {
      if (r.layer < 0 || r.layer > 32767) throw new InputError(`${r.where}: layer ${r.layer} outside 0..32767`);
      counts.set(r.layer, (counts.get(r.layer) ?? 0) + n);
      this.maxLayer = Math.max(this.maxLayer, r.layer);
    } else {
      for (const l of r.layer) {
        if (l < 0 || l > 32767) throw new InputError(`${r.where}: layer ${l} outside 0..32767`);
        counts.set(l, (counts.get(l) ?? 0) + 1);
        if (l > this.maxLayer) this.maxLayer = l;
      }
    }
    if (!this.writer) {
      if (this.opts.phaseAuto && r.phase && !this.opts.extraColumns?.some((c) => c.name === 'phase')) this.opts.extraColumns = [...(this.opts.extraColumns ?? []), { name: 'phase', type: 'VARCHAR' }];
      this.writer = await TraceWriterThread.open(this.dir, {
        topK: this.K,
        numExperts: this.E ?? Math.max(UNKNOWN_E, this.K),
        fullProbs: this.opts.fullProbs,
        extraColumns: this.opts.extraColumns,
      });
      if (!this.gates) this.writer.dropGates();
      await this.flushSamples();
    }
    // ids without gates: tell the writer before rows go out, so the gate column is written NULL once
    if (r.routed.noGates && this.gates) this.dropGates();
    this.buf.push(r);
    this.bufRows += n;
    if (!this.idsChecked(r)) this.bufChecked = false;
    this.rows += n;
    if (this.bufRows >= FLUSH_ROWS) await this.flush();
  }

  /** The routing step already checked r's ids against the known expert count (Routed.idsBelow). */
  private idsChecked(r: LayerRows): boolean {
    return this.E !== undefined && r.routed.idsBelow !== undefined && r.routed.idsBelow <= this.E;
  }

  /** Ids in range: the highest id of the record decides, the first offending one is named. */
  private checkExperts(r: LayerRows): void {
    // ids the routing step already bounded by the known expert count: nothing to learn from them
    if (this.idsChecked(r)) return;
    const ex = r.routed.experts;
    const max = maxOf(ex);
    if (max <= this.maxExpert) return;
    if ((this.E === undefined || max < this.E) && max <= 32767) {
      this.maxExpert = max;
      return;
    }
    for (let i = 0; i < ex.length; i++) {
      const e = ex[i];
      if (this.E !== undefined && e >= this.E) throw new InputError(`${r.where}: token ${Math.floor(i / r.K)}: expert id ${e} outside 0..${this.E - 1}`);
      if (e > 32767) throw new InputError(`${r.where}: token ${Math.floor(i / r.K)}: expert id ${e} is too large`);
    }
  }

  /**
   * A sample is complete: every MoE layer must have routed the same number of tokens, and the
   * MoE layers must be those of the other samples.
   */
  endSample(sample: number, where: string, ragged = false): void {
    const counts = this.perSample.get(sample);
    this.perSample.delete(sample);
    if (!counts || counts.size === 0 || ragged) return;
    const layers = [...counts.keys()].sort((a, b) => a - b);
    const first = counts.get(layers[0])!;
    for (const l of layers) {
      if (counts.get(l) !== first) throw new InputError(`${where}: layers disagree: layer ${layers[0]} routed ${first} tokens but layer ${l} routed ${counts.get(l)}`);
    }
    if (!this.refLayers) this.refLayers = { sample, layers };
    else if (layers.join(',') !== this.refLayers.layers.join(',')) {
      throw new InputError(`${where}: layers disagree: this sample has MoE layers [${fmtList(layers)}] but sample ${this.refLayers.sample} has [${fmtList(this.refLayers.layers)}]`);
    }
  }

  /** Close samples not yet ended (formats that only know sample ends at end of input). */

  private async flushSamples(): Promise<void> {
    for (const s of this.pendingSamples) await this.writer!.appendSample(s);
    this.pendingSamples = [];
  }

  private async flush(): Promise<void> {
    if (!this.writer || this.bufRows === 0) return;
    const n = this.bufRows;
    const K = this.K;
    // buffers the writer's thread moved back after the last batches (every value is written below)
    const w = this.writer;
    const ints = (len: number) => new Int32Array(w.takeBuffer(4 * len));
    const sample = ints(n);
    const pos = ints(n);
    const token = ints(n);
    const layer = ints(n);
    const experts = ints(n * K);
    // no gates recorded: the writer writes the gate column NULL, so the placeholders stay here
    const gates = this.gates ? new Float32Array(w.takeBuffer(4 * n * K)) : new Float32Array(0);
    const E = this.E ?? 0;
    const probs = this.opts.fullProbs ? new Float32Array(w.takeBuffer(4 * n * E)) : undefined;
    const phase = this.opts.extraColumns?.some((c) => c.name === 'phase') ? new Uint16Array(w.takeBuffer(2 * n)) : undefined;
    const codesOnly = this.buf.every((r) => maxByte(r.modality) <= 2);
    const modCodes = new Uint8Array(w.takeBuffer(n));
    let o = 0;
    for (const r of this.buf) {
      const m = r.pos.length;
      sample.fill(r.sample, o, o + m);
      pos.set(r.pos, o);
      token.set(r.token, o);
      if (typeof r.layer === 'number') layer.fill(r.layer, o, o + m);
      else layer.set(r.layer, o);
      experts.set(r.routed.experts, o * K);
      if (gates.length) gates.set(r.routed.gates, o * K);
      if (probs) probs.set(r.routed.probs!, o * E);
      modCodes.set(r.modality, o);
      if (phase) this.phaseCodes(r, phase, o);
      o += m;
    }
    const modality = codesOnly ? modCodes : Array.from(modCodes, (c) => MODALITIES[c]);
    const extra = phase ? { phase: { codes: phase, names: this.phases.names.slice() } } : undefined;
    const expertsBelow = this.bufChecked ? this.E : undefined;
    await this.writer.appendRouting({ sample, pos, modality, token, layer, experts, gates, probs, extra, expertsBelow }, true);
    this.buf = [];
    this.bufRows = 0;
    this.bufChecked = true;
  }

  /** Dictionary codes of r's phase strings into `out` at `o`; the layers of a sample share one array, coded once. */
  private phaseCodes(r: LayerRows, out: Uint16Array, o: number): void {
    const m = r.pos.length;
    const p = r.phase;
    let codes = p && p.length === m ? this.phaseCache.get(p) : undefined;
    if (codes) {
      out.set(codes, o);
      return;
    }
    for (let i = 0; i < m; i++) out[o + i] = this.phases.code(p?.[i] ?? '');
    if (p && p.length === m) this.phaseCache.set(p, out.slice(o, o + m));
  }

  /** Write the trace; `meta.num_layers` defaults to the highest layer seen + 1. */
  async finish(meta: { num_layers?: number; router_scoring: string; data: TraceMetaInput['data'] } & Record<string, unknown>, where: string): Promise<{ meta: TraceMeta; inferredExperts: boolean }> {
    if (!this.writer || this.rows === 0) throw new InputError(`${where}: no routing records found`);
    await this.flush();
    await this.flushSamples();
    if (!this.gates) this.writer.dropGates();
    const inferredExperts = this.E === undefined;
    const numExperts = this.E ?? this.maxExpert + 1;
    const numLayers = meta.num_layers ?? this.maxLayer + 1;
    if (numLayers <= this.maxLayer) throw new InputError(`${where}: routing has layer ${this.maxLayer} but the model has ${numLayers} layers`);
    const full = await this.writer.finish({
      ...meta,
      num_layers: numLayers,
      num_experts: Math.max(numExperts, this.K),
      num_experts_source: inferredExperts ? 'inferred: highest expert id + 1 (pass --num-experts or --config to be exact)' : 'given',
    } as TraceMetaInput);
    return { meta: full, inferredExperts };
  }

  async abort(): Promise<void> {
    if (this.writer) await this.writer.abort();
  }
}

function fmtList(a: number[]): string {
  return a.length > 12 ? `${a.slice(0, 6).join(',')},...,${a.slice(-3).join(',')} (${a.length})` : a.join(',');
}
