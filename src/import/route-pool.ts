import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { InputError } from '../util/errors.js';
import { workerOptions } from '../util/worker-options.js';
import { routeByRule, routeFromScores, type ChoiceRule, type Routed, type Scoring } from './routing.js';

/** One layer record's top-k from its router scores: the arguments of routeFromScores / routeByRule. */
export interface RouteJob {
  scores: Float32Array; // [T, E]
  T: number;
  E: number;
  K: number;
  scoring: Scoring;
  areProbs: boolean;
  normTopk: boolean;
  wantProbs: boolean;
  /** a bias-corrected / group-limited router (routeByRule), else the plain softmax/sigmoid top-k */
  rule?: ChoiceRule;
  bias?: Float32Array | null;
  where: string;
}

/** score buffers kept per worker for reuse (the driver keeps a few jobs ahead) */
const SPARE_PER_WORKER = 4;

export type RouteRequest = { id: number; job: RouteJob };
/** `scores`: the job's scores buffer, handed back for the next job (so neither thread makes garbage of it) */
export type RouteReply = { id: number; routed: Routed; scores: ArrayBuffer } | { id: number; error: string; input: boolean; stack?: string; scores: ArrayBuffer };

/** The job, routed in this thread. */
export function routeJob(j: RouteJob): Routed {
  return j.rule
    ? routeByRule(j.scores, j.T, j.E, j.K, j.rule, j.bias ?? null, j.areProbs, j.wantProbs, j.where)
    : routeFromScores(j.scores, j.T, j.E, j.K, j.scoring, j.areProbs, j.normTopk, j.wantProbs);
}

/**
 * Top-k from router scores in worker threads, so that an import of router logits (hf: a softmax
 * and a top-k per token per layer, the import's largest cost) uses the cores the reader and the
 * writer leave. Jobs are independent; results come back as promises and the driver keeps the
 * order. A job's error reaches the caller as the same InputError it would have thrown inline.
 */
export class RoutePool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly waiting = new Map<number, { resolve: (r: Routed) => void; reject: (e: Error) => void; worker: number }>();
  private nextId = 0;
  private failure: Error | null = null;
  private closing = false;
  /** score buffers back from the workers, reused for the next jobs' copies */
  private readonly spare: ArrayBuffer[] = [];

  constructor(threads = Math.min(2, availableParallelism())) {
    for (let i = 0; i < Math.max(1, threads); i++) {
      const w = new Worker(new URL('./route-worker.js', import.meta.url), workerOptions());
      w.on('message', (m: RouteReply) => this.onReply(m));
      w.on('error', (e: Error) => this.failAll(e));
      w.on('exit', (code) => {
        if (!this.closing) this.failAll(new Error(`routing worker stopped (exit code ${code})`));
      });
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  route(job: RouteJob): Promise<Routed> {
    if (this.failure) return Promise.reject(this.failure);
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i] < this.busy[w]) w = i;
    const id = this.nextId++;
    this.busy[w]++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, worker: w });
      // a compact copy of the scores, moved: they may be a view of a larger buffer (a whole
      // safetensors file), which posting the view itself would copy whole, job after job
      const n = job.scores.length;
      const at = this.spare.findIndex((b) => b.byteLength >= 4 * n);
      const buf = at >= 0 ? this.spare.splice(at, 1)[0] : new ArrayBuffer(4 * n);
      const scores = new Float32Array(buf, 0, n);
      scores.set(job.scores);
      this.workers[w].postMessage({ id, job: { ...job, scores } } satisfies RouteRequest, [buf]);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private onReply(m: RouteReply): void {
    const p = this.waiting.get(m.id);
    if (!p) return;
    this.waiting.delete(m.id);
    this.busy[p.worker]--;
    if (this.spare.length < 2 * SPARE_PER_WORKER * this.workers.length) this.spare.push(m.scores);
    if ('routed' in m) p.resolve(m.routed);
    else {
      const e = m.input ? new InputError(m.error) : new Error(m.error);
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
