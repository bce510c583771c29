import fc from 'fast-check';
import { FuzzPool } from './pool.js';
import { type Area, type Target, makeTargets } from './targets.js';

export interface FuzzFailure {
  target: string;
  area: Area;
  index: number;
  why: string;
  args: string[];
  files: string[];
  stderr: string;
}

export interface FuzzReport {
  cases: number;
  perTarget: Record<string, { cases: number; failures: number; exit0: number; exit2: number }>;
  failures: FuzzFailure[];
}

/**
 * Run `runs` cases of each selected target (seeded: the same seed gives the same cases), with
 * cheap targets getting more of the budget than slow ones (demo, train).
 */
export async function runFuzz(opts: { runs: number; seed: number; targets?: (t: Target) => boolean; log?: (s: string) => void }): Promise<FuzzReport> {
  const pool = new FuzzPool();
  const report: FuzzReport = { cases: 0, perTarget: {}, failures: [] };
  try {
    for (const t of makeTargets().filter(opts.targets ?? (() => true))) {
      const n = Math.max(1, Math.round(opts.runs / t.weight));
      const cases = fc.sample(t.arb, { seed: opts.seed, numRuns: n });
      const stats = (report.perTarget[t.name] = { cases: 0, failures: 0, exit0: 0, exit2: 0 });
      for (let i = 0; i < cases.length; i++) {
        const c = cases[i];
        const r = await pool.run(c);
        report.cases++;
        stats.cases++;
        if (r.code === 0) stats.exit0++;
        if (r.code === 2) stats.exit2++;
        if (!r.ok) {
          stats.failures++;
          report.failures.push({ target: t.name, area: t.area, index: i, why: r.why!, args: c.args, files: Object.keys(c.files), stderr: r.stderr.split('\n').slice(0, 6).join('\n') });
        }
      }
      opts.log?.(`${t.name.padEnd(24)} ${t.area.padEnd(10)} ${stats.cases} cases, exit 0: ${stats.exit0}, exit 2: ${stats.exit2}, failures: ${stats.failures}`);
    }
  } finally {
    pool.close();
  }
  return report;
}
