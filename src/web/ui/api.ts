import type { Counts, LayerMetrics } from '../../analysis/types.js';

/** A failed API call: the server's reason, shown in the page as is. */
export class ApiFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path);
  if (!res.ok) {
    let reason = res.statusText;
    try {
      reason = ((await res.json()) as { error?: string }).error ?? reason;
    } catch { /* not JSON */ }
    throw new ApiFailure(res.status, `${res.status}: ${reason}`);
  }
  return (await res.json()) as T;
}

export async function getBytes(path: string): Promise<Uint8Array> {
  const res = await fetch(path);
  if (!res.ok) throw new ApiFailure(res.status, `${path}: ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** meta.json of a trace (SPEC §2), the keys the page shows. */
export interface TraceMeta {
  num_layers: number;
  num_experts: number;
  top_k: number;
  router_scoring?: string;
  tokens?: Record<string, number>;
  data?: unknown;
  model?: { path?: string; config?: Record<string, unknown> } | null;
}

export interface TraceInfo {
  name: string;
  folder: string;
  meta: TraceMeta;
  layers: number[];
  modalities: string[];
  patchesPerImage: number;
  rows: number;
  hasSamples: boolean;
}

export interface Info {
  traces: TraceInfo[];
  model: { folder: string; config: Record<string, unknown> | null } | null;
}

export interface CountsJson extends Omit<Counts, 'n' | 'tokens'> {
  n: number[];
  tokens: number[];
}

export function countsFromJson(j: CountsJson): Counts {
  return { ...j, n: Float64Array.from(j.n), tokens: Float64Array.from(j.tokens) };
}

export interface MetricsJson {
  count: string;
  layers: LayerMetrics[];
}

/** One position of a sample with its routing at every layer (the API's /api/samples/:id, or the playground's own run). */
export interface TokenRouting {
  pos: number;
  modality: string;
  token: number;
  word: string | null;
  image: number;
  experts: number[][];
  gates: number[][];
}

export interface SampleDetail {
  sample: number;
  text: string | null;
  source: string | null;
  images: number;
  layers: number[];
  tokens: TokenRouting[];
}

export interface SampleList {
  total: number;
  rows: { sample: number; text: string; images: number; source: string }[];
}

export interface ExpertPage {
  layer: number;
  expert: number;
  mode: string;
  modality: string;
  totals: Record<string, number>;
  topWords: { token: number; word: string | null; n: number }[];
  offset: number;
  limit: number;
  total: number;
  examples: { sample: number; pos: number; token: number; word: string | null; image: number; experts: number[]; gates: number[] }[];
  patchesPerImage: number;
}

export interface FlowJson {
  a: number;
  b: number;
  rows: { modality: string; source: number; target: number; n: number }[];
}

export interface CompareJson {
  names: [string, string];
  a: CountsJson;
  b: CountsJson;
}
