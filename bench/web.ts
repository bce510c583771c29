import type { BenchRow } from './report.js';

export async function bench(): Promise<BenchRow[]> {
  return [];
}
