// Shared by the import tests (not a test file itself).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';

export const root = fileURLToPath(new URL('../../../', import.meta.url));
export const fixture = (name: string, file = '') => join(root, 'test/fixtures', `import-${name}`, file);

export function moescope(args: string[], opts: { nodeArgs?: string[] } = {}) {
  const r = spawnSync(process.execPath, [...(opts.nodeArgs ?? []), join(root, 'bin/moescope'), ...args], { cwd: root, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the test file's process exits. */
export function tmp(prefix = 'moescope-import-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export interface Expected {
  all: Record<string, number>;
  top1: Record<string, number>;
  tokens: Record<string, number>;
  rows: number;
  [k: string]: unknown;
}

export function expected(name: string): Expected {
  return JSON.parse(readFileSync(fixture(name, 'expected.json'), 'utf8')) as Expected;
}

export async function query(sql: string): Promise<Record<string, unknown>[]> {
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  try {
    const r = await conn.runAndReadAll(sql);
    return r.getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    conn.closeSync();
    inst.closeSync();
  }
}

/** Counts of a trace folder in the expected.json shape, read straight from its Parquet with SQL. */
export async function traceCounts(dir: string): Promise<Expected & { meta: Record<string, unknown> }> {
  const p = `'${join(dir, 'routing.parquet')}'`;
  const toMap = (rows: Record<string, unknown>[]) => Object.fromEntries(rows.map((r) => [`${r.layer}/${r.expert}/${r.modality}`, Number(r.n)]));
  const all = toMap(await query(`SELECT layer, e AS expert, modality, count(*) AS n FROM (SELECT layer, unnest(expert) AS e, modality FROM ${p}) GROUP BY ALL`));
  const top1 = toMap(await query(`SELECT layer, expert[1] AS expert, modality, count(*) AS n FROM ${p} GROUP BY ALL`));
  const tokens = Object.fromEntries((await query(`SELECT modality, count(*) AS n FROM (SELECT DISTINCT sample, pos, modality FROM ${p}) GROUP BY ALL`)).map((r) => [r.modality, Number(r.n)]));
  const rows = Number((await query(`SELECT count(*) AS n FROM ${p}`))[0].n);
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
  return { all, top1, tokens, rows, meta };
}

export function sorted(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}
