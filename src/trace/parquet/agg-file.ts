import { Conv, PType, gatherDoubles, gatherInts, writeParquetFile, type ChunkWriter, type Leaf } from './file-writer.js';
import { orderByAll, type SortColumn } from '../order-by-all.js';
import type { GroupOrder } from '../group-order.js';

/**
 * A small aggregate table (agg-counts / -tokens / -repeat / -coact.parquet, SPEC §2) from the
 * writer's arrays, with the schema and rows DuckDB wrote for `COPY (SELECT * FROM (query) ORDER BY
 * ALL)` over the queries these tables replaced: the group's layer SMALLINT and modality / domain /
 * phase VARCHAR (NULL: none), then the table's own columns (SMALLINT, BIGINT, DOUBLE, VARCHAR).
 * Rows are sorted by the group's rank, then the own columns (order-by-all.ts): the same order,
 * without comparing a row's text. Layer and the SMALLINT columns are DELTA_BINARY_PACKED, text
 * dictionary-coded (NULLs as definition levels), BIGINT as counts (int64s), DOUBLE plain.
 */

/** A column beside the group's keys, in the writer's arrays (BIGINT: integers below 2^53). */
export type AggColumn =
  | { name: string; type: 'SMALLINT'; values: Int32Array }
  | { name: string; type: 'BIGINT'; values: Float64Array }
  | { name: string; type: 'DOUBLE'; values: Float64Array; nulls?: Uint8Array }
  | { name: string; type: 'VARCHAR'; codes: Int32Array; names: readonly string[] };

/** A table's rows: row i is group gid[i]'s keys, then row i of `columns`. */
export interface AggRows {
  gid: Int32Array;
  columns: AggColumn[];
}

/** DuckDB's default row group. */
const ROW_GROUP = 122880;

/** Write the table at `path`. */
export function writeAggFile(path: string, groups: GroupOrder, { gid, columns }: AggRows): void {
  const n = gid.length;
  const rank = new Int32Array(n);
  for (let i = 0; i < n; i++) rank[i] = groups.rank[gid[i]];
  const order = orderByAll([{ values: rank }, ...columns.map(sortColumn)], n);
  const byGroup = (col: Int32Array) => (w: ChunkWriter, rows: Int32Array) => {
    const out = w.ints(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = col[gid[rows[i]]];
    return out;
  };
  const leaves: Leaf[] = [
    { name: 'layer', list: false, type: PType.INT32, conv: Conv.INT_16, logical: 'int16', write: (w, rows) => w.deltaInts(byGroup(groups.layer)(w, rows)) },
    textLeaf('modality', byGroup(groups.mod), groups.names.modality),
    textLeaf('domain', byGroup(groups.dom), groups.names.domain),
    textLeaf('phase', byGroup(groups.phase), groups.names.phase),
    ...columns.map(leafOf),
  ];
  writeParquetFile(path, leaves, order, ROW_GROUP);
}

function sortColumn(c: AggColumn): SortColumn {
  return c.type === 'VARCHAR' ? { codes: c.codes, names: c.names } : { values: c.values, nulls: c.type === 'DOUBLE' ? c.nulls : undefined };
}

function leafOf(c: AggColumn): Leaf {
  switch (c.type) {
    case 'SMALLINT':
      return { name: c.name, list: false, type: PType.INT32, conv: Conv.INT_16, logical: 'int16', write: (w, rows) => w.deltaInts(gatherInts(w, c.values, rows)) };
    case 'BIGINT':
      return { name: c.name, list: false, type: PType.INT64, conv: Conv.INT_64, logical: 'int64', write: (w, rows) => w.int64s(gatherDoubles(w, c.values, rows)) };
    case 'DOUBLE': {
      const { values, nulls } = c;
      return {
        name: c.name, list: false, type: PType.DOUBLE, conv: null, logical: null,
        write: (w, rows) => (nulls ? w.optionalDoubles(gatherDoubles(w, values, rows), Uint8Array.from(rows, (r) => nulls[r])) : w.plainDoubles(gatherDoubles(w, values, rows))),
      };
    }
    case 'VARCHAR':
      return textLeaf(c.name, (w, rows) => gatherInts(w, c.codes, rows), c.names);
  }
}

/** Text codes (-1 NULL), dictionary-coded. */
function textLeaf(name: string, codes: (w: ChunkWriter, rows: Int32Array) => Int32Array, names: readonly string[]): Leaf {
  return { name, list: false, type: PType.BYTE_ARRAY, conv: Conv.UTF8, logical: 'string', write: (w, rows) => w.codedStrings(codes(w, rows), names) };
}
