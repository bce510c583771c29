import type { WorkerOptions } from 'node:worker_threads';

/**
 * Options for a worker thread that runs with this process's Node flags: flags a worker cannot take
 * are left out (--input-type of `node -e`), and a heap cap (--max-old-space-size) becomes the
 * worker's own resource limit, so a capped process stays capped in its threads.
 */
export function workerOptions(): WorkerOptions {
  const execArgv: string[] = [];
  let heapMb: number | undefined;
  for (const a of process.execArgv) {
    const m = /^--max-old-space-size=(\d+)$/.exec(a);
    if (m) heapMb = Number(m[1]);
    else if (!a.startsWith('--input-type')) execArgv.push(a);
  }
  return { execArgv, ...(heapMb ? { resourceLimits: { maxOldGenerationSizeMb: heapMb } } : {}) };
}
