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

/** score buffers kept per worker for reuse (the driver keeps a few jobs ahead) */
const SPARE_PER_WORKER = 4;

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

  constructor(threads = Math.min(2, availableParallelism())) {
    this.pool = new WorkerPool<Routed>(new URL('./route-worker.js', import.meta.url), Math.max(1, threads), 'routing worker', (back) => {
      for (const b of back) if (this.spare.length < SPARE_PER_WORKER * this.pool.size) this.spare.push(b);
    });
  }

  route(job: RouteJob): Promise<Routed> {
    // a compact copy of the scores, moved: they may be a view of a larger buffer (a whole
    // safetensors file), which posting the view itself would copy whole, job after job
    const n = job.scores.length;
    const at = this.spare.findIndex((b) => b.byteLength >= 4 * n);
    const buf = at >= 0 ? this.spare.splice(at, 1)[0] : new ArrayBuffer(4 * n);
    const scores = new Float32Array(buf, 0, n);
    scores.set(job.scores);
    return this.pool.run({ job: { ...job, scores } }, [buf]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
