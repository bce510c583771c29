import { parentPort } from 'node:worker_threads';
import { TraceWriter } from './writer.js';
import { InputError } from '../util/errors.js';
import type { WriterReply, WriterRequest } from './writer-thread.js';

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

parentPort!.on('message', (m: WriterRequest) => {
  chain = chain.then(async () => {
    let reply: WriterReply;
    try {
      reply = { id: m.id, ok: true, value: await handle(m) };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      reply = { id: m.id, ok: false, message: err.message, input: err instanceof InputError, stack: err.stack };
    }
    parentPort!.postMessage(reply);
  });
});
