import { InputError } from '../util/errors.js';

/** The modalities moescope itself writes; imported traces may add more (`video`, `audio`). */
export const TRACE_MODALITIES = ['text', 'image', 'special', 'video', 'audio'] as const;

/** meta.json of a trace folder (SPEC §2). Writers may add keys; readers ignore the ones they do not know. */
export interface TraceMetaCore {
  moescope_version: string;
  num_layers: number; // decoder layers of the model (layer indices are < num_layers)
  num_experts: number;
  top_k: number;
  router_scoring: string; // 'softmax', 'sigmoid', ...
  model?: { path: string; config: Record<string, unknown> } | null; // when captured from a checkpoint
  data: string | Record<string, unknown>; // the data source (spec string, file, importer inputs)
  tokens: Record<string, number>; // tokens per modality (each token counted once, not once per layer)
  full_probs?: boolean; // routing.parquet has the `prob` column
  samples?: number; // rows of samples.parquet
  rows?: number; // rows of routing.parquet
  layers?: number[]; // the decoder layers that have routing rows (MoE layers), ascending
}

export interface TraceMeta extends TraceMetaCore {
  [key: string]: unknown;
}

/** What a writer's caller gives `finish`: the rest (version, tokens, counts) is filled in. */
export type TraceMetaInput = Omit<TraceMetaCore, 'tokens' | 'moescope_version' | 'num_experts' | 'top_k'> & Partial<TraceMeta>;

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** Check a parsed meta.json; `where` names the file in errors. */
export function parseTraceMeta(raw: unknown, where: string): TraceMeta {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${where}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  for (const k of ['num_layers', 'num_experts', 'top_k'] as const) {
    if (!isCount(o[k]) || o[k] === 0) throw new InputError(`${where}: ${k} must be a positive integer, got ${JSON.stringify(o[k])}`);
  }
  if ((o.top_k as number) > (o.num_experts as number)) throw new InputError(`${where}: top_k ${o.top_k} exceeds num_experts ${o.num_experts}`);
  if (typeof o.router_scoring !== 'string') throw new InputError(`${where}: router_scoring must be a string`);
  if (typeof o.moescope_version !== 'string') throw new InputError(`${where}: moescope_version must be a string`);
  const tokens = o.tokens;
  if (typeof tokens !== 'object' || tokens === null || Array.isArray(tokens) || !Object.values(tokens).every(isCount)) {
    throw new InputError(`${where}: tokens must be an object of counts per modality`);
  }
  if (!('data' in o)) throw new InputError(`${where}: missing key data`);
  return o as TraceMeta;
}

/** Read and check `<dir>/meta.json` (Node only: imports node:fs lazily so this file stays browser-safe to import types from). */
export async function readTraceMeta(dir: string): Promise<TraceMeta> {
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const where = join(dir, 'meta.json');
  let text: string;
  try {
    text = await readFile(where, 'utf8');
  } catch {
    throw new InputError(`${dir}: not a trace folder (no meta.json)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${where}: not valid JSON (${e instanceof Error ? e.message : e})`);
  }
  return parseTraceMeta(raw, where);
}
