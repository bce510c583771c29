/**
 * The row order of DuckDB's `ORDER BY ALL` (every column ascending, left to right, NULLS LAST as
 * DuckDB defaults to), for the tables the writer sorts itself: numbers numerically, -0 equal to 0,
 * NaN after +Infinity (every NaN equal); text byte-wise in UTF-8, which is code point order (JS's
 * `<` on UTF-16 is not, above U+FFFF); NULL after every value. test/trace/order-by-all.test.ts
 * checks it against DuckDB.
 */

/** A column of n rows: numbers (nulls[i] = 1: NULL), or text as codes into `names` (-1: NULL). */
export type SortColumn = { values: ArrayLike<number>; nulls?: Uint8Array } | { codes: Int32Array; names: readonly string[] };

/** Rows 0..n-1 in ORDER BY ALL order; equal rows keep their order. */
export function orderByAll(columns: readonly SortColumn[], n: number): Int32Array {
  const cmp = rowComparator(columns);
  const rows: number[] = [];
  for (let i = 0; i < n; i++) rows.push(i);
  // an Array's sort (TimSort) costs about n comparisons when rows come nearly in order, as the writer's do
  rows.sort(cmp);
  return Int32Array.from(rows);
}

/** orderByAll, and each row's rank in it: its position, or that of the first row it equals. */
export function rankRows(columns: readonly SortColumn[], n: number): { order: Int32Array; rank: Int32Array } {
  const cmp = rowComparator(columns);
  const order = orderByAll(columns, n);
  const rank = new Int32Array(n);
  for (let k = 1; k < n; k++) rank[order[k]] = cmp(order[k - 1], order[k]) === 0 ? rank[order[k - 1]] : k;
  return { order, rank };
}

/** DuckDB's order of two numbers. */
export function compareNumbers(x: number, y: number): number {
  if (x < y) return -1;
  if (x > y) return 1;
  if (x === y) return 0;
  return (x !== x ? 1 : 0) - (y !== y ? 1 : 0); // a NaN
}

function rowComparator(columns: readonly SortColumn[]): (a: number, b: number) => number {
  const cs = columns.map(columnComparator);
  return (a, b) => {
    for (const c of cs) {
      const d = c(a, b);
      if (d !== 0) return d;
    }
    return 0;
  };
}

function columnComparator(c: SortColumn): (a: number, b: number) => number {
  if ('codes' in c) {
    const { codes } = c;
    const rank = nameRanks(c.names);
    const NULL = c.names.length; // after every name's rank
    return (a, b) => {
      const x = codes[a], y = codes[b];
      return (x < 0 ? NULL : rank[x]) - (y < 0 ? NULL : rank[y]);
    };
  }
  const { values, nulls } = c;
  if (!nulls) return (a, b) => compareNumbers(values[a], values[b]);
  return (a, b) => nulls[a] - nulls[b] || (nulls[a] ? 0 : compareNumbers(values[a], values[b]));
}

const utf8 = new TextEncoder();

/** Each name's rank in byte-wise order of its UTF-8 (names with the same bytes, e.g. lone surrogates made U+FFFD, share one). */
function nameRanks(names: readonly string[]): Int32Array {
  const bytes = names.map((s) => utf8.encode(s));
  const order = names.map((_, i) => i).sort((a, b) => Buffer.compare(bytes[a], bytes[b]));
  const rank = new Int32Array(names.length);
  for (let k = 1; k < order.length; k++) rank[order[k]] = Buffer.compare(bytes[order[k - 1]], bytes[order[k]]) === 0 ? rank[order[k - 1]] : k;
  return rank;
}
