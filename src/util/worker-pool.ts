import { parentPort, type Worker } from 'node:worker_threads';
import { InputError } from './errors.js';
import { startWorker } from './worker-options.js';

/**
 * A job's answer from a pool worker: its value, or the error it threw (an InputError stays one).
 * `back`: buffers the worker moves back to the caller either way (to be filled again).
 */
export type PoolReply<R> = { id: number; back?: ArrayBuffer[] } & ({ ok: true; value: R } | { ok: false; message: string; input: boolean; stack?: string });

/**
 * Worker threads that each run jobs of one kind (capture's forward batches, an import's top-k),
 * the least busy worker first; each job's promise settles with its answer, in whatever order the
 * workers finish (callers keep their own order). A worker that fails or stops fails every waiting
 * job and every later one.
 */
export class WorkerPool<R> {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly waiting = new Map<number, { resolve: (r: R) => void; reject: (e: Error) => void; worker: number }>();
  private nextId = 0;
  private failure: Error | null = null;
  private closing = false;

  /** `what` names the workers in the error when one stops; `onBack` takes the buffers moved back. */
  constructor(url: URL, threads: number, what: string, private readonly onBack?: (buffers: ArrayBuffer[]) => void) {
    for (let i = 0; i < threads; i++) {
      const w = startWorker(url);
      w.on('message', (m: PoolReply<R>) => this.onReply(m));
      w.on('error', (e: Error) => this.failAll(e));
      w.on('exit', (code) => {
        if (!this.closing) this.failAll(new Error(`${what} stopped (exit code ${code})`));
      });
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** A message every worker gets before its next job (e.g. the model to run). */
  broadcast(message: unknown): void {
    for (const w of this.workers) w.postMessage(message);
  }

  /** Post `job` (with an `id` added) to the least busy worker, moving `transfer`. */
  run(job: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<R> {
    if (this.failure) return Promise.reject(this.failure);
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i] < this.busy[w]) w = i;
    const id = this.nextId++;
    this.busy[w]++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, worker: w });
      this.workers[w].postMessage({ ...job, id }, transfer);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }

  private onReply(m: PoolReply<R>): void {
    if (m.back) this.onBack?.(m.back);
    const p = this.waiting.get(m.id);
    if (!p) return;
    this.waiting.delete(m.id);
    this.busy[p.worker]--;
    if (m.ok) p.resolve(m.value);
    else {
      const e = m.input ? new InputError(m.message) : new Error(m.message);
      if (!m.input && m.stack) e.stack = m.stack;
      p.reject(e);
    }
  }

  private failAll(e: Error): void {
    this.failure ??= e;
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
  }
}

/**
 * In a pool's worker: answer the job `id` with what `work` returns (its `transfer` buffers moved,
 * not copied), or with the error it throws; `back` goes back either way.
 */
export function answerJob<R>(id: number, work: () => { value: R; transfer?: ArrayBuffer[] }, back: ArrayBuffer[] = []): void {
  let reply: PoolReply<R>, transfer: ArrayBuffer[] = [];
  try {
    const r = work();
    reply = { id, ok: true, value: r.value };
    transfer = r.transfer ?? [];
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    reply = { id, ok: false, message: err.message, input: err instanceof InputError, stack: err.stack };
  }
  if (back.length) reply.back = back;
  parentPort!.postMessage(reply, [...transfer, ...back]);
}
