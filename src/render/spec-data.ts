import { expertOrder, layerShares, type SortOrder } from '../analysis/allocation.js';
import type { Counts, Normalization } from '../analysis/types.js';
import { modalityLabel } from './spec-palette.js';

/** One bar segment of the figure (or, with `empty`, the marker of an expert that got no tokens). */
export interface FigureRow {
  layer: number;
  expert: number;
  modality: string | null;
  label: string | null; // legend label, e.g. 'Text'
  stack: number; // position in the stack, 0 = bottom
  share: number | null; // % (expert/balanced: of the bar; modality: of the modality's tokens)
  count: number;
  empty: boolean;
}

/** Everything the figure shows, independent of how it is drawn. */
export interface FigureData {
  normalize: Normalization;
  sort: SortOrder;
  numExperts: number;
  layers: number[];
  modalities: string[];
  rows: FigureRow[];
  /** x order of each panel, every expert exactly once. */
  order: Record<number, number[]>;
  /** modality normalisation only: the uniform level in % (k/E under `all`, 1/E otherwise). */
  uniform: number | null;
}

/**
 * Counts -> figure data. With `modality` normalisation the bars show the share of a modality's
 * tokens that choose each expert (P(e|m) times the choices per token), so that the uniform level is k/E.
 */
export function figureData(counts: Counts, normalize: Normalization = 'expert', sort: SortOrder = 'text'): FigureData {
  const E = counts.numExperts;
  const M = counts.modalities.length;
  const perToken = normalize === 'modality' && counts.mode === 'all' ? counts.topK : 1;
  const rows: FigureRow[] = [];
  const order: Record<number, number[]> = {};
  counts.layers.forEach((layer, li) => {
    order[layer] = expertOrder(counts, li, sort, normalize);
    const shares = layerShares(counts, li, normalize);
    for (let e = 0; e < E; e++) {
      const s = shares[e];
      if (s === null) {
        rows.push({ layer, expert: e, modality: null, label: null, stack: 0, share: null, count: 0, empty: true });
        continue;
      }
      counts.modalities.forEach((modality, m) => {
        rows.push({ layer, expert: e, modality, label: modalityLabel(modality), stack: m, share: 100 * s[m] * perToken, count: counts.n[(li * E + e) * M + m], empty: false });
      });
    }
  });
  return { normalize, sort, numExperts: E, layers: [...counts.layers], modalities: [...counts.modalities], rows, order, uniform: normalize === 'modality' ? (100 * perToken) / E : null };
}
