import { expertOrder, layerShares, type SortOrder } from '../analysis/allocation.js';
import type { Counts } from '../analysis/types.js';
import { groupLabel } from './spec-palette.js';

/** `group` is SPEC §3's name of P(e|g); `modality` is its older alias. */
export type FigureNormalization = 'expert' | 'group' | 'modality' | 'balanced';

export const isGroupNormalization = (n: string): boolean => n === 'group' || n === 'modality';

/** One bar segment of the figure (or, with `empty`, the marker of an expert that got no tokens). */
export interface FigureRow {
  layer: number;
  expert: number;
  group: string | null;
  label: string | null; // legend label, e.g. 'Text' or 'arxiv'
  stack: number; // position in the stack, 0 = bottom
  share: number | null; // % (expert/balanced: of the bar; group: of the group's tokens)
  count: number; // the segment's count under the counting mode
  total: number; // the expert's count over the analysed groups (the bar's label with --labels counts)
  /** Bootstrap interval of `share` in %, when the analysis carries one. */
  lo?: number;
  hi?: number;
  empty: boolean;
}

/** Everything the figure shows, independent of how it is drawn. */
export interface FigureData {
  normalize: FigureNormalization;
  sort: SortOrder | string;
  /** What the groups are (`modality`, `domain`, `phase`, a column): names the legend and the y axis. */
  by: string;
  mode: string;
  topK: number;
  numExperts: number;
  layers: number[];
  groups: string[];
  rows: FigureRow[];
  /** x order of each panel, every expert exactly once. */
  order: Record<number, number[]>;
  /** group normalisation only: the uniform level in % (k/E under `all`, 1/E otherwise). */
  uniform: number | null;
  /** Experts with no token in each layer (marked in the figure). */
  dead: Record<number, number[]>;
  /** The confidence level of lo/hi in %, when rows carry bounds. */
  ci: number | null;
}

/** A bootstrap interval of one share, in % (SPEC §3 bounds as the analysis gives them). */
export interface ShareBound {
  layer: number;
  expert: number;
  group: string;
  lo: number;
  hi: number;
}

/** Counts as analyze gives them; `groups` is the SPEC's name of the list, `modalities` the older one. */
export type GroupCounts = Counts & { groups?: string[] };

export interface FigureDataOptions {
  by?: string;
  bounds?: readonly ShareBound[];
  ci?: number;
}

/**
 * Counts -> figure data. With `group` normalisation the bars show the share of a group's tokens
 * that choose each expert (P(e|g) times the choices per token), so that the uniform level is k/E.
 */
export function figureData(counts: GroupCounts, normalize: FigureNormalization = 'expert', sort: SortOrder | string = 'text', opts: FigureDataOptions = {}): FigureData {
  const groups = counts.groups ?? counts.modalities;
  const c: Counts = { ...counts, modalities: groups };
  const byGroup = isGroupNormalization(normalize);
  // the analysis' own name of P(e|g) (one definition of the normalisations: analysis/allocation.ts)
  const norm = (byGroup ? 'modality' : normalize) as Parameters<typeof layerShares>[2];
  const by = opts.by ?? 'modality';
  const E = c.numExperts;
  const G = groups.length;
  const perToken = byGroup && c.mode === 'all' ? c.topK : 1;
  const bound = new Map((opts.bounds ?? []).map((b) => [`${b.layer}/${b.expert}/${b.group}`, b]));
  const rows: FigureRow[] = [];
  const order: Record<number, number[]> = {};
  const dead: Record<number, number[]> = {};
  c.layers.forEach((layer, li) => {
    order[layer] = expertOrder(c, li, sort as SortOrder, norm);
    dead[layer] = [];
    const shares = layerShares(c, li, norm);
    for (let e = 0; e < E; e++) {
      const s = shares[e];
      let total = 0;
      for (let g = 0; g < G; g++) total += c.n[(li * E + e) * G + g];
      if (s === null) {
        dead[layer].push(e);
        rows.push({ layer, expert: e, group: null, label: null, stack: 0, share: null, count: 0, total: 0, empty: true });
        continue;
      }
      groups.forEach((group, g) => {
        const b = bound.get(`${layer}/${e}/${group}`);
        rows.push({
          layer, expert: e, group, label: groupLabel(group, by), stack: g, share: 100 * s[g] * perToken, count: c.n[(li * E + e) * G + g], total,
          ...(b ? { lo: b.lo, hi: b.hi } : {}), empty: false,
        });
      });
    }
  });
  return {
    normalize, sort, by, mode: c.mode, topK: c.topK, numExperts: E, layers: [...c.layers], groups: [...groups], rows, order,
    uniform: byGroup ? (100 * perToken) / E : null, dead, ci: opts.bounds?.length ? (opts.ci ?? 95) : null,
  };
}
