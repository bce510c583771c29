import { Conv, PType, gatherInts, writeParquetFile, type Leaf } from './file-writer.js';
import type { StageColumns } from '../row-stage.js';
import type { FileRecord } from '../meta.js';

/**
 * One routing file (SPEC §2) from the writer's held rows, in the order `perm`: the schema DuckDB
 * gives these columns (nullable INTEGER/SMALLINT/VARCHAR, 3-level LISTs), with the encodings that
 * suit each — sample, pos and layer DELTA_BINARY_PACKED (sorted: ~0 bits a row), token and the
 * text columns dictionary-coded, expert ids bit-packed against the dictionary 0..E-1 — and min/max
 * statistics, so readers prune row groups by layer, sample or expert.
 */

export interface RoutingFileSpec {
  K: number;
  /** experts: ids are 0..E-1 */
  E: number;
  /** write the held gates; false: the gate column is NULL (the producer recorded none) */
  gates: boolean;
  /** the prob column's width (numExperts), 0 without --full-probs */
  probs: number;
  modalityNames: readonly string[];
  extra: { name: string; type: 'VARCHAR' | 'INTEGER'; names: readonly string[] }[];
  rowGroupRows: number;
}

/** The held rows in the order RowStage.order left in `st.perm`; returns the file's size and SHA-256. */
export function writeRoutingFile(path: string, st: StageColumns, spec: RoutingFileSpec): FileRecord {
  return writeParquetFile(path, routingLeaves(st, spec), st.perm.subarray(0, st.rows), spec.rowGroupRows);
}

/** The routing columns, in SPEC §2's order. */
function routingLeaves(st: StageColumns, spec: RoutingFileSpec): Leaf[] {
  const { K, E } = spec;
  const leaves: Leaf[] = [
    { name: 'sample', list: false, type: PType.INT32, conv: Conv.INT_32, logical: 'int32', write: (w, rows) => w.deltaInts(gatherInts(w, st.sample, rows)) },
    { name: 'pos', list: false, type: PType.INT32, conv: Conv.INT_32, logical: 'int32', write: (w, rows) => w.deltaInts(gatherInts(w, st.pos, rows)) },
    { name: 'modality', list: false, type: PType.BYTE_ARRAY, conv: Conv.UTF8, logical: 'string', write: (w, rows) => w.codedStrings(gatherInts(w, st.mod, rows), spec.modalityNames) },
    { name: 'token', list: false, type: PType.INT32, conv: Conv.INT_32, logical: 'int32', write: (w, rows) => w.dictInts(gatherInts(w, st.token, rows)) },
    { name: 'layer', list: false, type: PType.INT32, conv: Conv.INT_16, logical: 'int16', write: (w, rows) => w.deltaInts(gatherInts(w, st.layer, rows)) },
    { name: 'expert', list: true, type: PType.INT32, conv: Conv.INT_16, logical: 'int16', write: (w, rows) => w.expertLists(st.experts, rows, K, E) },
    {
      name: 'gate', list: true, type: PType.FLOAT, conv: null, logical: null,
      write: (w, rows) => (spec.gates ? w.floatLists(st.gates, rows, K) : w.nullLists(rows.length)),
    },
  ];
  if (spec.probs) leaves.push({ name: 'prob', list: true, type: PType.FLOAT, conv: null, logical: null, write: (w, rows) => w.floatLists(st.probs, rows, spec.probs) });
  spec.extra.forEach((c, x) => {
    leaves.push(
      c.type === 'VARCHAR'
        ? { name: c.name, list: false, type: PType.BYTE_ARRAY, conv: Conv.UTF8, logical: 'string', write: (w, rows) => w.codedStrings(gatherInts(w, st.extra[x], rows), c.names) }
        : { name: c.name, list: false, type: PType.INT32, conv: Conv.INT_32, logical: 'int32', write: (w, rows) => w.plainInts(gatherInts(w, st.extra[x], rows)) },
    );
  });
  return leaves;
}

