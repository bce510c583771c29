import { Conv, PType, ParquetFileWriter, gatherDoubles, gatherInts, type ChunkWriter, type Leaf } from './file-writer.js';
import type { GroupOrder } from '../group-order.js';
import type { TokenEntries } from '../token-runs.js';

/**
 * agg-token.parquet (SPEC §2 aggregates) from the merged per-token counts, block by block as they
 * come: the schema DuckDB gives the SQL of aggregates.ts (layer SMALLINT, modality / domain / phase
 * VARCHAR with NULLs, token INTEGER, expert SMALLINT, n BIGINT). The group columns are looked up
 * per entry by gid; layer and token are sorted (DELTA_BINARY_PACKED: a few bits a row), the text
 * columns and expert dictionary-coded, n DELTA as INT64.
 */

/** Per gid, the group's layer and its codes into `names` (-1 NULL). */
export type TokenGroups = Pick<GroupOrder, 'layer' | 'mod' | 'dom' | 'phase' | 'names'>;

/** Rows per row group (DuckDB's default). */
export const TOKEN_ROW_GROUP = 122880;

/** Write the file at `path`; `fill` hands each block of entries, in file order, to its callback. */
export function writeTokenFile(path: string, groups: TokenGroups, fill: (rowGroup: (b: TokenEntries) => void) => void): void {
  let cur: TokenEntries | null = null;
  const byGroup = (col: Int32Array) => (w: ChunkWriter, rows: Int32Array) => {
    const gid = cur!.gid;
    const out = w.ints(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = col[gid[rows[i]]];
    return out;
  };
  const layer = byGroup(groups.layer), mod = byGroup(groups.mod), dom = byGroup(groups.dom), phase = byGroup(groups.phase);
  const text = (name: string, codes: typeof mod, names: readonly string[]): Leaf => ({
    name, list: false, type: PType.BYTE_ARRAY, conv: Conv.UTF8, logical: 'string', write: (w, rows) => w.codedStrings(codes(w, rows), names),
  });
  const f = new ParquetFileWriter(path, [
    { name: 'layer', list: false, type: PType.INT32, conv: Conv.INT_16, logical: 'int16', write: (w, rows) => w.deltaInts(layer(w, rows)) },
    text('modality', mod, groups.names.modality),
    text('domain', dom, groups.names.domain),
    text('phase', phase, groups.names.phase),
    { name: 'token', list: false, type: PType.INT32, conv: Conv.INT_32, logical: 'int32', write: (w, rows) => w.deltaInts(gatherInts(w, cur!.token, rows)) },
    { name: 'expert', list: false, type: PType.INT32, conv: Conv.INT_16, logical: 'int16', write: (w, rows) => w.dictInts(gatherInts(w, cur!.expert, rows)) },
    { name: 'n', list: false, type: PType.INT64, conv: Conv.INT_64, logical: 'int64', write: (w, rows) => w.int64s(gatherDoubles(w, cur!.count, rows)) },
  ]);
  try {
    const rows = new Int32Array(TOKEN_ROW_GROUP);
    for (let i = 0; i < rows.length; i++) rows[i] = i;
    fill((b) => {
      cur = b;
      f.rowGroup(rows.subarray(0, b.n));
    });
    f.finish();
  } finally {
    f.close();
  }
}
