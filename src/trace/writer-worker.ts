import { parentPort } from 'node:worker_threads';
import { TraceWriter } from './writer.js';
import { InputError } from '../util/errors.js';
import { wholeBuffer } from '../util/whole-buffer.js';
import type { WriterReply, WriterRequest } from './writer-thread.js';
import type { RoutingRows } from './writer.js';

/** The thread behind TraceWriterThread: one TraceWriter, requests applied strictly in order. */
let writer: TraceWriter | null = null;
let chain: Promise<void> = Promise.resolve();

async function handle(m: WriterRequest): Promise<unknown> {
  switch (m.op) {
    case 'open':
      writer = await TraceWriter.open(m.dir, m.opts);
      return null;
    case 'routing':
      return writer!.appendRouting(m.rows);
    case 'sample':
      return writer!.appendSample(m.sample);
    case 'dropGates':
      return writer!.dropGates();
    case 'finish':
      return writer!.finish(m.meta);
    case 'abort':
      return writer?.abort();
  }
}

/** The whole buffers of a routing batch's arrays, each once. */
function rowBuffers(r: RoutingRows): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of [r.sample, r.pos, r.token, r.layer, r.experts, r.gates, r.probs, r.modality, ...Object.values(r.extra ?? {}).map((v) => ('codes' in v ? v.codes : v))]) {
    const b = wholeBuffer(a);
    if (b) out.add(b);
  }
  return [...out];
}

parentPort!.on('message', (m: WriterRequest) => {
  chain = chain.then(async () => {
    let reply: WriterReply;
    let spare: ArrayBuffer[] = [];
    try {
      reply = { id: m.id, ok: true, value: await handle(m) };
      // the rows are copied into the writer's own arrays by now: their buffers go back for reuse
      if (m.op === 'routing' && m.recycle) reply.spare = spare = rowBuffers(m.rows);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      reply = { id: m.id, ok: false, message: err.message, input: err instanceof InputError, stack: err.stack };
    }
    parentPort!.postMessage(reply, spare);
  });
});
