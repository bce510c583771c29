import { WorkerPool } from '../util/worker-pool.js';
import { InferenceWorkspace } from '../model/efmoe.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { Sample } from '../data/sample.js';
import type { WorkerRequest } from './forward-worker.js';
import { runBatch, type BatchRun } from './forward-batch.js';

/**
 * Runs whole batches (runBatch: encode, forward, PNG), in worker threads when `threads` > 1 (each
 * holds a copy of the weights; batches are independent, so the routing is the same as in one thread)
 * or inline otherwise. Results come back as promises; the caller keeps the order.
 */
export class ForwardPool {
  /** null: one thread, batches run inline */
  private readonly pool: WorkerPool<BatchRun> | null = null;
  private model: Checkpoint | null = null;
  /** Inline runs (one thread): the caller does not change the weights during a capture. */
  private ws: InferenceWorkspace | null = null;

  /** Starts the workers (they load their code meanwhile); load() then gives them the model. */
  constructor(threads: number) {
    if (threads > 1) this.pool = new WorkerPool<BatchRun>(new URL('./forward-worker.js', import.meta.url), threads, 'forward worker');
  }

  load(model: Checkpoint): void {
    this.model = model;
    this.ws = new InferenceWorkspace(model.config, { fixedWeights: true });
    if (!this.pool) return;
    // one read-only copy of the weights that every worker sees (each copies it into its WASM memory)
    const flat = model.params.flat;
    const shared = new Float32Array(new SharedArrayBuffer(flat.byteLength));
    shared.set(flat);
    this.pool.broadcast({ type: 'init', config: model.config, flat: shared, vocab: model.tokenizer.vocab } satisfies WorkerRequest);
  }

  get threads(): number {
    return Math.max(1, this.pool?.size ?? 1);
  }

  run(batch: Sample[], probs: boolean): Promise<BatchRun> {
    if (this.model === null || this.ws === null) throw new Error('ForwardPool: load() a model first');
    if (!this.pool) {
      try {
        return Promise.resolve(runBatch(this.model, this.model.tokenizer, this.ws, batch, probs));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.pool.run({ type: 'run', batch, probs } satisfies Omit<Extract<WorkerRequest, { type: 'run' }>, 'id'>);
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}
