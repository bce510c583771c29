import { Worker, type WorkerOptions } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';

/**
 * moescope's threads pass batches of rows as typed arrays and make few JS objects. V8 sizes each
 * thread's young generation by its object allocation and frees a dead ArrayBuffer only when it
 * collects; a young generation that has grown to tens of MB (V8 grows it up to 16 MB a semi-space
 * while a thread allocates fast) is collected rarely, so every thread held tens of MB of dead
 * buffers and the process's peak memory grew with the length of the run (import at 10x the rows:
 * 0.75x the peak; capture: 0.7x). A young generation kept at 1 MB a semi-space holds memory flat,
 * at no measured cost in speed: workers get it as a resource limit, and the thread that starts
 * them (whose heap was sized at process start) keeps the young generation it has (for import and
 * capture, bin/moescope holds it before the CLI's modules load). Serve, which starts no worker and
 * makes short-lived objects per request, keeps V8's default.
 */
const YOUNG_GENERATION_MB = 3; // V8's young generation = 3 semi-spaces of 1 MB

/**
 * Stop this thread's young generation from growing: process-wide, read by V8 whenever a new space
 * would grow. Starting a worker sets V8's flags again (its default returns), so startWorker holds
 * it again once each worker is running.
 */
export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

/**
 * Options for a worker thread that runs with this process's Node flags. A worker inherits them
 * (V8 flags included) when given none; only `--input-type` (of `node -e`) cannot apply to a worker
 * file, so then the list is given without it and without the V8 options a worker refuses as
 * execArgv. A heap cap (--max-old-space-size) also becomes the worker's own resource limit, so a
 * capped process stays capped in its threads. The young generation is kept small (above), unless
 * the worker says how large (MB, 3 semi-spaces).
 */
function workerOptions(youngGenerationMb: number): WorkerOptions {
  const heap = process.execArgv.map((a) => /^--max-old-space-size=(\d+)$/.exec(a)).find((m) => m !== null);
  const inputType = process.execArgv.some((a) => a.startsWith('--input-type'));
  return {
    execArgv: inputType ? process.execArgv.filter((a) => !a.startsWith('--input-type') && !a.startsWith('--max-')) : undefined,
    resourceLimits: { maxYoungGenerationSizeMb: youngGenerationMb, ...(heap ? { maxOldGenerationSizeMb: Number(heap[1]) } : {}) },
  };
}

/** A worker thread of moescope's (options above); this thread's young generation held from then on. */
export function startWorker(url: URL, youngGenerationMb = YOUNG_GENERATION_MB): Worker {
  holdYoungGeneration();
  const w = new Worker(url, workerOptions(youngGenerationMb));
  w.once('online', holdYoungGeneration);
  return w;
}
