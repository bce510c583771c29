import { createReadStream, statSync } from 'node:fs';
import { InputError } from '../util/errors.js';
import { parseIntObject, type ByteParseOptions } from './json-ints.js';

/** Lines of a text file with 1-based numbers, streamed: memory holds one line at a time. */
export async function* readLines(path: string): AsyncGenerator<{ n: number; text: string }> {
  for await (const { n, buf, from, to } of readLineBytes(path)) yield { n, text: buf.toString('utf8', from, to) };
}

/** The same lines as byte ranges [from, to) of buf, which is valid until the next line is asked for. */
export async function* readLineBytes(path: string): AsyncGenerator<{ n: number; buf: Buffer; from: number; to: number }> {
  try {
    if (!statSync(path).isFile()) throw new InputError(`${path}: not a file`);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  // split the bytes by hand (readline's per-line regex and events cost more than parsing the JSON;
  // decoding whole chunks costs string joins and copies): UTF-8 never has a \n or \r inside a
  // character, so each line decodes alone. Line ends as readline's: \n, \r\n or a lone \r
  let n = 0;
  let rest: Buffer | null = null;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
    // a \r at the end may be the first half of \r\n: wait for the next chunk
    let end = buf.length;
    if (end > 0 && buf[end - 1] === 13) end--;
    let from = 0;
    if (buf.indexOf(13) < 0) {
      for (let i = buf.indexOf(10); i >= 0 && i < end; i = buf.indexOf(10, from)) {
        n++;
        yield { n, buf, from, to: i };
        from = i + 1;
      }
    } else {
      for (let i = from; i < end; i++) {
        const c = buf[i];
        if (c !== 10 && c !== 13) continue;
        n++;
        yield { n, buf, from, to: i };
        from = c === 13 && buf[i + 1] === 10 ? i + 2 : i + 1;
        i = from - 1;
      }
    }
    rest = from < buf.length ? buf.subarray(from) : null;
  }
  if (rest) {
    n++;
    yield { n, buf: rest, from: 0, to: rest[rest.length - 1] === 13 ? rest.length - 1 : rest.length };
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
