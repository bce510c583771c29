import { rankRows } from './order-by-all.js';

/**
 * The order of the aggregate groups (layer, modality, domain, phase) that DuckDB's
 * `ORDER BY layer, modality, domain, phase` gives (order-by-all.ts: layer as a number, text
 * byte-wise in UTF-8, NULL last). The small aggregate tables are written in it (parquet/agg-file.ts)
 * and the per-token counts sorted by it (token-runs.ts), so the files come out in ORDER BY ALL
 * order without DuckDB sorting them.
 */

/** A group's codes into the writer's dictionaries; -1 is NULL. */
export interface GroupKey {
  layer: number;
  mod: number;
  dom: number;
  phase: number;
}

/** The dictionaries the codes index. */
export interface GroupNames {
  modality: readonly string[];
  domain: readonly string[];
  phase: readonly string[];
}

/**
 * The groups' keys by gid: layer, and codes (-1 NULL) into `names`, which hold only the names some
 * group uses; `order`: gids in ORDER BY layer, modality, domain, phase; `rank`: a gid's place in it
 * (groups with equal keys share one).
 */
export interface GroupOrder {
  layer: Int32Array;
  mod: Int32Array;
  dom: Int32Array;
  phase: Int32Array;
  names: GroupNames;
  order: Int32Array;
  rank: Int32Array;
}

export function groupOrder(keys: readonly GroupKey[], names: GroupNames): GroupOrder {
  // each dictionary reduced to the names groups use (a writer's domains may run to a million)
  const compact = (codes: Int32Array, all: readonly string[]) => {
    const used = new Map<number, number>();
    const out: string[] = [];
    for (let g = 0; g < codes.length; g++) {
      const c = codes[g];
      if (c < 0) continue;
      let k = used.get(c);
      if (k === undefined) {
        used.set(c, (k = out.length));
        out.push(all[c]);
      }
      codes[g] = k;
    }
    return out;
  };
  const layer = Int32Array.from(keys, (k) => k.layer);
  const mod = Int32Array.from(keys, (k) => k.mod), dom = Int32Array.from(keys, (k) => k.dom), phase = Int32Array.from(keys, (k) => k.phase);
  const compactNames = { modality: compact(mod, names.modality), domain: compact(dom, names.domain), phase: compact(phase, names.phase) };
  const { order, rank } = rankRows([
    { values: layer }, { codes: mod, names: compactNames.modality }, { codes: dom, names: compactNames.domain }, { codes: phase, names: compactNames.phase },
  ], keys.length);
  return { layer, mod, dom, phase, names: compactNames, order, rank };
}

/** Per group, its 0-based position in that order (distinct: equal keys keep gid order). */
export function groupPositions(keys: readonly GroupKey[], names: GroupNames): Int32Array {
  const { order } = groupOrder(keys, names);
  const pos = new Int32Array(order.length);
  order.forEach((g, k) => (pos[g] = k));
  return pos;
}
