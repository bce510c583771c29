import type { ModelConfig } from '../model/config.js';
import { type Params, createParams } from '../model/params.js';
import type { EncodedSequence } from '../model/sequence.js';
import { createTrainState, forwardTrain, backwardTrain, type TrainState as ModelTrainState, type EfmoeModel } from '../model/efmoe.js';
import type { GradientSource, LossParts } from './trainer.js';
import { GradWorkerPool } from './grad-pool.js';

/** Rows (positions) of a batch: the sequences are concatenated without padding. */
export function batchRows(seqs: EncodedSequence[]): number {
  let n = 0;
  for (const s of seqs) n += s.T;
  return n;
}

/**
 * Loss and gradient of one micro-batch with the efmoe forward/backward of src/model/efmoe.ts.
 * Keeps its activation buffers between calls and grows them when a batch is longer.
 */
export class MicroBatchGrad {
  private state: ModelTrainState | null = null;
  private rows = 0;
  private readonly model: EfmoeModel;
  constructor(readonly config: ModelConfig, readonly params: Params) {
    this.model = { config, params };
  }

  /** Overwrite `grads` with the gradient of this micro-batch's loss. */
  run(seqs: EncodedSequence[], grads: Params): LossParts {
    const rows = batchRows(seqs);
    if (!this.state || rows > this.rows) {
      this.rows = Math.max(rows, Math.ceil(this.rows * 1.25));
      this.state = createTrainState(this.config, this.rows);
    }
    grads.flat.fill(0);
    const r = forwardTrain(this.model, seqs, this.state);
    backwardTrain(this.model, seqs, this.state, grads);
    return { loss: r.loss, ce: r.ce, aux: r.aux, z: r.z, targets: r.targets, tokens: rows, gateSum: r.gateSum, entropySum: r.entropySum };
  }
}

/** How a batch is split: always in MICRO halves, whatever the number of threads, so results do not depend on it. */
export const MICRO = 2;

export function splitBatch<T>(xs: T[]): T[][] {
  const half = Math.ceil(xs.length / MICRO);
  return [xs.slice(0, half), xs.slice(half)];
}

/**
 * Gradient source of a training run: the step's batch is split into two fixed micro-batches whose
 * losses are averaged (gradient accumulation). With `workers` = 2 the second micro-batch runs on a
 * worker thread at the same time; the sum is formed in the same order either way, so one thread
 * and two threads give the same bits.
 */
export class EfmoeGradientSource implements GradientSource {
  readonly params: Params;
  readonly gradParts: Params[];
  readonly grads: Float32Array;
  private readonly local: MicroBatchGrad;
  private pool: GradWorkerPool | null = null;
  private readonly workers: number;

  constructor(readonly config: ModelConfig, initial: Params, private readonly batchAt: (step: number) => EncodedSequence[], workers = 1) {
    const n = initial.flat.length;
    // shared memory so that a worker reads the parameters the optimizer just wrote and writes its gradient in place
    const shared = (k: number) => new Float32Array(new SharedArrayBuffer(4 * k));
    this.params = createParams(config, shared(n));
    this.params.flat.set(initial.flat);
    this.gradParts = [createParams(config, shared(n)), createParams(config, shared(n))];
    this.grads = new Float32Array(n);
    this.local = new MicroBatchGrad(config, this.params);
    this.workers = workers;
  }

  get flatParams(): Float32Array {
    return this.params.flat;
  }

  async lossAndGrad(step: number): Promise<LossParts> {
    const [a, b] = splitBatch(this.batchAt(step));
    if (this.workers > 1 && !this.pool) this.pool = new GradWorkerPool(this.config, this.params.flat, this.gradParts[1].flat);
    let rb: LossParts;
    let ra: LossParts;
    if (this.pool && b.length) {
      const pending = this.pool.run(b);
      ra = this.local.run(a, this.gradParts[0]);
      rb = await pending;
    } else {
      ra = this.local.run(a, this.gradParts[0]);
      rb = b.length ? this.local.run(b, this.gradParts[1]) : { loss: 0, ce: 0, aux: 0, z: 0, targets: 0, tokens: 0, gateSum: ra.gateSum.map(() => 0), entropySum: ra.entropySum.map(() => 0) };
    }
    const g = this.grads;
    const g0 = this.gradParts[0].flat;
    const g1 = this.gradParts[1].flat;
    if (b.length) for (let i = 0; i < g.length; i++) g[i] = 0.5 * (g0[i] + g1[i]);
    else g.set(g0);
    const m = b.length ? 0.5 : 1;
    return {
      loss: m * (ra.loss + rb.loss), ce: m * (ra.ce + rb.ce), aux: m * (ra.aux + rb.aux), z: m * (ra.z + rb.z),
      targets: ra.targets + rb.targets, tokens: ra.tokens + rb.tokens,
      gateSum: ra.gateSum.map((v, l) => v + rb.gateSum[l]), entropySum: ra.entropySum.map((v, l) => v + rb.entropySum[l]),
    };
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }
}
