/**
 * The dashboard's HTTP API: every response body, declared once and imported by the server
 * (src/web/server) and the page (src/web/ui). Pure types, safe in the browser.
 * New per-layer metrics use the JSON key names of SPEC §3 (`router`, `repeat_rate`, ...).
 */
import type { Counts, LayerMetrics, RouterMetrics } from '../analysis/types.js';

/** Every error body: the reason, shown in the page as is. */
export interface ApiErrorBody {
  error: string;
}

/** meta.json of a trace (SPEC §2), the keys the page reads. */
export interface TraceMetaJson {
  num_layers: number;
  num_experts: number;
  top_k: number;
  router_scoring?: string;
  tokens?: Record<string, number>;
  data?: unknown;
  model?: { path?: string; config?: Record<string, unknown> } | null;
  [key: string]: unknown;
}

/**
 * How the page groups tokens (SPEC §3 `--by`): the default grouping and why. With only text tokens,
 * `modality` has nothing to compare, so the page falls back to `domain` when the trace has it, else
 * to load views (`by` = null).
 */
export interface GroupingInfo {
  /** Columns the page can group by (routing `modality`/`phase`/..., samples `domain`/`source`/...), each with its values. */
  available: { by: string; groups: string[] }[];
  /** The grouping the page starts with. */
  by: string;
  /** The groups analysed by default (for `modality`: text and image when present). */
  groups: string[];
  /** Nothing to compare (one group only, no domain): the page shows load views (share per expert, uniform line). */
  loadOnly: boolean;
  /** Why the default is not `modality` (shown on the page), or null. */
  fallback: string | null;
}

export interface TraceInfo {
  name: string; // "A", "B", "C", ...
  folder: string;
  meta: TraceMetaJson;
  layers: number[];
  modalities: string[];
  patchesPerImage: number;
  /** Patch grid of one image (rows x columns) when meta.json or the model config says it, else null. */
  patchGrid: [number, number] | null;
  rows: number;
  hasSamples: boolean;
  grouping: GroupingInfo;
}

/** The checkpoint the playground runs, and whether it is the model that made trace A. */
export interface ModelInfo {
  folder: string;
  /** `trace`: the trace's own checkpoint folder; `bundled`: the checkpoint shipped with moescope. */
  source: 'trace' | 'bundled';
  config: Record<string, unknown> | null;
  /** True when trace A was captured with this very checkpoint; else the playground does not pretend to show the trace's model. */
  ofTrace: boolean;
  /** When not ofTrace: why (shown on the page). */
  reason: string | null;
}

export interface Info {
  traces: TraceInfo[];
  model: ModelInfo | null;
}

/** Counts as JSON: the analysis' `Counts` with plain arrays; `modalities` holds the groups of `by`. */
export interface CountsJson extends Omit<Counts, 'n' | 'tokens'> {
  by: string;
  n: number[];
  tokens: number[];
}

export function countsFromJson(j: CountsJson): Counts {
  return { mode: j.mode, numExperts: j.numExperts, topK: j.topK, layers: j.layers, modalities: j.modalities, n: Float64Array.from(j.n), tokens: Float64Array.from(j.tokens) };
}

export interface MetricsJson {
  count: string;
  by: string;
  layers: LayerMetrics[];
}

/** SPEC §3 `router`: router confidence of one layer. */
/** Router confidence of a layer (SPEC §3 `router`), as the analysis computes it. */
export type RouterConfidence = RouterMetrics;

/** Per-layer routing statistics that need the rows (SPEC §3 names), over the analysed tokens. */
export interface LayerStats {
  layer: number;
  tokens: number;
  router: RouterConfidence;
  repeat_rate: number | null;
  repeat_rate_chance: number | null;
  /** null when no token id has 8 routings at the layer. */
  token_specialisation: number | null;
  token_specialisation_chance: number | null;
  /** Token ids with at least 8 routings (those token_specialisation averages over). */
  token_specialisation_ids: number;
}

export interface LayerStatsJson {
  by: string;
  groups: string[];
  numExperts: number;
  topK: number;
  routerScoring: string;
  /** 1/E: the top-1 gate of a router that cannot choose. */
  uniformGate: number;
  /** How each number was computed, in words (shown under the charts). */
  notes: string[];
  layers: LayerStats[];
}

/** SPEC §3 `coactivation` of one layer: C[i][j] = #(i and j both chosen) / #(i chosen); row i all null when i is never chosen. */
export interface CoactivationJson {
  layer: number;
  numExperts: number;
  topK: number;
  /** Tokens that chose expert i (the diagonal counts). */
  chosen: number[];
  /** Row-major E x E, C[i * E + j]; null where expert i is never chosen. */
  matrix: (number | null)[];
}

/** One position of a sample with its routing at every layer. */
export interface TokenRouting {
  pos: number;
  modality: string;
  token: number;
  word: string | null; // text/special: the word when known
  image: number; // index of the image part in the sample, -1 if none
  experts: number[][]; // per layer (in `layers` order): chosen experts, by descending gate
  gates: number[][];
}

export interface SampleDetail {
  sample: number;
  text: string | null;
  source: string | null;
  domain: string | null;
  /** Image parts with a stored PNG; an image part without one is drawn as its patch grid alone. */
  images: number;
  /** Per image part its grid of image tokens [t, h, w] (samples `image_grids`: Qwen2/3-VL's merged, non-square grids), when the trace records it. */
  imageGrids: number[][] | null;
  layers: number[];
  tokens: TokenRouting[];
}

export interface SampleList {
  total: number;
  rows: { sample: number; text: string; images: number; source: string; domain: string | null }[];
}

/** A word routed to an expert, ranked by over-representation. */
export interface WordLift {
  token: number;
  word: string | null;
  /** Routings of this token to the expert at the layer. */
  n: number;
  /** Routings of this token at the layer, to any expert. */
  layerN: number;
  /** (n / expert total) / (layerN / layer total): how much more often than the layer's overall frequency. */
  lift: number;
}

export interface ExpertExample {
  sample: number;
  pos: number;
  token: number;
  word: string | null;
  image: number;
  /** Image examples: whether samples.parquet holds this image's PNG (else the page draws the patch in its grid). */
  imageStored: boolean;
  experts: number[];
  gates: number[];
  /** The expert's gate for this token (null when the trace has no gates). */
  gate: number | null;
  /** Words around the position (text examples): before, the word, after. */
  context: { before: string; after: string } | null;
}

export interface ExpertPage {
  layer: number;
  expert: number;
  mode: string;
  modality: string;
  /** Only examples of this token id (a word's context), or null. */
  token: number | null;
  totals: Record<string, number>;
  /** Words by descending lift (tokens with at least `minCount` routings to the expert). */
  topWords: WordLift[];
  minCount: number;
  /** Routings at the layer (text) and to the expert (text): the lift's denominators. */
  layerTextTotal: number;
  expertTextTotal: number;
  offset: number;
  limit: number;
  total: number;
  /** Examples by descending gate. */
  examples: ExpertExample[];
  patchesPerImage: number;
  patchGrid: [number, number] | null;
}

export interface FlowJson {
  a: number;
  b: number;
  numExperts: number;
  groups: string[];
  /** Top-1 transitions: row-major E x E per group, counts. */
  n: number[][];
}

/** Compare many traces (`serve A --compare B C ...`): per layer, each trace's S, load CV and saturation against A. */
export interface CompareJson {
  names: string[];
  folders: string[];
  /** `same`: the traces' models agree (experts matched by id); `different`: they do not (only summaries, with the warning); `unknown`: not recorded. */
  models: 'same' | 'different' | 'unknown';
  warning: string | null;
  by: string;
  groups: string[];
  layers: {
    layer: number;
    S: (number | null)[];
    cv: (number | null)[];
    /** Saturation of each trace's top-k against A's for the same (sample, pos) (A itself: null). */
    saturation: (number | null)[];
  }[];
  /** Each trace's counts (for figures and per-expert differences), only when experts can be matched by id. */
  counts: CountsJson[] | null;
}
