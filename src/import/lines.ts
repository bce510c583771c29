import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { InputError } from '../util/errors.js';

/** Lines of a text file with 1-based numbers, streamed: memory holds one line at a time. */
export async function* readLines(path: string): AsyncGenerator<{ n: number; text: string }> {
  try {
    if (!statSync(path).isFile()) throw new InputError(`${path}: not a file`);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  let n = 0;
  for await (const text of rl) {
    n++;
    yield { n, text };
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
