import { InputError } from './errors.js';

/** Parse JSON text from `where` (a file, a line, a field), or throw a one-line input error. */
export function parseJson(where: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${where}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Parse JSON that must be an object (config.json, meta.json, a JSONL record). */
export function parseJsonObject(where: string, text: string): Record<string, unknown> {
  const v = parseJson(where, text);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${where}: expected a JSON object`);
  return v as Record<string, unknown>;
}
