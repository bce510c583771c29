import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { InputError } from '../util/errors.js';
import { startWorker } from '../util/worker-options.js';
import type { ImportOptions, ReaderContext } from './options.js';
import type { ImportRecord } from './records.js';
import type { RouterRule } from './layers.js';

/**
 * The readers' young generation (3 semi-spaces of 4 MB): they parse JSON, and at 1 MB a semi-space
 * a vLLM line's objects went through two scavenges each (0.3 s of a 3M-row import) with no gain in
 * the peak; the other threads make few objects (util/worker-options.ts).
 */
const READER_YOUNG_GENERATION_MB = 12;

export type FileRequest = { op: 'read'; format: string; file: string; opts: ImportOptions } | { op: 'ack' };
export type FileReply =
  | { op: 'records'; file: string; records: unknown[] }
  | { op: 'done'; file: string; notes: string[]; meta: Record<string, unknown>; rule?: RouterRule; numLayers?: number }
  | { op: 'error'; file: string; message: string; input: boolean; stack?: string };

/** Formats whose input files are independent (one request or window per line): read one file per thread. */
export const PER_FILE_FORMATS = new Set(['vllm', 'sglang', 'olmoe']);

/**
 * The records of `format`'s reader over `inputs`, in the order it would yield them reading the
 * files one after another, but parsed in worker threads, one file each, several at once: the
 * parsing (JSON, base64) runs beside the driver and the trace writer. Each worker stays at most two
 * batches ahead, so memory is bounded. The readers' notes and meta keys are merged in file order.
 */
export async function* readFilesInParallel(format: string, inputs: string[], ctx: ReaderContext, threads = Math.min(inputs.length, Math.max(1, availableParallelism() - 1))): AsyncGenerator<ImportRecord> {
  type Slot = { worker: Worker; queue: FileReply[]; wake: (() => void) | null; failure: Error | null };
  const slots: Slot[] = [];
  const start = (file: string, slot: Slot) => slot.worker.postMessage({ op: 'read', format, file, opts: ctx.opts } satisfies FileRequest);
  try {
    for (let i = 0; i < Math.max(1, threads); i++) {
      const worker = startWorker(new URL('./read-worker.js', import.meta.url), READER_YOUNG_GENERATION_MB);
      const slot: Slot = { worker, queue: [], wake: null, failure: null };
      worker.on('message', (m: FileReply) => {
        slot.queue.push(m);
        slot.wake?.();
      });
      worker.on('error', (e: Error) => {
        slot.failure = e;
        slot.wake?.();
      });
      slots.push(slot);
    }
    const next = async (slot: Slot): Promise<FileReply> => {
      while (slot.queue.length === 0) {
        if (slot.failure) throw slot.failure;
        await new Promise<void>((r) => (slot.wake = r));
        slot.wake = null;
      }
      return slot.queue.shift()!;
    };
    // file i goes to slot i % threads; a slot starts its next file when it finishes one
    inputs.slice(0, slots.length).forEach((f, i) => start(f, slots[i]));
    for (let i = 0; i < inputs.length; i++) {
      const slot = slots[i % slots.length];
      for (;;) {
        const m = await next(slot);
        if (m.op === 'records') {
          slot.worker.postMessage({ op: 'ack' } satisfies FileRequest);
          yield* m.records as ImportRecord[];
        } else if (m.op === 'error') {
          const e = m.input ? new InputError(m.message) : new Error(m.message);
          if (!m.input && m.stack) e.stack = m.stack;
          throw e;
        } else {
          for (const n of m.notes) ctx.notes.add(n);
          Object.assign(ctx.meta, m.meta);
          if (m.rule) ctx.rule = m.rule;
          if (m.numLayers !== undefined) ctx.numLayers = m.numLayers;
          if (i + slots.length < inputs.length) start(inputs[i + slots.length], slot);
          break;
        }
      }
    }
  } finally {
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
