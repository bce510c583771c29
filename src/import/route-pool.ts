import { availableParallelism } from 'node:os';
import { WorkerPool } from '../util/worker-pool.js';
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

/** score buffers kept per worker for reuse: enough for the jobs the driver keeps ahead (16) to be read into lent ones */
const SPARE_PER_WORKER = 12;

export type RouteRequest = { id: number; job: RouteJob };

/** The job, routed in this thread; a score that is not finite is an InputError naming it (both routines check). */
export function routeJob(j: RouteJob): Routed {
  return j.rule
    ? routeByRule(j.scores, j.T, j.E, j.K, j.rule, j.bias ?? null, j.areProbs, j.wantProbs, j.where)
    : routeFromScores(j.scores, j.T, j.E, j.K, j.scoring, j.areProbs, j.normTopk, j.wantProbs, j.where);
}

/**
 * Top-k from router scores in worker threads, so that an import of router logits (hf: a softmax
 * and a top-k per token per layer, the import's largest cost) uses the cores the reader and the
 * writer leave. Jobs are independent; results come back as promises and the driver keeps the
 * order. A job's error reaches the caller as the same InputError it would have thrown inline.
 */
export class RoutePool {
  private readonly pool: WorkerPool<Routed>;
  /** score buffers moved back by the workers, reused for the next jobs' copies */
  private readonly spare: ArrayBuffer[] = [];
  /** buffers lent to a reader, which a job may move as they are (the reader keeps no other use of them) */
  private readonly lent = new WeakSet<ArrayBuffer>();

  constructor(threads = Math.min(2, availableParallelism())) {
    this.pool = new WorkerPool<Routed>(new URL('./route-worker.js', import.meta.url), Math.max(1, threads), 'routing worker', (back) => {
      for (const b of back) if (this.spare.length < SPARE_PER_WORKER * this.pool.size) this.spare.push(b);
    });
  }

  /** Memory for `bytes` of scores, for a reader to read a job's scores into (no copy when routed). */
  lend(bytes: number): ArrayBuffer {
    const buf = this.spareBuffer(bytes);
    this.lent.add(buf);
    return buf;
  }

  route(job: RouteJob): Promise<Routed> {
    const lent = job.scores.buffer as ArrayBuffer;
    if (job.scores.byteOffset === 0 && this.lent.delete(lent)) return this.pool.run({ job }, [lent]);
    // else a compact copy of the scores, moved: they may be a view of a larger buffer (a whole
    // safetensors file), which posting the view itself would copy whole, job after job
    const n = job.scores.length;
    const buf = this.spareBuffer(4 * n);
    const scores = new Float32Array(buf, 0, n);
    scores.set(job.scores);
    return this.pool.run({ job: { ...job, scores } }, [buf]);
  }

  private spareBuffer(bytes: number): ArrayBuffer {
    const at = this.spare.findIndex((b) => b.byteLength >= bytes);
    return at >= 0 ? this.spare.splice(at, 1)[0] : new ArrayBuffer(bytes);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
