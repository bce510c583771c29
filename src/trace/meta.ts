import { InputError } from '../util/errors.js';
import { LIMITS, checkInt } from '../util/limits.js';


/** meta.json of a trace folder (SPEC §2). Writers may add keys; readers ignore the ones they do not know. */
export interface TraceMetaCore {
  moescope_version: string;
  num_layers: number; // decoder layers of the model (layer indices are < num_layers)
  num_experts: number;
  top_k: number;
  router_scoring: string; // 'softmax', 'sigmoid', ...
  model?: { path: string; config: Record<string, unknown> } | null; // when captured from a checkpoint
  data: string | Record<string, unknown> | unknown[]; // the data source (spec string, file, importer inputs)
  tokens: Record<string, number>; // tokens per modality (each token counted once, not once per layer)
  full_probs?: boolean; // routing.parquet has the `prob` column
  samples?: number; // rows of samples.parquet
  rows?: number; // rows of routing.parquet
  layers?: number[]; // the decoder layers that have routing rows (MoE layers), ascending
  /** `router` (or `router ...`) when gates are the router's weights; otherwise why they are missing. */
  gates?: string;
  /** `ranked`: expert ids are in descending router order even without gates (e.g. OLMoE's argsorted ids). */
  expert_order?: 'ranked' | 'unranked';
  /** Size and SHA-256 of each data file (relative path -> record); meta.json itself is not listed. */
  files?: Record<string, FileRecord>;
}

export interface TraceMeta extends TraceMetaCore {
  [key: string]: unknown;
}

/** What a writer's caller gives `finish`: the rest (version, tokens, counts) is filled in. */
export type TraceMetaInput = Omit<TraceMetaCore, 'tokens' | 'moescope_version' | 'num_experts' | 'top_k'> & Partial<TraceMeta>;

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Size and SHA-256 of one file of a trace folder, as recorded in meta.json `files` (SPEC §2). */
export interface FileRecord {
  bytes: number;
  sha256: string;
}

/** Parse and bound meta.json `files` (absent is fine: hand-written traces). */
export function parseFileRecords(raw: unknown, where: string): Record<string, FileRecord> | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${where}: files must be an object`);
  const out: Record<string, FileRecord> = {};
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > 1_000_000) throw new InputError(`${where}: files lists more than 1000000 files`);
  for (const [name, v] of entries) {
    const r = v as Record<string, unknown>;
    if (typeof v !== 'object' || v === null || !Number.isSafeInteger(r.bytes) || (r.bytes as number) < 0 || typeof r.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(r.sha256)) {
      throw new InputError(`${where}: files[${JSON.stringify(name)}] must be {bytes, sha256}`);
    }
    if (name.includes('..') || name.startsWith('/') || name.includes('\\')) throw new InputError(`${where}: files has a bad name ${JSON.stringify(name)}`);
    out[name] = { bytes: r.bytes as number, sha256: r.sha256 };
  }
  return out;
}

/** Check a parsed meta.json; `where` names the file in errors. Every size is bounded (LIMITS) before anyone allocates by it. */
export function parseTraceMeta(raw: unknown, where: string): TraceMeta {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError(`${where}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  checkInt(`${where}: num_layers`, o.num_layers, 1, LIMITS.layers);
  checkInt(`${where}: num_experts`, o.num_experts, 1, LIMITS.experts);
  checkInt(`${where}: top_k`, o.top_k, 1, LIMITS.topK);
  if ((o.top_k as number) > (o.num_experts as number)) throw new InputError(`${where}: top_k ${o.top_k} exceeds num_experts ${o.num_experts}`);
  if (typeof o.router_scoring !== 'string') throw new InputError(`${where}: router_scoring must be a string`);
  if (typeof o.moescope_version !== 'string') throw new InputError(`${where}: moescope_version must be a string`);
  const tokens = o.tokens;
  if (typeof tokens !== 'object' || tokens === null || Array.isArray(tokens) || !Object.values(tokens).every(isCount)) {
    throw new InputError(`${where}: tokens must be an object of counts per modality`);
  }
  if (!('data' in o)) throw new InputError(`${where}: missing key data`);
  for (const k of ['rows', 'samples'] as const) if (o[k] !== undefined && !isCount(o[k])) throw new InputError(`${where}: ${k} must be a count`);
  if (o.gates !== undefined && typeof o.gates !== 'string') throw new InputError(`${where}: gates must be a string`);
  if (o.expert_order !== undefined && o.expert_order !== 'ranked' && o.expert_order !== 'unranked') {
    throw new InputError(`${where}: expert_order must be "ranked" or "unranked", got ${JSON.stringify(o.expert_order)}`);
  }
  if (o.layers !== undefined) {
    if (!Array.isArray(o.layers) || o.layers.length > LIMITS.layers) throw new InputError(`${where}: layers must be a list of at most ${LIMITS.layers} layer indices`);
    o.layers.forEach((l, i) => checkInt(`${where}: layers[${i}]`, l, 0, (o.num_layers as number) - 1));
  }
  const files = parseFileRecords(o.files, where);
  return { ...o, files } as TraceMeta;
}

/**
 * Whether the trace's gates are the router's weights (absent `gates` key: undefined, the gate
 * column decides). SPEC: `router` when they are, otherwise why they are missing; descriptions such
 * as "router probabilities ..." or "the gate module's top-k weights" count as present, and any
 * value saying uniform, mixed, none, missing, not, no, unknown or 1/K as missing.
 */
export function gatesRecorded(meta: TraceMeta): boolean | undefined {
  if (meta.gates === undefined) return undefined;
  const g = meta.gates.trim();
  if (/^router\b/i.test(g)) return true;
  return !(/^(uniform|mixed|none|missing|not|no|unknown)\b/i.test(g) || /1\/K/.test(g) || g === '');
}

/** Read and check `<dir>/meta.json` (Node only: imports node:fs lazily so this file stays browser-safe to import types from). */
export async function readTraceMeta(dir: string): Promise<TraceMeta> {
  const { readFile, stat } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const where = join(dir, 'meta.json');
  let text: string;
  try {
    const st = await stat(where);
    if (!st.isFile()) throw new InputError(`${where}: not a regular file`);
    if (st.size > LIMITS.jsonBytes) throw new InputError(`${where}: ${st.size} bytes is more than ${LIMITS.jsonBytes}`);
    text = await readFile(where, 'utf8');
  } catch (e) {
    if (e instanceof InputError) throw e;
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
