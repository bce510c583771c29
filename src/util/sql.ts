/** A SQL string literal (DuckDB, and the portable SQL of the docs). Kept apart from analysis/db.ts so that code without a database does not load DuckDB. */
export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
