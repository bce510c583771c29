/** Shared shapes of the analysis (SPEC §3). Pure types: the browser imports them too. */

/** How one token's k choices count: each 1 (`all`), only the highest gate (`top1`), or by gate renormalised to 1 (`gate`). */
export type CountMode = 'all' | 'top1' | 'gate';
export const COUNT_MODES: readonly CountMode[] = ['all', 'top1', 'gate'];

/**
 * `expert`: each bar sums to 100%; `group` (alias `modality`): P(e|g); `balanced`: `expert` after
 * dividing by group totals.
 */
export type Normalization = 'expert' | 'modality' | 'balanced';
export const NORMALIZATIONS: readonly Normalization[] = ['expert', 'modality', 'balanced'];
/** `--normalize` values: the SPEC name `group` and its alias `modality`. */
export type NormalizeOption = Normalization | 'group';
export const NORMALIZE_CHOICES: readonly NormalizeOption[] = ['expert', 'group', 'modality', 'balanced'];
export const normalization = (o: NormalizeOption): Normalization => (o === 'group' ? 'modality' : o);

export { DEFAULT_MODALITY_GROUPS as DEFAULT_MODALITIES } from './groups.js';

/**
 * Counts n[l][e][g] for the selected layers and groups: `n[(li * E + e) * G + gi]` where li
 * indexes `layers` and gi indexes `modalities` (the groups; named so for the figure's callers).
 * `tokens[li * G + gi]` is the number of tokens (each counted once whatever k is) of group gi
 * routed in layer `layers[li]`. `by` is the grouping column (`modality`, `domain`, ...).
 */
export interface Counts {
  mode: CountMode;
  by?: string; // absent: modality
  numExperts: number;
  topK: number;
  layers: number[];
  modalities: string[];
  n: Float64Array;
  tokens: Float64Array;
}

/** Router confidence of one layer (SPEC §3 `router`); null where the trace cannot say. */
export interface RouterMetrics {
  gate_top1_mean: number | null; // mean gate of the first (highest) choice
  top1_prob_mean: number | null; // mean top-1 router probability (prob column, or unrenormalised gates)
  margin_mean: number | null; // mean top-1 minus top-2 probability
  entropy_mean: number | null; // bits, from prob
  near_uniform: boolean | null; // softmax router whose top-1 probability is within 10% of 1/E
}

/** A bootstrap interval over samples for the shares of one layer: lo/hi[e][g], fractions. */
export interface ShareInterval {
  level: number;
  replicates: number;
  normalize: 'expert' | 'group';
  lo: (number | null)[][];
  hi: (number | null)[][];
}

/** Per-layer numbers of SPEC §3, with SPEC's key names. `null` where a metric is undefined. */
export interface LayerMetrics {
  layer: number;
  tokens: Record<string, number>; // per analysed group
  assignments: number; // sum of n over experts and groups
  S: number | null;
  S0: number | null;
  mi: number | null; // I(G;E), bits
  mi_norm: number | null; // I(G;E)/H(G)
  h_groups: number | null; // H(G), bits
  jsd: number | null; // JSD(P(e|g1), P(e|g2)), bits, first two groups
  load: {
    share: number[]; // f_e
    cv: number | null; // population std / mean
    max_over_mean: number | null;
    active_fraction: number;
    dead: number; // experts with no token
    dead_ids: number[];
  };
  router: RouterMetrics;
  repeat_rate: number | null;
  repeat_rate_chance: number | null;
  coactivation: (number | null)[][] | null; // E x E, k >= 2; a row is null for an expert never chosen
  token_specialisation: number | null;
  token_specialisation_chance: number | null;
  token_specialisation_ids: number; // token ids with at least 8 routings
  share_ci?: ShareInterval;
}

/** One row of allocation.csv and the figure's data. share is in % (null for an expert with no tokens). */
export interface AllocationRow {
  layer: number;
  expert: number;
  modality: string;
  count: number;
  share: number | null;
}

/** Per-layer metrics beyond the counts (SPEC §3 `router`, `repeat_rate`, `coactivation`, `token_specialisation`). */
export interface LayerExtras {
  router: RouterMetrics;
  repeat_rate: number | null;
  repeat_rate_chance: number | null;
  coactivation: (number | null)[][] | null;
  token_specialisation: number | null;
  token_specialisation_chance: number | null;
  token_specialisation_ids: number;
}
