/** Shared shapes of the analysis (SPEC §3). Pure types: the browser imports them too. */

/** How one token's k choices count: each 1 (`all`), only the highest gate (`top1`), or by gate renormalised to 1 (`gate`). */
export type CountMode = 'all' | 'top1' | 'gate';
export const COUNT_MODES: readonly CountMode[] = ['all', 'top1', 'gate'];

/** `expert`: each bar sums to 100%; `modality`: P(e|m); `balanced`: `expert` after dividing by modality totals. */
export type Normalization = 'expert' | 'modality' | 'balanced';
export const NORMALIZATIONS: readonly Normalization[] = ['expert', 'modality', 'balanced'];

export const DEFAULT_MODALITIES: readonly string[] = ['text', 'image'];

/**
 * Counts n[l][e][m] for the selected layers and modalities: `n[(li * E + e) * M + mi]` where
 * li indexes `layers` and mi indexes `modalities`. `tokens[li * M + mi]` is the number of tokens
 * (each counted once whatever k is) of modality mi routed in layer `layers[li]`.
 */
export interface Counts {
  mode: CountMode;
  numExperts: number;
  topK: number;
  layers: number[];
  modalities: string[];
  n: Float64Array;
  tokens: Float64Array;
}

/** Per-layer numbers of SPEC §3. `null` where a metric is undefined (e.g. one modality only, or no tokens). */
export interface LayerMetrics {
  layer: number;
  tokens: Record<string, number>; // per analysed modality
  assignments: number; // sum of n over experts and modalities
  specialization: number | null; // S
  specializationBaseline: number | null; // S0
  mutualInformation: number | null; // I(M;E), bits
  mutualInformationNormalized: number | null; // I(M;E)/H(M)
  modalityEntropy: number | null; // H(M), bits
  jsdTextImage: number | null; // JSD(P(e|text), P(e|image)), bits
  load: {
    share: number[]; // f_e
    cv: number | null; // population std / mean
    maxOverMean: number | null;
    activeFraction: number;
    deadExperts: number[];
  };
  routerEntropy: number | null; // mean over tokens of H(prob), bits; null without `prob`
}

/** One row of allocation.csv and the figure's data. share is in % (null for an expert with no tokens). */
export interface AllocationRow {
  layer: number;
  expert: number;
  modality: string;
  count: number;
  share: number | null;
}
