import { parentPort } from 'node:worker_threads';
import { answerJob } from '../util/worker-pool.js';
import { routeJob, type RouteRequest } from './route-pool.js';

/** The thread behind RoutePool: routes one job at a time; the results and the scores buffer move back. */
parentPort!.on('message', ({ id, job }: RouteRequest) => {
  answerJob(id, () => {
    const routed = routeJob(job);
    return { value: routed, transfer: [routed.experts.buffer, routed.gates.buffer, ...(routed.probs ? [routed.probs.buffer] : [])] as ArrayBuffer[] };
  }, [job.scores.buffer as ArrayBuffer]);
});
