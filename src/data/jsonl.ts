import { open } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { InputError } from '../util/errors.js';
import { checkInputFile, readInputFile } from '../util/input-file.js';
import { parseJson } from '../util/json.js';
import { LIMITS } from '../util/limits.js';
import { decodePngRgb } from './png.js';
import type { Part, Sample } from './sample.js';

/**
 * JSONL samples (SPEC §5), one per line: `{"text": "...", "image": "path.png"}` (image first,
 * then text; either may be absent) or `{"parts": [{"image": ...}, {"text": ...}, ...]}`. Image
 * paths are relative to the file. Blank lines are skipped. Read line by line, so memory does not
 * grow with the file. Errors name the file and line: `data.jsonl:12: ...`.
 */
export async function* readJsonlSamples(path: string): AsyncGenerator<Sample> {
  checkFile(path);
  const base = dirname(resolve(path));
  let lineNo = 0;
  for await (const line of readLines(path)) {
    lineNo++;
    if (line.trim() === '') continue;
    yield parseJsonlLine(line, `${path}:${lineNo}`, base);
  }
}

/**
 * The lines of a UTF-8 file (without \n or \r\n), read in 1 MB chunks as the consumer asks for
 * them, so a slow consumer never makes the file pile up in memory.
 */
export async function* readLines(path: string): AsyncGenerator<string> {
  const fh = await open(path, 'r');
  const decoder = new TextDecoder('utf-8');
  const chunk = new Uint8Array(1 << 20);
  let pending: Uint8Array[] = []; // bytes of the current line so far
  let pendingBytes = 0;
  let lineNo = 1;
  const keep = (part: Uint8Array) => {
    pendingBytes += part.length;
    // a line has a bounded length, so a file without newlines cannot fill memory
    if (pendingBytes > LIMITS.jsonlLineBytes) throw new InputError(`${path}:${lineNo}: line longer than ${LIMITS.jsonlLineBytes} bytes`);
    pending.push(part);
  };
  const take = (tail: Uint8Array): string => {
    keep(tail);
    lineNo++;
    const total = pending.reduce((n, p) => n + p.length, 0);
    const bytes = pending.length === 1 ? pending[0] : new Uint8Array(total);
    if (pending.length > 1) {
      let o = 0;
      for (const p of pending) {
        bytes.set(p, o);
        o += p.length;
      }
    }
    pending = [];
    pendingBytes = 0;
    const end = bytes.length && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
    return decoder.decode(bytes.subarray(0, end));
  };
  try {
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      let start = 0;
      for (let i = 0; i < bytesRead; i++) {
        if (chunk[i] !== 10) continue;
        yield take(chunk.slice(start, i));
        start = i + 1;
      }
      if (start < bytesRead) keep(chunk.slice(start, bytesRead));
    }
    if (pending.length) yield take(new Uint8Array(0));
  } finally {
    await fh.close();
  }
}

/** Number of non-blank lines (for progress), read in chunks. */
export async function countJsonlSamples(path: string): Promise<number> {
  checkFile(path);
  let n = 0;
  for await (const line of readLines(path)) if (line.trim() !== '') n++;
  return n;
}

function checkFile(path: string): void {
  checkInputFile(path, 'JSONL file');
}

/** One JSONL line into a sample; `where` is `file:line`, `base` the folder image paths are relative to. */
export function parseJsonlLine(line: string, where: string, base: string): Sample {
  const o = parseJson(where, line);
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new InputError(`${where}: expected a JSON object`);
  const rec = o as Record<string, unknown>;
  const parts: Part[] = [];
  const image = (v: unknown, field: string): Part => {
    if (typeof v !== 'string' || v === '') throw new InputError(`${where}: ${field} must be a path to a PNG file`);
    return { image: loadPng(isAbsolute(v) ? v : resolve(base, v), where) };
  };
  const text = (v: unknown, field: string): Part => {
    if (typeof v !== 'string') throw new InputError(`${where}: ${field} must be a string`);
    return { text: v };
  };
  if ('parts' in rec) {
    const extra = Object.keys(rec).filter((k) => k !== 'parts' && k !== 'id' && k !== 'meta');
    if (extra.length) throw new InputError(`${where}: "parts" cannot be combined with ${extra.map((k) => `"${k}"`).join(', ')}`);
    if (!Array.isArray(rec.parts)) throw new InputError(`${where}: "parts" must be a list`);
    rec.parts.forEach((p: unknown, i: number) => {
      const field = `parts[${i}]`;
      if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new InputError(`${where}: ${field} must be an object`);
      const q = p as Record<string, unknown>;
      const keys = Object.keys(q);
      if (keys.length !== 1 || (keys[0] !== 'text' && keys[0] !== 'image')) {
        throw new InputError(`${where}: ${field} must have exactly one key, "text" or "image"`);
      }
      parts.push(keys[0] === 'image' ? image(q.image, `${field}.image`) : text(q.text, `${field}.text`));
    });
  } else {
    if (!('text' in rec) && !('image' in rec)) throw new InputError(`${where}: no parts (expected "text", "image" or "parts")`);
    if ('image' in rec && rec.image !== null) parts.push(image(rec.image, '"image"'));
    if ('text' in rec && rec.text !== null) parts.push(text(rec.text, '"text"'));
  }
  if (parts.length === 0) throw new InputError(`${where}: no parts`);
  return { parts, source: where };
}

function loadPng(file: string, where: string) {
  let bytes: Uint8Array;
  try {
    // only a regular file of bounded size: /dev/zero or a FIFO is an error, not a hang
    const b = readInputFile(file, LIMITS.imageFileBytes, 'PNG image');
    bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new InputError(`${where}: image ${e instanceof Error ? e.message : e}`);
  }
  return decodePngRgb(bytes, `${where}: image ${file}`);
}
