import { parentPort } from 'node:worker_threads';
import { answerJob } from '../util/worker-pool.js';
import { writeRoutingFile } from './parquet/routing-file.js';
import { shardBuffers, type ShardJob } from './shard-thread.js';

/** The thread behind ShardThread: writes one routing file per job; its columns move back either way, with the file's record. */
parentPort!.on('message', ({ id, job }: { id: number; job: ShardJob }) => {
  answerJob(id, () => {
    const record = writeRoutingFile(job.path, job.cols, job.spec);
    return { value: { rel: job.rel, cols: job.cols, record } };
  }, shardBuffers(job.cols));
});
