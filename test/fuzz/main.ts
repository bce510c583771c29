/**
 * `npm run fuzz`: FUZZ_RUNS cases per target (default 300; demo and train get fewer, by weight),
 * FUZZ_SEED (default 1), FUZZ_TARGETS (comma-separated names or areas; default all). Prints one
 * line per target and every failure with its arguments, and exits 1 when any case failed.
 * Runs only when started by the npm script (node --test runs every file under dist/test/).
 */
import { runFuzz } from './fuzz.js';

if (process.env.MOESCOPE_FUZZ_MAIN === '1') {
  const runs = Number(process.env.FUZZ_RUNS ?? 300);
  const seed = Number(process.env.FUZZ_SEED ?? 1);
  const only = process.env.FUZZ_TARGETS?.split(',').map((s) => s.trim()).filter(Boolean);
  const t0 = Date.now();
  const report = await runFuzz({
    runs, seed, log: (s) => process.stdout.write(s + '\n'),
    targets: only ? (t) => only.includes(t.name) || only.includes(t.area) : undefined,
  });
  for (const f of report.failures) {
    process.stdout.write(`\nFAIL ${f.target} (${f.area}) case ${f.index}: ${f.why}\n  moescope ${f.args.join(' ')}\n  files: ${f.files.join(', ')}\n  ${f.stderr.replace(/\n/g, '\n  ')}\n`);
  }
  process.stdout.write(`\nfuzz: ${report.cases} cases (seed ${seed}, FUZZ_RUNS ${runs}) in ${Math.round((Date.now() - t0) / 1000)} s, ${report.failures.length} failures\n`);
  process.exitCode = report.failures.length ? 1 : 0;
}
