/**
 * Held-out evaluation of any efmoe checkpoint on the shapes world, with the router's state (issue 14):
 *
 *   npx tsc -p . && node dist/scripts/eval-checkpoint.js MODEL_DIR [--samples N] [--seed S] [--share X]
 *
 * Prints one JSON object: the `eval.json` report of `moescope train` (CE, caption CE with own and
 * swapped images, image words) plus `router` (per layer mean top-1 gate, entropy in bits and the
 * text/image specialisation S), and a summary line per layer band on stderr.
 */
import { loadCheckpoint } from '../src/io/checkpoint-files.js';
import { buildEvalSet } from '../src/train/batches.js';
import { evaluate } from '../src/train/evaluate.js';
import { layerBands } from '../src/model/router-stats.js';
import type { TrainSettings } from '../src/train/train-config.js';

const argv = process.argv.slice(2);
const dir = argv.find((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
if (!dir) throw new Error('usage: eval-checkpoint MODEL_DIR [--samples N] [--seed S] [--share X]');
const arg = (name: string, dflt: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const ck = loadCheckpoint(dir);
const settings = { eval_samples: Number(arg('--samples', '256')), eval_seed: Number(arg('--seed', '1000003')), text_only_share: Number(arg('--share', '0.2')) } as TrainSettings;
const set = buildEvalSet(settings, ck.tokenizer, ck.config);
const rep = evaluate(ck.config, ck.params, set, true);
process.stdout.write(JSON.stringify(rep) + '\n');
const r = rep.router!;
const band = (xs: number[], b: { from: number; to: number }) => (xs.slice(b.from, b.to + 1).reduce((a, x) => a + x, 0) / (b.to - b.from + 1)).toFixed(3);
process.stderr.write(`${dir}: ce ${rep.ce.toFixed(3)} caption ${rep.caption_ce?.toFixed(3)} swapped ${rep.caption_ce_swapped_image?.toFixed(3)}; gate>=2/E at ${r.layers_gate_over_2x_uniform} layers, mean entropy ${r.mean_entropy_bits.toFixed(2)} bits\n`);
for (const b of layerBands(r.gate_top1.length)) process.stderr.write(`  layers ${b.label}: gate ${band(r.gate_top1, b)} entropy ${band(r.entropy_bits, b)} S ${band(r.S, b)}\n`);
