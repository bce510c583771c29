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
  // split by hand (readline's per-line regex and events cost more than parsing the JSON);
  // line ends as readline's: \n, \r\n or a lone \r
  let n = 0;
  let rest = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 }) as AsyncIterable<string>) {
    let s = rest + chunk;
    // a \r at the end may be the first half of \r\n: wait for the next chunk
    let end = s.length;
    if (end > 0 && s.charCodeAt(end - 1) === 13) end--;
    let from = 0;
    if (s.indexOf('\r') < 0) {
      for (let i = s.indexOf('\n'); i >= 0 && i < end; i = s.indexOf('\n', from)) {
        n++;
        yield { n, text: s.slice(from, i) };
        from = i + 1;
      }
    } else {
      const eol = /\r\n|\n|\r/g;
      for (let m = eol.exec(s); m && m.index < end; m = eol.exec(s)) {
        n++;
        yield { n, text: s.slice(from, m.index) };
        from = m.index + m[0].length;
      }
    }
    rest = s.slice(from);
    s = '';
  }
  if (rest.length > 0) {
    n++;
    yield { n, text: rest.charCodeAt(rest.length - 1) === 13 ? rest.slice(0, -1) : rest };
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
