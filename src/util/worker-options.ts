import type { WorkerOptions } from 'node:worker_threads';

/**
 * Options for a worker thread that runs with this process's Node flags. A worker inherits them
 * (V8 flags included) when given none; only `--input-type` (of `node -e`) cannot apply to a worker
 * file, so then the list is given without it and without the V8 options a worker refuses as
 * execArgv. A heap cap (--max-old-space-size) also becomes the worker's own resource limit, so a
 * capped process stays capped in its threads.
 */
export function workerOptions(): WorkerOptions {
  const heap = process.execArgv.map((a) => /^--max-old-space-size=(\d+)$/.exec(a)).find((m) => m !== null);
  const inputType = process.execArgv.some((a) => a.startsWith('--input-type'));
  return {
    execArgv: inputType ? process.execArgv.filter((a) => !a.startsWith('--input-type') && !a.startsWith('--max-')) : undefined,
    ...(heap ? { resourceLimits: { maxOldGenerationSizeMb: Number(heap[1]) } } : {}),
  };
}
