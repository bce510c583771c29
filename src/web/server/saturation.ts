import { saturationSql } from '../../analysis/compare.js';

/** Runs SQL and gives rows as arrays. */
export type RunRows = (sql: string) => Promise<unknown[][]>;

/**
 * Router saturation (OLMoE) of trace B against trace A, per layer, with the analysis' definition
 * (src/analysis/compare.ts): the share of B's top-k choices also in A's top-k for the same (sample, pos).
 */
export async function saturation(run: RunRows, relA: string, relB: string): Promise<Map<number, number>> {
  const rows = await run(saturationSql(relA, relB));
  return new Map(rows.filter((r) => Number(r[2]) > 0).map((r) => [Number(r[0]), Number(r[1]) / Number(r[2])]));
}
