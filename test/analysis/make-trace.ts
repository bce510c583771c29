import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

/** `rep` identical tokens of one layer and modality routed to `expert` (descending gate). */
export interface TokenGroup {
  layer: number;
  modality: string;
  expert: number[];
  gate?: number[]; // default: 1/k each
  prob?: number[]; // written only if some group has it
  rep?: number; // default 1
}

export interface MakeTraceOptions {
  numLayers?: number;
  numExperts?: number;
  topK?: number;
  /** Column types to write instead of the SPEC ones, or null to leave a column out. */
  types?: Partial<Record<'sample' | 'pos' | 'modality' | 'token' | 'layer' | 'expert' | 'gate' | 'prob', string | null>>;
  meta?: Record<string, unknown> | null; // null: no meta.json
  noRouting?: boolean;
}

const sqlList = (xs: number[]) => `[${xs.map((x) => String(x)).join(', ')}]`;

/** Write a small designed trace folder (routing.parquet written by DuckDB, meta.json). */
export async function makeTrace(dir: string, groups: TokenGroup[], opts: MakeTraceOptions = {}): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const E = opts.numExperts ?? 8;
  const k = opts.topK ?? Math.max(1, ...groups.map((g) => g.expert.length));
  const types = { sample: 'INTEGER', pos: 'INTEGER', modality: 'VARCHAR', token: 'INTEGER', layer: 'SMALLINT', expert: 'SMALLINT[]', gate: 'FLOAT[]', prob: 'FLOAT[]', ...opts.types };
  const withProb = groups.some((g) => g.prob);
  if (!opts.noRouting) {
    const inst = await DuckDBInstance.create(':memory:');
    const conn = await inst.connect();
    const values = groups.length
      ? groups.map((g, i) => `(${i}, ${g.layer}, '${g.modality}', ${sqlList(g.expert)}::INTEGER[], ${sqlList(g.gate ?? g.expert.map(() => 1 / g.expert.length))}::DOUBLE[], ${g.prob ? sqlList(g.prob) : 'NULL'}::DOUBLE[], ${g.rep ?? 1})`).join(',\n')
      : `(0, 0, 'text', [0]::INTEGER[], [1.0]::DOUBLE[], NULL::DOUBLE[], 0)`;
    const cols: string[] = [];
    const col = (name: keyof typeof types, expr: string) => {
      const t = types[name];
      if (t !== null && t !== undefined) cols.push(`(${expr})::${t} AS "${name}"`);
    };
    col('sample', 'g');
    col('pos', 'r');
    col('modality', 'modality');
    col('token', 'r');
    col('layer', 'layer');
    col('expert', 'expert');
    col('gate', 'gate');
    if (withProb) col('prob', 'prob');
    const sql = `COPY (SELECT ${cols.join(', ')} FROM (VALUES ${values}) v(g, layer, modality, expert, gate, prob, rep), range(v.rep) t(r) ORDER BY g, r)
      TO '${join(dir, 'routing.parquet')}' (FORMAT parquet)`;
    await conn.run(sql);
    conn.closeSync();
    inst.closeSync();
  }
  if (opts.meta !== null) {
    const tokens: Record<string, number> = {};
    for (const g of groups) if (g.layer === groups[0].layer) tokens[g.modality] = (tokens[g.modality] ?? 0) + (g.rep ?? 1);
    const meta = { moescope_version: '0.1.0', num_layers: opts.numLayers ?? 1 + Math.max(0, ...groups.map((g) => g.layer)), num_experts: E, top_k: k, router_scoring: 'softmax', model: null, data: 'test', tokens, ...opts.meta };
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta, null, 2));
  }
  return dir;
}
