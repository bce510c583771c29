import type { Worker } from 'node:worker_threads';
import { InputError } from '../util/errors.js';
import { startWorker } from '../util/worker-options.js';
import { wholeBuffer } from '../util/whole-buffer.js';
import type { CodedStrings, RoutingRows, SampleRow, TraceWriterOptions } from './writer.js';
import { Dictionary } from './dictionary.js';
import type { TraceMeta, TraceMetaInput } from './meta.js';

export type WriterRequest = { id: number } & (
  | { op: 'open'; dir: string; opts: TraceWriterOptions }
  | { op: 'routing'; rows: RoutingRows; recycle: boolean } // recycle: move the rows' buffers back (spare)
  | { op: 'sample'; sample: SampleRow }
  | { op: 'dropGates' }
  | { op: 'finish'; meta: TraceMetaInput }
  | { op: 'abort' }
);
/** `spare`: the buffers of the routing rows just appended, moved back for the caller to reuse (takeBuffer) */
export type WriterReply = { id: number } & ({ ok: true; value: unknown; spare?: ArrayBuffer[] } | { ok: false; message: string; input: boolean; stack?: string });

/** Routing batches handed over and not yet written, before appendRouting waits (bounds memory). */
const IN_FLIGHT = 3;
/** Buffers of one size kept for reuse: a few batches' worth (the caller flushes same-sized batches). */
const SPARE_PER_SIZE = 2 * (IN_FLIGHT + 1);
/** All kept buffers together: batches of ever new sizes must not pile up. */
const SPARE_BYTES = 64 << 20;

const WORKER_URL = new URL('./writer-worker.js', import.meta.url);
/** A writer thread started ahead of its open (prestart), not yet taken; with the error it met, if any. */
let warm: { worker: Worker; failed: boolean } | null = null;

/**
 * A TraceWriter in its own thread, same interface: the caller (an importer's parser, capture's
 * encoder) prepares the next rows while the thread appends, counts aggregates and writes
 * Parquet. Row arrays are transferred: the caller's own when it hands them over, else compact
 * copies (one copy, never two). Requests run in order; a failure is thrown from the next call
 * that waits (at the latest `finish`).
 */
export class TraceWriterThread {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** requests sent and not yet awaited, oldest first */
  private readonly inFlight: Promise<unknown>[] = [];
  private failure: Error | null = null;
  private rows = 0;
  private samples = 0;
  private closed = false;
  private readonly dicts = new Map<string, Dictionary>();
  /** row buffers the thread moved back, by byte length */
  private readonly spare = new Map<number, ArrayBuffer[]>();
  private spareBytes = 0;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: WriterReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok && m.spare) this.keep(m.spare);
      if (m.ok) p.resolve(m.value);
      else {
        const e = m.input ? new InputError(m.message) : new Error(m.message);
        if (!m.input && m.stack) e.stack = m.stack;
        p.reject(e);
      }
    });
    worker.on('error', (e: Error) => this.fail(e));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`trace writer thread stopped (exit code ${code})`));
    });
  }

  /**
   * Start the next writer's thread now, so that its modules load while the caller starts its
   * input (an import opens its writer only at the first rows, when top-k is known): `open` takes
   * it. Until then it does not keep the process alive.
   */
  static prestart(): void {
    if (warm) return;
    const w = { worker: startWorker(WORKER_URL), failed: false };
    w.worker.unref();
    w.worker.once('error', () => (w.failed = true)).once('exit', () => (w.failed = true));
    warm = w;
  }

  static async open(dir: string, opts: TraceWriterOptions): Promise<TraceWriterThread> {
    const started = warm && !warm.failed ? warm.worker : null;
    if (warm?.failed) void warm.worker.terminate();
    warm = null;
    started?.ref();
    const t = new TraceWriterThread(started ?? startWorker(WORKER_URL));
    try {
      // the routing files in a thread of their own too, unless the caller says otherwise
      await t.call({ op: 'open', dir, opts: { shardThread: true, ...opts } });
    } catch (e) {
      await t.close();
      throw e;
    }
    return t;
  }

  private coded(column: string, v: readonly string[] | CodedStrings): CodedStrings {
    if ('codes' in v) return v;
    let d = this.dicts.get(column);
    if (!d) this.dicts.set(column, (d = new Dictionary()));
    const codes = new Uint16Array(v.length);
    for (let i = 0; i < v.length; i++) codes[i] = d.code(v[i]);
    return { codes, names: d.names.slice() };
  }

  /**
   * A buffer of `bytes` bytes for rows to hand over (appendRouting(rows, true)): one the thread
   * moved back when there is one, else a new one. A reused buffer holds old rows: the caller
   * writes every value. Reuse keeps the two threads from making garbage of a batch's buffers at
   * every flush, which V8 would collect only tens of megabytes later.
   */
  takeBuffer(bytes: number): ArrayBuffer {
    const b = this.spare.get(bytes)?.pop();
    if (!b) return new ArrayBuffer(bytes);
    this.spareBytes -= bytes;
    return b;
  }

  /** Bytes of the buffers kept for takeBuffer. */
  get keptBytes(): number {
    return this.spareBytes;
  }

  private keep(buffers: ArrayBuffer[]): void {
    for (const b of buffers) {
      let list = this.spare.get(b.byteLength);
      if (!list) this.spare.set(b.byteLength, (list = []));
      if (list.length >= SPARE_PER_SIZE || this.spareBytes + b.byteLength > SPARE_BYTES) continue;
      list.push(b);
      this.spareBytes += b.byteLength;
    }
  }

  get rowCount(): number {
    return this.rows;
  }

  get sampleCount(): number {
    return this.samples;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  private call(req: Record<string, unknown> & { op: WriterRequest['op'] }, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const p = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.worker.postMessage({ ...req, id }, transfer);
    return p;
  }

  /**
   * `handOver`: the caller gives the arrays away (they are moved to the writer thread, not copied,
   * when each is a whole buffer, and unusable afterwards); their buffers come back for takeBuffer.
   */
  async appendRouting(r: RoutingRows, handOver = false): Promise<void> {
    const transfer: ArrayBuffer[] = [];
    const own = <T extends Int32Array | Float32Array | Uint8Array>(a: T): T => {
      const buf = handOver ? wholeBuffer(a) : null;
      const whole = buf !== null && !transfer.includes(buf);
      const c = whole ? a : (a.slice() as T); // compact: a view would otherwise carry its whole buffer
      transfer.push(c.buffer as ArrayBuffer);
      return c;
    };
    // text columns travel as codes: a string per row would cost more to post than to write
    const extra = r.extra && Object.fromEntries(Object.entries(r.extra).map(([k, v]) => [k, v instanceof Int32Array ? own(v) : this.coded(k, v)]));
    const rows: RoutingRows = {
      sample: own(r.sample), pos: own(r.pos), token: own(r.token), layer: own(r.layer),
      modality: r.modality instanceof Uint8Array ? own(r.modality) : r.modality,
      experts: own(r.experts), gates: own(r.gates), probs: r.probs && own(r.probs), extra, expertsBelow: r.expertsBelow,
    };
    this.rows += r.sample.length;
    // a caller that hands its arrays over gets them back to fill again (takeBuffer)
    await this.send({ op: 'routing', rows, recycle: handOver }, transfer);
  }

  async appendSample(s: SampleRow): Promise<void> {
    this.samples++;
    await this.send({ op: 'sample', sample: s });
  }

  dropGates(): void {
    this.enqueue(this.call({ op: 'dropGates' }));
  }

  /** Send without waiting for the reply, unless more than IN_FLIGHT are outstanding (then the oldest). */
  private async send(req: Record<string, unknown> & { op: WriterRequest['op'] }, transfer: ArrayBuffer[] = []): Promise<void> {
    this.enqueue(this.call(req, transfer));
    while (this.inFlight.length > IN_FLIGHT) await this.inFlight.shift();
  }

  private enqueue(p: Promise<unknown>): void {
    p.catch(() => undefined); // awaited by send, finish or abort
    this.inFlight.push(p);
  }

  async finish(meta: TraceMetaInput): Promise<TraceMeta> {
    try {
      for (const p of this.inFlight.splice(0)) await p;
      return (await this.call({ op: 'finish', meta })) as TraceMeta;
    } finally {
      await this.close();
    }
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    try {
      await Promise.allSettled(this.inFlight.splice(0));
      if (!this.failure) await this.call({ op: 'abort' });
    } catch {
      // already failing
    } finally {
      await this.close();
    }
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
  }
}
