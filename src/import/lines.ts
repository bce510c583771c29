import { statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { InputError } from '../util/errors.js';
import { parseIntObject, type ByteParseOptions } from './json-ints.js';

/** Lines of a text file with 1-based numbers, streamed: memory holds one line at a time. */
export async function* readLines(path: string): AsyncGenerator<{ n: number; text: string }> {
  for await (const { n, buf, from, to } of readLineBytes(path)) yield { n, text: buf.toString('utf8', from, to) };
}

/** Bytes read from the file at a time, into one buffer reused read after read. */
const CHUNK = 1 << 20;

/**
 * The same lines as byte ranges [from, to) of buf, which is valid until the next line is asked
 * for: a line within one read is a range of the read buffer, one that spans reads is gathered in a
 * carry buffer; both are reused, so reading makes no garbage (a buffer per read and a joined copy
 * per long line were most of what a vLLM reader thread held).
 */
export async function* readLineBytes(path: string): AsyncGenerator<{ n: number; buf: Buffer; from: number; to: number }> {
  let fh: FileHandle;
  try {
    if (!statSync(path).isFile()) throw new InputError(`${path}: not a file`);
    fh = await open(path, 'r');
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  // split the bytes by hand (readline's per-line regex and events cost more than parsing the JSON;
  // decoding whole chunks costs string joins and copies): UTF-8 never has a \n or \r inside a
  // character, so each line decodes alone. Line ends as readline's: \n, \r\n or a lone \r; a \r
  // that ends a read may be the first half of \r\n, so it waits in the carry
  try {
    const chunk = Buffer.allocUnsafe(CHUNK);
    let carry = Buffer.allocUnsafe(1 << 16);
    let cl = 0; // bytes of the line begun in earlier reads
    const keep = (from: number, to: number) => {
      if (cl + to - from > carry.length) {
        const grown = Buffer.allocUnsafe(Math.max(2 * carry.length, cl + to - from));
        carry.copy(grown, 0, 0, cl);
        carry = grown;
      }
      chunk.copy(carry, cl, from, to);
      cl += to - from;
    };
    let n = 0;
    for (;;) {
      const { bytesRead: len } = await fh.read(chunk, 0, CHUNK, null);
      if (len === 0) break;
      const ends = new LineEnds(chunk.subarray(0, len));
      let from = 0;
      if (cl > 0) {
        // the carried line ends at a held-back \r, or at the first line end of this read
        if (carry[cl - 1] === 13) {
          n++;
          yield { n, buf: carry, from: 0, to: cl - 1 };
          cl = 0;
          from = chunk[0] === 10 ? 1 : 0;
        } else {
          const e = ends.next(0);
          keep(0, e < 0 ? len : e);
          if (e < 0) continue;
          n++;
          yield { n, buf: carry, from: 0, to: cl };
          cl = 0;
          from = nextLineStart(chunk, e);
        }
      }
      for (let e = ends.next(from); e >= 0; e = ends.next(from)) {
        n++;
        yield { n, buf: chunk, from, to: e };
        from = nextLineStart(chunk, e);
      }
      keep(from, len);
    }
    if (cl > 0) {
      n++;
      yield { n, buf: carry, from: 0, to: carry[cl - 1] === 13 ? cl - 1 : cl };
    }
  } finally {
    await fh.close();
  }
}

/** Where the line after the end at e starts: past \r\n or past a lone \n or \r (e is never a \r that ends the read). */
function nextLineStart(b: Buffer, e: number): number {
  return b[e] === 13 && b[e + 1] === 10 ? e + 2 : e + 1;
}

/** Line ends in one read's bytes: the buffer's own search for \n and \r, each found once. */
class LineEnds {
  private lf = -2;
  private cr = -2;
  constructor(private readonly b: Buffer) {}

  /** The first \n or \r at or after from, -1 if none; a \r that ends the read does not count (it may start \r\n). */
  next(from: number): number {
    if (this.lf !== -1 && this.lf < from) this.lf = this.b.indexOf(10, from);
    if (this.cr !== -1 && this.cr < from) this.cr = this.b.indexOf(13, from);
    const cr = this.cr >= 0 && this.cr < this.b.length - 1 ? this.cr : -1;
    if (cr >= 0 && (this.lf < 0 || cr < this.lf)) return cr;
    return this.lf;
  }
}

/**
 * JSON objects of a JSONL file; blank lines are skipped, anything else that is not an object is an
 * error. With intTensors, lines are read from their bytes (json-ints.ts): their integer lists
 * come as IntTensors, and the long strings of byteStringKeys as StringBytes (valid until the next
 * line is asked for).
 */
export async function* readJsonl(path: string, opts: { intTensors?: boolean } & ByteParseOptions = {}): AsyncGenerator<{ n: number; where: string; obj: Record<string, unknown> }> {
  for await (const { n, buf, from, to } of readLineBytes(path)) {
    const where = `${path}:${n}`;
    const read = opts.intTensors ? parseIntObject(buf, from, to, opts) : null;
    if (read) {
      yield { n, where, obj: read };
      continue;
    }
    const text = buf.toString('utf8', from, to);
    if (text.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new InputError(`${where}: not valid JSON (${e instanceof Error ? e.message : e}; truncated file?)`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new InputError(`${where}: expected a JSON object per line`);
    yield { n, where, obj: obj as Record<string, unknown> };
  }
}
