import { createReadStream, statSync } from 'node:fs';
import { InputError } from '../util/errors.js';

/** Lines of a text file with 1-based numbers, streamed: memory holds one line at a time. */
export async function* readLines(path: string): AsyncGenerator<{ n: number; text: string }> {
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
        yield { n, text: buf.toString('utf8', from, i) };
        from = i + 1;
      }
    } else {
      for (let i = from; i < end; i++) {
        const c = buf[i];
        if (c !== 10 && c !== 13) continue;
        n++;
        yield { n, text: buf.toString('utf8', from, i) };
        from = c === 13 && buf[i + 1] === 10 ? i + 2 : i + 1;
        i = from - 1;
      }
    }
    rest = from < buf.length ? buf.subarray(from) : null;
  }
  if (rest) {
    n++;
    yield { n, text: rest.toString('utf8', 0, rest[rest.length - 1] === 13 ? rest.length - 1 : rest.length) };
  }
}

/** JSON objects of a JSONL file; blank lines are skipped, anything else that is not an object is an error. */
export async function* readJsonl(path: string): AsyncGenerator<{ n: number; where: string; obj: Record<string, unknown> }> {
  for await (const { n, text } of readLines(path)) {
    if (text.trim() === '') continue;
    const where = `${path}:${n}`;
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
