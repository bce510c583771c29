/**
 * Routing over training: the specialisation S of every layer at several checkpoints of a run.
 *
 *   npx tsc -p . && node dist/scripts/routing-over-training.js RUN_DIR [--samples N] [--seed S]
 *
 * RUN_DIR is a `moescope train --out` folder with snapshots/step-N (config snapshot_every > 0) and
 * model/. The untrained model (step 0) is rebuilt from the run's config and seed. Each checkpoint is
 * captured on the same held-out shapes samples (`moescope capture`) and analysed (`moescope
 * analyze --json`); the table goes to RUN_DIR/routing-over-training.json and .png (S by layer, one
 * line per step).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTrainConfig } from '../src/train/train-config.js';
import { initParams } from '../src/model/params.js';
import { saveCheckpoint } from '../src/io/checkpoint-files.js';
import { shapesTokenizer } from '../src/train/batches.js';
import { specToSvg, svgToPng } from '../src/render/figure.js';
import { LOG_FILE } from '../src/train/train-run.js';

const bin = fileURLToPath(new URL('../../bin/moescope', import.meta.url));

/** The highest step in a run's train-log.jsonl: the step model/ was saved at. */
export function lastLoggedStep(logPath: string): number {
  if (!existsSync(logPath)) throw new Error(`${logPath}: no training log, so the step of model/ is unknown`);
  let last = -1;
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const step = (JSON.parse(line) as { step?: unknown }).step;
    if (typeof step === 'number' && Number.isInteger(step) && step > last) last = step;
  }
  if (last < 0) throw new Error(`${logPath}: no step recorded, so the step of model/ is unknown`);
  return last;
}

function moescope(args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`moescope ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function main(argv: string[]): Promise<void> {
  const run = argv.find((a) => !a.startsWith('--'));
  if (!run) throw new Error('usage: routing-over-training RUN_DIR [--samples N] [--seed S]');
  const arg = (name: string, dflt: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
  const samples = Number(arg('--samples', '256'));
  const seed = Number(arg('--seed', '1000003'));
  const cfgPath = join(run, 'train-config.json');
  const cfg = parseTrainConfig(JSON.parse(readFileSync(cfgPath, 'utf8')), cfgPath);
  const tmp = mkdtempSync(join(tmpdir(), 'moescope-rot-'));
  try {
    const checkpoints: { step: number; dir: string }[] = [];
    const init = join(tmp, 'step-0');
    await saveCheckpoint(init, { config: cfg.model, tokenizer: shapesTokenizer(), params: initParams(cfg.model, cfg.train.seed, cfg.train.router_init_std) });
    checkpoints.push({ step: 0, dir: init });
    const snaps = join(run, 'snapshots');
    if (existsSync(snaps)) {
      for (const d of readdirSync(snaps).sort()) {
        const m = /^step-(\d+)$/.exec(d);
        if (m) checkpoints.push({ step: Number(m[1]), dir: join(snaps, d) });
      }
    }
    // model/ holds the run's last step, which is the last step in the training log (a run stopped or
    // interrupted early ends before the config's `steps`): label it by that, never by the planned count.
    const finalStep = lastLoggedStep(join(run, LOG_FILE));
    if (!checkpoints.some((c) => c.step === finalStep)) checkpoints.push({ step: finalStep, dir: join(run, 'model') });
    const rows: { step: number; layer: number; S: number; S0: number; jsd: number }[] = [];
    for (const c of checkpoints) {
      const trace = join(tmp, `trace-${c.step}`);
      moescope(['capture', '--model', c.dir, '--data', `shapes:${samples}:${seed}`, '--out', trace]);
      const m = JSON.parse(moescope(['analyze', trace, '--json']));
      // SPEC §3 key names (S, S0, jsd), or the older ones
      const S = (l: Record<string, number>) => l.S ?? l.specialization;
      for (const l of m.layers) rows.push({ step: c.step, layer: l.layer, S: S(l), S0: l.S0 ?? l.specializationBaseline, jsd: l.jsd ?? l.jsdTextImage });
      const mean = m.layers.reduce((a: number, l: Record<string, number>) => a + S(l), 0) / m.layers.length;
      process.stderr.write(`step ${c.step}: mean S ${mean.toFixed(3)}\n`);
    }
    writeFileSync(join(run, 'routing-over-training.json'), JSON.stringify({ samples, seed, rows }, null, 1) + '\n');
    // a heatmap: one row per checkpoint, one column per layer, colour = S (a line per step would tangle)
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Specialisation S per layer over training',
      background: 'white',
      data: { values: rows },
      mark: { type: 'rect' },
      width: { step: 22 },
      height: { step: 22 },
      encoding: {
        x: { field: 'layer', type: 'ordinal', title: 'Layer' },
        // every row is labelled by its real step (the last one is where model/ stopped, not the planned total)
        y: { field: 'step', type: 'ordinal', title: 'Training step', sort: 'ascending' },
        color: { field: 'S', type: 'quantitative', title: 'S', scale: { scheme: 'viridis', domain: [0, 1] } },
        tooltip: [{ field: 'step' }, { field: 'layer' }, { field: 'S', format: '.3f' }],
      },
      config: { font: 'DejaVu Sans', axis: { labelAngle: 0 } },
    };
    writeFileSync(join(run, 'routing-over-training.png'), svgToPng(await specToSvg(spec)));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main(process.argv.slice(2));
