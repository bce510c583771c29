import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { TraceWriter } from '../../src/trace/writer.js';
import { writeDirAtomic } from '../../src/util/atomic.js';

/** One routing row of a designed trace. */
export interface Row {
  sample: number;
  pos: number;
  modality: string;
  token: number;
  layer: number;
  experts: number[];
  gates: number[];
}

export interface Design {
  numLayers: number;
  numExperts: number;
  topK: number;
  rows: Row[];
  /** Domain per sample (written to samples.parquet). */
  domains?: Map<number, string>;
  meta?: Record<string, unknown>;
}

/** A seeded generator (LCG): the tests' designs are deterministic. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Write a design with TraceWriter (the path capture and import take: aggregates and meta.json files included). */
export async function writeDesign(dir: string, d: Design): Promise<string> {
  await writeDirAtomic(dir, async (tmp) => {
    const w = await TraceWriter.open(tmp, { topK: d.topK, numExperts: d.numExperts, fullProbs: false });
    const n = d.rows.length;
    const col = (f: (r: Row) => number) => Int32Array.from(d.rows, f);
    const experts = new Int32Array(n * d.topK), gates = new Float32Array(n * d.topK);
    d.rows.forEach((r, i) => r.experts.forEach((e, j) => { experts[i * d.topK + j] = e; gates[i * d.topK + j] = r.gates[j]; }));
    await w.appendRouting({
      sample: col((r) => r.sample), pos: col((r) => r.pos), modality: d.rows.map((r) => r.modality), token: col((r) => r.token),
      layer: col((r) => r.layer), experts, gates,
    });
    const samples = [...new Set(d.rows.map((r) => r.sample))].sort((a, b) => a - b);
    for (const s of samples) await w.appendSample({ sample: s, text: `sample ${s}`, images: [], source: `test:${s}`, domain: d.domains?.get(s) ?? null });
    await w.finish({ num_layers: d.numLayers, router_scoring: 'softmax', data: 'designed', ...(d.meta ?? {}) });
  });
  return dir;
}

/** Write the same design by hand (DuckDB only, no aggregates, no `files`): another tool's trace. */
export async function writeDesignByHand(dir: string, d: Design, opts: { gatesNull?: boolean } = {}): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  const list = (xs: number[]) => `[${xs.join(', ')}]`;
  await conn.run(`CREATE TABLE r (sample INTEGER, pos INTEGER, modality VARCHAR, token INTEGER, layer SMALLINT, expert SMALLINT[], gate FLOAT[])`);
  for (let i = 0; i < d.rows.length; i += 500) {
    const vals = d.rows.slice(i, i + 500).map((r) => `(${r.sample}, ${r.pos}, '${r.modality}', ${r.token}, ${r.layer}, ${list(r.experts)}, ${opts.gatesNull ? 'NULL' : list(r.gates)})`);
    await conn.run(`INSERT INTO r VALUES ${vals.join(', ')}`);
  }
  await conn.run(`COPY r TO '${join(dir, 'routing.parquet')}' (FORMAT parquet)`);
  if (d.domains) {
    const vals = [...d.domains.entries()].map(([s, dom]) => `(${s}, 'sample ${s}', [], 'test:${s}', '${dom}')`);
    await conn.run(`COPY (SELECT * FROM (VALUES ${vals.join(', ')}) v(sample, text, images, source, domain)) TO '${join(dir, 'samples.parquet')}' (FORMAT parquet)`);
  }
  conn.closeSync();
  inst.closeSync();
  const tokens: Record<string, number> = {};
  for (const r of d.rows) if (r.layer === d.rows[0].layer) tokens[r.modality] = (tokens[r.modality] ?? 0) + 1;
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ moescope_version: '0.1.0', num_layers: d.numLayers, num_experts: d.numExperts, top_k: d.topK, router_scoring: 'softmax', data: 'by hand', tokens, ...(d.meta ?? {}) }));
  return dir;
}

/** Entropy in bits of counts (plain loop, independent of src/analysis). */
export function H(xs: number[]): number {
  const s = xs.reduce((a, b) => a + b, 0);
  let h = 0;
  for (const x of xs) if (x > 0) h -= (x / s) * Math.log2(x / s);
  return h;
}
