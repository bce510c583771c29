import { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../model/config.js';
import type { EncodedSequence } from '../model/sequence.js';
import type { LossParts } from './trainer.js';

/**
 * One worker thread that computes the gradient of a micro-batch into a shared buffer while the
 * main thread does the other micro-batch. Parameters are shared memory too: the worker always
 * reads the values the optimizer wrote before the request was posted.
 */
export class GradWorkerPool {
  private readonly worker: Worker;
  private pending: { resolve: (r: LossParts) => void; reject: (e: Error) => void } | null = null;

  constructor(config: ModelConfig, params: Float32Array, grads: Float32Array) {
    this.worker = new Worker(new URL('./grad-worker.js', import.meta.url), {
      workerData: { config, params: params.buffer, grads: grads.buffer },
    });
    this.worker.on('message', (r: LossParts) => {
      const p = this.pending;
      this.pending = null;
      p?.resolve(r);
    });
    this.worker.on('error', (e: Error) => {
      const p = this.pending;
      this.pending = null;
      p?.reject(e);
    });
  }

  run(seqs: EncodedSequence[]): Promise<LossParts> {
    if (this.pending) throw new Error('gradient worker is busy');
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(seqs);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
