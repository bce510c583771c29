import { parentPort } from 'node:worker_threads';
import { InputError } from '../util/errors.js';
import { routeJob, type RouteReply, type RouteRequest } from './route-pool.js';

/** The thread behind RoutePool: routes one job at a time and moves the result arrays back. */
parentPort!.on('message', ({ id, job }: RouteRequest) => {
  const scores = job.scores.buffer as ArrayBuffer;
  try {
    const routed = routeJob(job);
    const transfer = [scores, routed.experts.buffer, routed.gates.buffer, ...(routed.probs ? [routed.probs.buffer] : [])] as ArrayBuffer[];
    parentPort!.postMessage({ id, routed, scores } satisfies RouteReply, transfer);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    parentPort!.postMessage({ id, error: err.message, input: err instanceof InputError, stack: err.stack, scores } satisfies RouteReply, [scores]);
  }
});
