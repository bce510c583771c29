import { WorkerPool } from '../util/worker-pool.js';
import type { RoutingFileSpec } from './parquet/routing-file.js';
import type { StageColumns } from './row-stage.js';
import type { FileRecord } from './meta.js';

/** One routing file to write: the held rows' columns, in the order RowStage.order left in `cols.perm`. */
export interface ShardJob {
  /** as meta.json `files` names it */
  rel: string;
  path: string;
  cols: StageColumns;
  spec: RoutingFileSpec;
}

/** A routing file written: its columns, to be filled again, and its meta.json record (size, SHA-256). */
export interface ShardWritten {
  rel: string;
  cols: StageColumns;
  record: FileRecord;
}

/** The buffers of a job's arrays, moved to the thread and back. */
export function shardBuffers(cols: StageColumns): ArrayBuffer[] {
  return [cols.sample, cols.pos, cols.mod, cols.token, cols.layer, cols.experts, cols.gates, cols.probs, ...cols.extra, cols.perm].map((a) => a.buffer);
}

/**
 * Routing files encoded and written in a thread of their own (shard-worker.ts), one at a time,
 * while the writer's thread goes on taking rows and counting aggregates: in an import that one
 * thread was the critical path, half of it the Parquet encoding. The columns move to the thread
 * and back (no copy); the writer holds at most two shards' rows, the one written and the one
 * filling.
 */
export class ShardThread {
  private readonly pool = new WorkerPool<ShardWritten>(new URL('./shard-worker.js', import.meta.url), 1, 'routing file writer');
  /** the shard being written */
  private writing: Promise<ShardWritten> | null = null;

  /** Write `job` once the shard before it is written; that shard comes back (or its error is thrown). */
  async write(job: ShardJob): Promise<ShardWritten | null> {
    const done = await this.idle();
    this.writing = this.pool.run({ job }, shardBuffers(job.cols));
    this.writing.catch(() => undefined); // thrown by the next write or idle
    return done;
  }

  /** Wait until every file handed over is written: the last one, or null. */
  async idle(): Promise<ShardWritten | null> {
    const w = this.writing;
    this.writing = null;
    return w ? await w : null;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
