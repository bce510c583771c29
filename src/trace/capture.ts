import { join, resolve } from 'node:path';
import { type Checkpoint } from '../model/checkpoint.js';
import { dims } from '../model/config.js';
import { availableParallelism } from 'node:os';
import { DEFAULT_MODEL_DIR, loadCheckpoint } from '../io/checkpoint-files.js';
import { sampleText } from '../data/encode.js';
import type { Sample } from '../data/sample.js';
import { openDataSource } from '../data/source.js';
import type { DataSpec } from '../data/spec.js';
import { checkWritableParent, writeDirAtomic } from '../util/atomic.js';
import { LIMITS, checkInt, firstNonFinite } from '../util/limits.js';
import { InputError } from '../util/errors.js';
import { guardOutput } from '../util/output-guard.js';
import { parseDataSpec } from '../data/spec.js';
import { Progress } from '../util/progress.js';
import type { TraceMeta } from './meta.js';
import { TraceWriter, type RoutingRows } from './writer.js';
import { ForwardPool } from './forward-pool.js';
import type { BatchRun, SequenceRows } from './forward-batch.js';

export interface CaptureOptions {
  /** Checkpoint folder (default: the bundled models/efmoe-shapes), or an already loaded checkpoint. */
  model?: string | { dir: string; checkpoint: Checkpoint };
  /** `shapes[:N[:SEED]]` or a `.jsonl` file (SPEC §5). */
  data: string | DataSpec;
  /** Trace folder to write (atomically: a failure leaves no folder and keeps a previous one). */
  out: string;
  /** Also store the router's full distribution (`prob` column). */
  fullProbs?: boolean;
  /** Samples per forward pass (default 32). */
  batchSize?: number;
  /** Forward passes run in this many worker threads (default: 2, or 1 on a one-core machine); 1 = inline. */
  threads?: number;
  /**
   * Id of the first sample (default 0): captures of one model on several ranks or machines use
   * disjoint ranges, so that `moescope merge` combines them into one trace.
   */
  firstSample?: number;
  /** Called after each batch. */
  onProgress?: (done: number, total: number) => void;
  /** Progress bar on stderr for long runs (default true). */
  progress?: boolean;
  /** Replace an existing --out folder that is not a trace (never an input). */
  force?: boolean;
}

export interface CaptureResult {
  meta: TraceMeta;
  samples: number;
  tokens: number; // sequence positions run through the model
  seconds: number;
}

/**
 * One batch's rows in the trace's layout (sample-major, then layer, then position), in arrays kept
 * from batch to batch: the writer copies a batch's rows before appendRouting returns, so a batch's
 * arrays are free again then (fresh ones per batch were ~0.7 MB of garbage each).
 */
class BatchRows {
  private cap = 0;
  private sample = new Int32Array(0);
  private pos = new Int32Array(0);
  private token = new Int32Array(0);
  private layer = new Int32Array(0);
  private modality = new Uint8Array(0);
  private experts = new Int32Array(0);
  private gates = new Float32Array(0);
  private probs = new Float32Array(0);

  constructor(private readonly K: number, private readonly E: number, private readonly fullProbs: boolean) {}

  fill(seqs: SequenceRows[], first: number, res: BatchRun['result']): RoutingRows {
    const { K, E, fullProbs } = this;
    const L = res.layers.length;
    const n = res.N * L;
    if (n > this.cap) this.grow(Math.max(n, Math.ceil(1.25 * this.cap)));
    const sample = this.sample.subarray(0, n), pos = this.pos.subarray(0, n), token = this.token.subarray(0, n), layer = this.layer.subarray(0, n);
    const modality = this.modality.subarray(0, n), experts = this.experts.subarray(0, n * K), gates = this.gates.subarray(0, n * K);
    const probs = fullProbs ? this.probs.subarray(0, n * E) : undefined;
    let o = 0;
    seqs.forEach((s, b) => {
      const r0 = res.rowStart[b];
      for (let l = 0; l < L; l++) {
        const ly = res.layers[l];
        sample.fill(first + b, o, o + s.T);
        layer.fill(l, o, o + s.T);
        for (let t = 0; t < s.T; t++) pos[o + t] = t;
        token.set(s.token, o);
        modality.set(s.modality, o);
        experts.set(ly.experts.subarray(r0 * K, (r0 + s.T) * K), o * K);
        gates.set(ly.gates.subarray(r0 * K, (r0 + s.T) * K), o * K);
        if (probs) probs.set(ly.probs!.subarray(r0 * E, (r0 + s.T) * E), o * E);
        o += s.T;
      }
    });
    return { sample, pos, modality, token, layer, experts, gates, probs };
  }

  private grow(cap: number): void {
    const { K, E, fullProbs } = this;
    this.sample = new Int32Array(cap);
    this.pos = new Int32Array(cap);
    this.token = new Int32Array(cap);
    this.layer = new Int32Array(cap);
    this.modality = new Uint8Array(cap);
    this.experts = new Int32Array(cap * K);
    this.gates = new Float32Array(cap * K);
    if (fullProbs) this.probs = new Float32Array(cap * E);
    this.cap = cap;
  }
}

/**
 * `moescope capture`: run a checkpoint over a data source and stream its routing to a trace
 * folder (SPEC §2). Batches are encoded, run and written one at a time, so memory does not grow
 * with the number of samples. Bad input (checkpoint, data spec, a JSONL line, an image) throws
 * InputError before or during the run, and no output folder is left behind.
 */
export async function captureTrace(opts: CaptureOptions): Promise<CaptureResult> {
  const t0 = Date.now();
  const batchSize = checkInt('--batch', opts.batchSize ?? 32, 1, LIMITS.batch);
  const threads = checkInt('--threads', opts.threads ?? Math.min(2, availableParallelism()), 1, LIMITS.threads);
  const fullProbs = opts.fullProbs ?? false;
  const modelDir = typeof opts.model === 'object' ? opts.model.dir : opts.model ?? DEFAULT_MODEL_DIR;
  const dataSpec = typeof opts.data === 'string' ? parseDataSpec(opts.data) : opts.data;
  // SPEC §6: before any work, --out must be new, empty or a trace, and no input may be in it
  guardOutput(opts.out, 'trace', { inputs: [modelDir, ...(dataSpec.kind === 'jsonl' ? [dataSpec.path] : [])], force: opts.force });
  checkWritableParent(opts.out);
  // the workers load their code while this thread reads the checkpoint and opens the data
  const pool = new ForwardPool(threads);
  let ck: Checkpoint, source: Awaited<ReturnType<typeof openDataSource>>;
  try {
    ck = typeof opts.model === 'object' ? opts.model.checkpoint : loadCheckpoint(modelDir);
    pool.load(ck);
    source = await openDataSource(dataSpec);
  } catch (e) {
    await pool.close();
    throw e;
  }
  const { config } = ck;
  const { E, K, L } = dims(config);
  const progress = opts.progress === false ? null : new Progress('capture', source.total);


  let samples = 0, tokens = 0;
  const first = opts.firstSample ?? 0;
  // Ctrl-C / kill: stop after the current batch and let writeDirAtomic remove the partial folder
  let interrupted: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = sig;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const meta = await writeDirAtomic(opts.out, async (dir) => {
      // The writer runs in this thread, the routing files too: the forward pass keeps both cores busy,
      // so a thread of its own for either only added an isolate to start and compile for, and a copy
      // of each batch to post (measured: a writer thread 4-6% slower end to end, a shard thread 3-7%).
      const writer = await TraceWriter.open(dir, { topK: K, numExperts: E, fullProbs });
      const rows = new BatchRows(K, E, fullProbs);
      // batches in flight, oldest first: encoded and run by the pool, written in order
      type Pending = { batch: Sample[]; run: Promise<BatchRun> };
      const inFlight: Pending[] = [];
      const write = async (p: Pending) => {
        const { result: res, seqs, pngs } = await p.run;
        // finite weights can still overflow: a NaN gate must stop the run, not enter the trace
        res.layers.forEach((ly, l) => {
          if (firstNonFinite(ly.gates) >= 0 || (ly.probs && firstNonFinite(ly.probs) >= 0)) {
            throw new InputError(`${join(modelDir, 'model.safetensors')}: the router of layer ${l} gives non-finite gates (weights too large?); nothing written`);
          }
        });
        await writer.appendRouting(rows.fill(seqs, first + samples, res));
        for (let b = 0; b < p.batch.length; b++) {
          const s = p.batch[b];
          await writer.appendSample({ sample: first + samples + b, text: sampleText(s), images: pngs[b], source: s.source });
        }
        samples += p.batch.length;
        tokens += res.N;
        opts.onProgress?.(samples, source.total);
        progress?.update(samples, `${Math.round(tokens / Math.max((Date.now() - t0) / 1000, 1e-3))} tokens/s`);
      };
      const submit = async (batch: Sample[]) => {
        const run = pool.run(batch, fullProbs);
        run.catch(() => {}); // awaited in order by write(); avoid an unhandled rejection meanwhile
        inFlight.push({ batch, run });
        while (inFlight.length > 4 * pool.threads) await write(inFlight.shift()!);
      };
      try {
        let batch: Sample[] = [];
        for await (const s of source.samples()) {
          if (interrupted) throw new Error(`interrupted (${interrupted}); nothing written`);
          batch.push(s);
          if (batch.length === batchSize) {
            await submit(batch);
            batch = [];
          }
        }
        if (batch.length) await submit(batch);
        while (inFlight.length) await write(inFlight.shift()!);
        return await writer.finish({
          num_layers: L,
          router_scoring: 'softmax',
          model: { path: resolve(modelDir), config: { ...config } },
          data: source.description,
        });
      } catch (e) {
        await writer.abort();
        throw e;
      }
    }, 'trace');
    progress?.done();
    return { meta, samples, tokens, seconds: (Date.now() - t0) / 1000 };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pool.close();
  }
}
