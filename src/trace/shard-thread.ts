import { WorkerPool } from '../util/worker-pool.js';
import type { RoutingFileSpec } from './parquet/routing-file.js';
import type { StageColumns } from './row-stage.js';
import type { FileRecord } from './meta.js';

/** One routing file to write: the held rows' columns, in the order `perm` (RowStage.order). */
export interface ShardJob {
  /** as meta.json `files` names it */
  rel: string;
  path: string;
  cols: StageColumns;
  perm: Int32Array;
  spec: RoutingFileSpec;
}

/** The buffers of a job's arrays, moved to the thread and back. */
export function shardBuffers(cols: StageColumns, perm: Int32Array): ArrayBuffer[] {
  return [cols.sample, cols.pos, cols.mod, cols.token, cols.layer, cols.experts, cols.gates, cols.probs, ...cols.extra, perm].map((a) => a.buffer as ArrayBuffer);
}

/**
 * Routing files encoded and written in a thread of their own (shard-worker.ts), one at a time,
 * while the writer's thread goes on taking rows and counting aggregates: in an import that one
 * thread was the critical path, half of it the Parquet encoding. The columns move to the thread
 * and back (no copy); the writer holds at most two shards' rows, the one written and the one
 * filling.
 */
export class ShardThread {
  private readonly pool = new WorkerPool<{ cols: StageColumns; record: FileRecord }>(new URL('./shard-worker.js', import.meta.url), 1, 'routing file writer');
  /** the shard being written: settles with its columns, to be filled again */
  private writing: Promise<StageColumns> | null = null;
  /** size and SHA-256 of each file written, by `rel` */
  readonly records = new Map<string, FileRecord>();

  /** Write `job` once the shard before it is written; that shard's columns come back (or its error is thrown). */
  async write(job: ShardJob): Promise<StageColumns | null> {
    const done = await this.idle();
    this.writing = this.pool.run({ job }, shardBuffers(job.cols, job.perm)).then(({ cols, record }) => {
      this.records.set(job.rel, record);
      return cols;
    });
    this.writing.catch(() => undefined); // thrown by the next write or idle
    return done;
  }

  /** Wait until every file handed over is written: the columns of the last, or null. */
  async idle(): Promise<StageColumns | null> {
    const w = this.writing;
    this.writing = null;
    return w ? await w : null;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
