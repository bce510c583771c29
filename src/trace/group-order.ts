/**
 * The order of the aggregate groups (layer, modality, domain, phase) that DuckDB's
 * `ORDER BY layer, modality, domain, phase` gives: layer as a number, text byte-wise in UTF-8
 * (code point order, which JS's `<` on UTF-16 is not for characters above U+FFFF), NULL last.
 * The per-token counts are sorted by it in JS (token-runs.ts), so agg-token.parquet comes out in
 * the order ORDER BY ALL gives without DuckDB sorting it.
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

/** Per group, its 0-based position in that order. */
export function groupRanks(groups: readonly GroupKey[], names: GroupNames): Int32Array {
  // each name encoded once (a name is shared by many groups), as the Parquet writer encodes it
  const utf8 = new TextEncoder();
  const encoder = (list: readonly string[]) => {
    const memo = new Map<number, Uint8Array>();
    return (code: number): Uint8Array | null => {
      if (code < 0) return null;
      let b = memo.get(code);
      if (!b) memo.set(code, (b = utf8.encode(list[code])));
      return b;
    };
  };
  const mod = encoder(names.modality), dom = encoder(names.domain), phase = encoder(names.phase);
  const keyed = groups.map((g, i) => ({ i, layer: g.layer, mod: mod(g.mod), dom: dom(g.dom), phase: phase(g.phase) }));
  keyed.sort((a, b) => a.layer - b.layer || compareText(a.mod, b.mod) || compareText(a.dom, b.dom) || compareText(a.phase, b.phase));
  const rank = new Int32Array(groups.length);
  keyed.forEach((k, r) => (rank[k.i] = r));
  return rank;
}

/** Byte-wise, NULL last. */
function compareText(a: Uint8Array | null, b: Uint8Array | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return Buffer.compare(a, b);
}
