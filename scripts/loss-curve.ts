/**
 * Redraw a run's loss-curve figure from its log (e.g. while it trains, or after a change of the figure):
 *
 *   node dist/scripts/loss-curve.js RUN_DIR      -> RUN_DIR/loss-curve.svg and .png
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { lossCurveSpec, type LogRow } from '../src/train/loss-curve.js';
import { specToSvg, svgToPng } from '../src/render/figure.js';

const run = process.argv[2];
if (!run) throw new Error('usage: loss-curve RUN_DIR');
const rows = readFileSync(join(run, 'train-log.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as LogRow);
const cfg = JSON.parse(readFileSync(join(run, 'train-config.json'), 'utf8')) as { num_local_experts: number };
const svg = await specToSvg(lossCurveSpec(rows, { title: `Training loss: ${basename(run)}`, experts: cfg.num_local_experts }));
writeFileSync(join(run, 'loss-curve.svg'), svg);
writeFileSync(join(run, 'loss-curve.png'), svgToPng(svg));
