import { resolve } from 'node:path';
import { PER_FILE_FORMATS, readFilesInParallel } from './parallel-read.js';
import { writeDirAtomic } from '../util/atomic.js';
import { TraceWriterThread } from '../trace/writer-thread.js';
import { InputError } from '../util/errors.js';
import { firstNonFinite } from '../util/limits.js';
import type { TraceMeta } from '../trace/meta.js';
import { routerBiasFor, type BiasTable } from './bias.js';
import type { RouterRule } from './layers.js';
import { resolveTokens, type ResolvedTokens } from './modality.js';
import type { FormatInfo, ImportOptions, ReaderContext } from './options.js';
import type { LayerRecord, SampleRecord } from './records.js';
import { looksLikeProbs, routeFromScores, sortTopK, type Routed, type Scoring } from './routing.js';
import { RoutePool, routeJob, type RouteJob } from './route-pool.js';
import { availableParallelism } from 'node:os';
import { ModalitySideFile } from './side-file.js';
import { ImportSink } from './sink.js';
import { TokenNamer } from './tokens.js';

/** Scores rows routed in this thread before the routing workers start (small imports and tests stay in one thread). */
const POOL_AFTER_ROWS = 1 << 16;
/** Layer records whose routing may run ahead of the writing, and their rows: bounds the memory held. */
const AHEAD_RECORDS = 16;
const AHEAD_ROWS = 1 << 16;

/** A layer record whose routing is under way, to be written in its turn. */
interface QueuedLayer {
  r: LayerRecord;
  s: OpenSample;
  layer: number;
  n: number;
  routed: Promise<Routed>;
}

interface OpenSample {
  sample: number;
  rows: number;
  tok: ResolvedTokens;
  phase?: readonly string[];
  where: string;
  iota?: Int32Array; // positions 0..rows-1, shared by the layers routing every token
}

/**
 * The one import driver: takes the records a format reader yields and does what every format
 * shares — samples and their modality (token-id rules, hints, the side file), layer mapping
 * (MoE ordinal, pipeline stage, 1-based -> decoder layer), scoring (softmax / sigmoid, logits vs
 * probabilities, bias-corrected and group-limited routers), top-k order and gates, all checks
 * (ids in range, finite scores and weights), and writing through the sink / TraceWriter.
 */
export class ImportDriver {
  private readonly samples = new Map<string, OpenSample>();
  private readonly side: ModalitySideFile | null;
  private probsDecision: boolean | null;
  private readonly gateKinds = new Set<string>(); // router | none
  private readonly orders = new Set<string>(); // ranked | unranked
  private readonly layerMap = new Map<string, number>();
  private bias: BiasTable | null = null;
  private sawScores = false;
  private sawProbs = false;
  /** layer records routed ahead (in the routing workers), written in record order */
  private readonly queued: QueuedLayer[] = [];
  private queuedRows = 0;
  private pool: RoutePool | null = null;
  private scoreRows = 0;

  constructor(readonly fmt: string, readonly opts: ImportOptions, readonly sink: ImportSink, readonly ctx: ReaderContext, readonly info: FormatInfo, private readonly namer: TokenNamer | null) {
    this.side = opts.sideFile ? new ModalitySideFile(opts.sideFile) : null;
    this.probsDecision = opts.routerOutput === 'auto' ? null : opts.routerOutput === 'probs';
    // once the routing workers run, readers read scores straight into memory a job can move to them
    ctx.scoreBuffer = (bytes) => this.pool?.lend(bytes) ?? null;
  }

  /** The router rule: --config, else what the reader learned (hf manifest), else flags. */
  get rule(): RouterRule | undefined {
    return this.opts.model?.rule ?? this.ctx.rule;
  }

  get scoring(): Scoring {
    return (this.opts.scoring ?? this.rule?.scoring ?? 'softmax') as Scoring;
  }

  get normTopk(): boolean {
    return this.opts.normTopk ?? this.rule?.normTopk ?? false;
  }

  async sampleStart(r: SampleRecord): Promise<void> {
    await this.flushLayers();
    if (this.samples.has(r.key)) throw new InputError(`${r.where}: sample ${r.key} appears twice`);
    if (r.phase && r.phase.length !== r.rows) throw new Error(`importer bug at ${r.where}: phase length`);
    let domain = r.domain ?? this.opts.domain ?? null;
    let tok: ResolvedTokens;
    const index = this.sink.nextSampleIndex;
    if (this.side) {
      const e = await this.side.get(index, r.where);
      domain = r.domain ?? e.domain ?? this.opts.domain ?? null;
      const hints = { ...e.hints, ...definedOnly(r.hints ?? {}) };
      tok = resolveTokens(`${e.where} (for ${r.where})`, r.rows, r.ids ?? e.ids, hints, this.opts.rules);
    } else tok = resolveTokens(r.where, r.rows, r.ids, r.hints ?? {}, this.opts.rules);
    const tokens = this.namer && tok.ids ? this.namer.name(tok.ids, tok.modality) : null;
    const sample = await this.sink.addSample(r.text ?? '', r.source, domain, tokens ?? r.extras?.tokens ?? null, r.extras);
    const phase = r.phase ?? (r.prefill !== undefined ? Array.from({ length: r.rows }, (_, t) => (t < r.prefill! ? 'prefill' : 'decode')) : undefined);
    this.samples.set(r.key, { sample, rows: r.rows, tok, phase, where: r.where });
  }

  async layer(r: LayerRecord): Promise<void> {
    const s = this.samples.get(r.key);
    if (!s) throw new Error(`importer bug at ${r.where}: layer record before its sample`);
    let layer: number, n: number;
    try {
      layer = this.mapLayer(r);
      n = r.pos ? r.pos.length : s.rows;
      if (r.pos) for (let i = 0; i < n; i++) if (!(r.pos[i] >= 0 && r.pos[i] < s.rows)) throw new InputError(`${r.where}: position ${r.pos[i]} outside the sample's 0..${s.rows - 1}`);
    } catch (e) {
      await this.flushLayers(); // an earlier record's error comes first, as when records were written one by one
      throw e;
    }
    if (n === 0) return;
    const routed = this.route(r, n, layer);
    routed.catch(() => undefined); // awaited in order by writeOldest
    this.queued.push({ r, s, layer, n, routed });
    this.queuedRows += n;
    while (this.queued.length > AHEAD_RECORDS || (this.queued.length > 1 && this.queuedRows > AHEAD_ROWS)) await this.writeOldest();
  }

  /** Write every layer record routed ahead (before anything else touches the sink). */
  async flushLayers(): Promise<void> {
    while (this.queued.length) await this.writeOldest();
  }

  private async writeOldest(): Promise<void> {
    const { r, s, layer, n, routed: pending } = this.queued.shift()!;
    this.queuedRows -= n;
    const routed = await pending;
    const take = <A extends Int32Array | Uint8Array>(a: A): A => {
      if (!r.pos) return a;
      const out = new (a.constructor as { new (n: number): A })(n);
      for (let i = 0; i < n; i++) out[i] = a[r.pos[i]];
      return out;
    };
    const pos = r.pos ?? (s.iota ??= iota(n));
    const phase = r.phase ?? (s.phase ? (r.pos ? Array.from(r.pos, (p) => s.phase![p]) : s.phase) : undefined);
    await this.sink.add({ where: r.where, sample: s.sample, layer, pos, token: take(s.tok.token), modality: take(s.tok.modality), routed, K: r.ids ? r.ids.K : routed.experts.length / n, phase });
  }

  async end(key: string, where: string): Promise<void> {
    await this.flushLayers();
    const s = this.samples.get(key);
    if (!s) return;
    this.samples.delete(key);
    this.sink.endSample(s.sample, where, this.info.ragged);
  }

  /** Producer layer -> decoder layer, recorded for meta.json. */
  private mapLayer(r: LayerRecord): number {
    const { opts } = this;
    let l = r.layer - opts.layerBase;
    if (l < 0) throw new InputError(`${r.where}: layer ${r.layer} is below --layer-base ${opts.layerBase}`);
    let from = `${r.layer}`;
    if (r.layerIndex === 'moe') {
      const map = opts.moeLayers ?? opts.model?.moeLayers;
      if (map) {
        if (l >= map.length) throw new InputError(`${r.where}: MoE layer ordinal ${l} but the model has ${map.length} MoE layers (--moe-layers/--config)`);
        l = map[l];
      }
      from = `moe ${r.layer}`;
    } else if (r.layerIndex === 'stage' && opts.pipeline && opts.layerBase === 0) {
      // stage-local decoder.layers.N: add the layers of the stages before (layer_number, 1-based, is already global)
      const st = r.stage ?? 0;
      const { stages, layers } = opts.pipeline;
      if (st >= stages) throw new InputError(`${r.where}: pipeline stage ${st} but --pipeline-parallel is ${stages}`);
      let per: number[];
      if (layers) per = layers;
      else {
        const L = opts.numLayers ?? opts.model?.numLayers;
        if (L === undefined) throw new InputError(`${r.where}: stage-local layers need the model's layer count to split it over ${stages} stages (--num-layers, --config or --pipeline-layers)`);
        if (L % stages !== 0) throw new InputError(`${r.where}: ${L} layers do not split evenly over ${stages} stages: give --pipeline-layers n0,n1,...`);
        per = new Array<number>(stages).fill(L / stages);
      }
      if (l >= per[st]) throw new InputError(`${r.where}: stage-local layer ${l} but stage ${st} has ${per[st]} layers`);
      let off = 0;
      for (let i = 0; i < st; i++) off += per[i];
      from = `stage ${st} layer ${r.layer}`;
      l += off;
    }
    if (!this.layerMap.has(from)) this.layerMap.set(from, l);
    return l;
  }

  private async route(r: LayerRecord, n: number, layer: number): Promise<Routed> {
    const { opts, sink } = this;
    if (r.scores) {
      const { data, E } = r.scores;
      if (data.length !== n * E) throw new Error(`importer bug at ${r.where}: scores length`);
      // scores routed into a top-k are checked row by row as they are routed (routeJob): a scan of every score here was a twentieth of a logits import
      if (r.ids) {
        const bad = firstNonFinite(data);
        if (bad >= 0) throw new InputError(`${r.where}: token ${Math.floor(bad / E)}: router score ${data[bad]} for expert ${bad % E} is not a finite number`);
      }
      sink.setNumExperts(E, r.where);
    }
    if (r.ids) {
      const { data, K, weights } = r.ids;
      if (weights) {
        const bad = firstNonFinite(weights);
        if (bad >= 0) throw new InputError(`${r.where}: token ${Math.floor(bad / K)}: weight ${weights[bad]} is not a finite number`);
      }
      let w = weights;
      let probs: Float32Array | undefined;
      if (!w && r.scores) {
        // the engine's choice with the router's probabilities as gates (Megatron's logits sidecar)
        const { data: sc, E } = r.scores;
        probs = routeFromScores(sc, n, E, 1, this.scoring, this.areProbs(r, sc, n, E), false, true).probs!;
        w = new Float32Array(n * K);
        for (let t = 0; t < n; t++) {
          let sum = 0;
          for (let j = 0; j < K; j++) {
            const e = data[t * K + j];
            if (!(e >= 0 && e < E)) throw new InputError(`${r.where}: token ${t}: expert id ${e} outside 0..${E - 1}`);
            sum += w[t * K + j] = probs[t * E + e];
          }
          if (this.normTopk) for (let j = 0; j < K; j++) w[t * K + j] /= sum || 1;
        }
        this.sawScores = true;
      }
      const routed = sortTopK(r.where, data, w, n, K, sink.numExperts);
      if (w) {
        this.gateKinds.add('router');
        this.orders.add('ranked');
      } else {
        routed.noGates = true;
        this.gateKinds.add('none');
        this.orders.add(opts.expertOrder ?? r.ids.order);
      }
      if (opts.fullProbs) {
        if (!r.scores) throw new InputError(`${r.where}: --full-probs needs the router's full scores, which this record does not have`);
        routed.probs = probs ?? routeFromScores(r.scores.data, n, r.scores.E, 1, this.scoring, this.areProbs(r, r.scores.data, n, r.scores.E), false, true).probs;
      }
      return routed;
    }
    if (!r.scores) throw new Error(`importer bug at ${r.where}: neither scores nor ids`);
    const { data, E } = r.scores;
    const K = opts.topK ?? opts.model?.topK;
    if (K === undefined) throw new InputError(`${r.where}: top-k unknown: pass --top-k or --config (num_experts_per_tok)`);
    if (K > E) throw new InputError(`${r.where}: top-k ${K} exceeds the ${E} experts`);
    const areProbs = this.areProbs(r, data, n, E);
    this.sawScores = true;
    this.gateKinds.add('router');
    this.orders.add('ranked');
    const rule = this.rule;
    if (rule?.unsupported) throw new InputError(`${r.where}: router scores cannot be turned into this model's choice: ${rule.unsupported}`);
    if (rule && (rule.biased || rule.nGroup > 1 || rule.scalingFactor !== 1)) {
      let bias: Float32Array | null = null;
      if (rule.biased) {
        bias = r.scores.bias ?? (await this.biasFor(layer, r.where, E, rule));
      }
      return this.routeScores({ scores: data, T: n, E, K, scoring: this.scoring, areProbs, normTopk: this.normTopk, wantProbs: opts.fullProbs, rule: { ...rule, scoring: this.scoring, normTopk: this.normTopk }, bias, where: r.where });
    }
    return this.routeScores({ scores: data, T: n, E, K, scoring: this.scoring, areProbs, normTopk: this.normTopk, wantProbs: opts.fullProbs, where: r.where });
  }

  /**
   * Top-k from scores: in this thread until the input has shown itself large, then in routing
   * workers (on a machine with more than one core), so the softmax and top-k of the next records
   * run beside the writing of this one.
   */
  private routeScores(job: RouteJob): Promise<Routed> {
    this.scoreRows += job.T;
    if (!this.pool && (this.opts.routeThreads !== undefined || this.scoreRows > POOL_AFTER_ROWS)) {
      const threads = this.opts.routeThreads ?? (availableParallelism() > 1 ? 2 : 0);
      if (threads > 0) this.pool = new RoutePool(threads);
    }
    return this.pool ? this.pool.route(job) : Promise.resolve(routeJob(job));
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }

  private async biasFor(layer: number, where: string, E: number, rule: RouterRule): Promise<Float32Array> {
    if (!this.opts.routerBias) {
      throw new InputError(
        `${where}: ${rule.family} picks experts with e_score_correction_bias${rule.nGroup > 1 ? ` and a group-limited top-k (n_group ${rule.nGroup}, topk_group ${rule.topkGroup})` : ''}; ` +
          'the bias is a model weight, not in config.json: give --router-bias model.safetensors (or save e_score_correction_bias.{layer} beside the logits), or import the experts the block chose (topk_ids.{layer})',
      );
    }
    this.bias ??= routerBiasFor(this.opts.routerBias);
    return this.bias.get(layer, E, where);
  }

  private areProbs(r: LayerRecord, data: Float32Array, n: number, E: number): boolean {
    if (r.scores?.probs) return true;
    if (this.probsDecision === null) this.probsDecision = looksLikeProbs(data, n, E, this.scoring);
    if (this.probsDecision) this.sawProbs = true;
    return this.probsDecision;
  }

  /** meta.json keys the driver knows. */
  metaKeys(): Record<string, unknown> {
    const gates = this.gateKinds.size === 1 && this.gateKinds.has('router') ? 'router' : this.gateKinds.has('router') ? 'mixed: some records have no gate weights (gate column NULL)' : 'none: the producer saved expert ids only (gate column NULL)';
    const order = this.orders.size === 1 && this.orders.has('ranked') ? 'ranked' : 'unranked';
    const rule = this.rule;
    return {
      gates,
      expert_order: order,
      router_output: !this.sawScores ? 'ids' : this.sawProbs ? 'probabilities (not re-normalised)' : `logits (${this.scoring} applied)`,
      layer_map: Object.fromEntries(this.layerMap),
      layer_base: this.opts.layerBase,
      ...(rule && (rule.biased || rule.nGroup > 1 || rule.scalingFactor !== 1) && this.sawScores
        ? { router_rule: { family: rule.family, e_score_correction_bias: rule.biased, n_group: rule.nGroup, topk_group: rule.topkGroup, routed_scaling_factor: rule.scalingFactor, norm_topk_prob: this.normTopk } }
        : {}),
    };
  }

  get hasGates(): boolean {
    return this.gateKinds.size === 1 && this.gateKinds.has('router');
  }

  async finishSide(samples: number): Promise<void> {
    if (this.side) await this.side.finish(samples);
  }

  async endAll(where: string): Promise<void> {
    await this.flushLayers();
    for (const k of [...this.samples.keys()]) await this.end(k, where);
  }
}

function definedOnly<T extends object>(h: T): Partial<T> {
  return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function iota(n: number, start = 0): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = start + i;
  return a;
}

/**
 * Convert another engine's routing dump into a trace folder (SPEC §2). The folder appears only
 * when the whole input converted; any bad record aborts with an InputError naming it.
 */
export async function runImport(fmt: string, info: FormatInfo, inputs: string[], out: string, opts: ImportOptions): Promise<{ meta: TraceMeta; notes: string[] }> {
  if (inputs.length === 0) throw new InputError('import: no input files');
  for (const i of inputs) if (resolve(i) === resolve(out)) throw new InputError(`${out}: the output would overwrite an input`);
  if (opts.fullProbs && !info.scores) throw new InputError(`import ${fmt}: --full-probs needs the router's scores, which ${fmt} dumps do not have (hf, or megatron with the logits sidecar)`);
  // the writer's thread loads while the first records are read
  TraceWriterThread.prestart();
  const namer = opts.tokenizer ? await TokenNamer.load(opts.tokenizer) : null;
  return writeDirAtomic(out, async (dir) => {
    const sink = new ImportSink(dir, {
      fullProbs: opts.fullProbs,
      numExperts: opts.numExperts ?? opts.model?.numExperts,
      extraColumns: info.phase ? [{ name: 'phase', type: 'VARCHAR' }] : undefined,
      phaseAuto: info.ragged,
    });
    const ctx: ReaderContext = { opts, notes: new Set(), meta: {} };
    const driver = new ImportDriver(fmt, opts, sink, ctx, info, namer);
    try {
      let last = inputs[inputs.length - 1];
      // line-per-request formats parse in worker threads, one file each (ordered as if read in turn);
      // a modality side file follows the samples of all inputs in order, so it keeps one reader
      const records = PER_FILE_FORMATS.has(fmt) && !opts.sideFile ? readFilesInParallel(fmt, inputs, ctx) : info.read(inputs, ctx);
      for await (const r of records) {
        if (r.kind === 'sample') await driver.sampleStart(r);
        else if (r.kind === 'layer') await driver.layer(r);
        else await driver.end(r.key, r.where);
        last = r.where;
      }
      await driver.endAll(last);
      const notes = [...ctx.notes];
      if (!driver.hasGates) sink.dropGates();
      const { meta, inferredExperts } = await sink.finish(
        {
          num_layers: opts.numLayers ?? ctx.numLayers ?? opts.model?.numLayers,
          router_scoring: opts.scoring ?? driver.rule?.scoring ?? (driver.metaKeys().router_output === 'ids' ? 'unknown' : driver.scoring),
          model: (ctx.meta.model as TraceMeta['model']) ?? (opts.model?.config ? { path: resolve(opts.model.path), config: opts.model.config } : null),
          data: { importer: fmt, inputs: inputs.map((p) => resolve(p)), modality: opts.sideFile ? resolve(opts.sideFile) : null, tokenizer: opts.tokenizer ? resolve(opts.tokenizer) : null },
          import_notes: notes,
          ...driver.metaKeys(),
          ...ctx.meta,
        },
        inputs.join(', '),
      );
      await driver.finishSide(meta.samples ?? 0);
      if (inferredExperts) notes.push(`number of experts inferred as ${meta.num_experts} (highest id + 1); pass --num-experts or --config if some experts never got a token`);
      return { meta, notes };
    } catch (e) {
      await sink.abort();
      throw e;
    } finally {
      await driver.close();
    }
  });
}
