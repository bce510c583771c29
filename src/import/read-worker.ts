import { parentPort } from 'node:worker_threads';
import { FORMATS } from './formats.js';
import { InputError } from '../util/errors.js';
import { wholeBuffer } from '../util/whole-buffer.js';
import type { ReaderContext } from './options.js';
import type { FileReply, FileRequest } from './parallel-read.js';

/** The thread behind readFilesInParallel: reads one input file at a time and posts its records in batches. */
const BATCH_BYTES = 1 << 20;
let credit: (() => void) | null = null;
let outstanding = 0;

async function readFile(m: Extract<FileRequest, { op: 'read' }>): Promise<void> {
  const ctx: ReaderContext = { opts: m.opts, notes: new Set(), meta: {} };
  let batch: unknown[] = [];
  let bytes = 0;
  const post = async () => {
    parentPort!.postMessage({ op: 'records', file: m.file, records: batch } satisfies FileReply, ownedBuffers(batch));
    batch = [];
    bytes = 0;
    // at most two batches ahead of the main thread: memory stays bounded however fast this reads
    if (++outstanding >= 2) await new Promise<void>((r) => (credit = r));
  };
  try {
    for await (const r of FORMATS[m.format].read([m.file], ctx)) {
      batch.push(r);
      bytes += 64 + (r.kind === 'layer' ? (r.scores?.data.byteLength ?? 0) + (r.ids?.data.byteLength ?? 0) * 2 : r.kind === 'sample' ? r.rows * 8 : 0);
      if (bytes >= BATCH_BYTES) await post();
    }
    if (batch.length) await post();
    parentPort!.postMessage({ op: 'done', file: m.file, notes: [...ctx.notes], meta: ctx.meta, rule: ctx.rule, numLayers: ctx.numLayers } satisfies FileReply);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    parentPort!.postMessage({ op: 'error', file: m.file, message: err.message, input: err instanceof InputError, stack: err.stack } satisfies FileReply);
  }
}

/**
 * The buffers of the records' typed arrays that span their whole buffer: moved to the main thread
 * instead of copied (one allocation and one copy less per value). Safe because a reader never
 * touches a record's arrays after yielding it and yields each array once, so no later record can
 * hold a view of a moved buffer; a view of part of a buffer is copied as before.
 */
function ownedBuffers(records: unknown[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const visit = (v: unknown, depth: number): void => {
    if (ArrayBuffer.isView(v)) {
      const b = wholeBuffer(v);
      if (b) out.add(b);
    } else if (depth > 0 && typeof v === 'object' && v !== null && !Array.isArray(v)) {
      for (const x of Object.values(v)) visit(x, depth - 1);
    }
  };
  for (const r of records) visit(r, 3);
  return [...out];
}

parentPort!.on('message', (m: FileRequest) => {
  if (m.op === 'ack') {
    outstanding--;
    const c = credit;
    credit = null;
    c?.();
  } else void readFile(m);
});
