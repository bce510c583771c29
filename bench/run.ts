import { formatRow, type BenchRow } from './report.js';

/** `npm run bench`: every figure beside its peer, measured in this run; `npm run bench -- NAME` runs one group. */
const groups: Record<string, () => Promise<{ bench: () => Promise<BenchRow[]> }>> = {
  matmul: () => import('./matmul.js'),
  capture: () => import('./capture.js'),
  analyze: () => import('./analyze.js'),
  train: () => import('./train.js'),
  import: () => import('./import.js'),
  web: () => import('./web.js'),
};

const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const rows: BenchRow[] = [];
for (const [name, load] of Object.entries(groups)) {
  if (only.length && !only.includes(name)) continue;
  process.stderr.write(`bench: ${name} ...\n`);
  try {
    const got = await (await load()).bench();
    for (const r of got) console.log(formatRow(r));
    rows.push(...got);
  } catch (e) {
    console.log(`${name.padEnd(44)} failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  }
}
