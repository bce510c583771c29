import { Worker } from 'node:worker_threads';
import { workerOptions } from '../util/worker-options.js';
import { InferenceWorkspace } from '../model/efmoe.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { Sample } from '../data/sample.js';
import { InputError } from '../util/errors.js';
import type { WorkerReply, WorkerRequest } from './forward-worker.js';
import { runBatch, type BatchRun } from './forward-batch.js';

/**
 * Runs whole batches (runBatch: encode, forward, PNG), in worker threads when `threads` > 1 (each
 * holds a copy of the weights; batches are independent, so the routing is the same as in one thread)
 * or inline otherwise. Results come back as promises; the caller keeps the order.
 */
export class ForwardPool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly waiting = new Map<number, { resolve: (r: BatchRun) => void; reject: (e: Error) => void; worker: number }>();
  private nextId = 0;
  private failure: Error | null = null;
  private model: Checkpoint | null = null;
  /** Inline runs (one thread): the caller does not change the weights during a capture. */
  private ws: InferenceWorkspace | null = null;

  /** Starts the workers (they load their code meanwhile); load() then gives them the model. */
  constructor(threads: number) {
    if (threads <= 1) return;
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL('./forward-worker.js', import.meta.url), workerOptions());
      w.on('message', (m: WorkerReply) => this.onReply(m));
      w.on('error', (e: Error) => this.failAll(e));
      w.on('exit', (code) => {
        if (!this.closing) this.failAll(new Error(`forward worker stopped (exit code ${code})`));
      });
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  load(model: Checkpoint): void {
    this.model = model;
    this.ws = new InferenceWorkspace(model.config, { fixedWeights: true });
    if (!this.workers.length) return;
    // one read-only copy of the weights that every worker sees (each copies it into its WASM memory)
    const flat = model.params.flat;
    const shared = new Float32Array(new SharedArrayBuffer(flat.byteLength));
    shared.set(flat);
    for (const w of this.workers) w.postMessage({ type: 'init', config: model.config, flat: shared, vocab: model.tokenizer.vocab } satisfies WorkerRequest);
  }

  get threads(): number {
    return Math.max(1, this.workers.length);
  }

  run(batch: Sample[], probs: boolean): Promise<BatchRun> {
    if (this.model === null || this.ws === null) throw new Error('ForwardPool: load() a model first');
    if (!this.workers.length) {
      try {
        return Promise.resolve(runBatch(this.model, this.model.tokenizer, this.ws, batch, probs));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (this.failure) return Promise.reject(this.failure);
    // the least busy worker (ties: the lowest index)
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i] < this.busy[w]) w = i;
    const id = this.nextId++;
    this.busy[w]++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, worker: w });
      this.workers[w].postMessage({ type: 'run', id, batch, probs } satisfies WorkerRequest);
    });
  }

  private onReply(m: WorkerReply): void {
    const p = this.waiting.get(m.id);
    if (!p) return;
    this.waiting.delete(m.id);
    this.busy[p.worker]--;
    if (m.type === 'error') p.reject(m.input ? new InputError(m.message) : new Error(m.message));
    else p.resolve(m.run);
  }

  private closing = false;

  private failAll(e: Error): void {
    this.failure ??= e;
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
