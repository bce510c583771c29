import { existsSync, mkdirSync, readFileSync, accessSync, constants, statSync, appendFileSync, rmSync, lstatSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { InputError } from '../util/errors.js';
import { checkWritableParent, writeFileAtomic } from '../util/atomic.js';
import { readInputText } from '../util/input-file.js';
import { parseJson } from '../util/json.js';
import { LIMITS, checkInt } from '../util/limits.js';
import { classifyOutput, guardOutput } from '../util/output-guard.js';
import { Progress, formatSeconds } from '../util/progress.js';
import { type Params, createParams, initParams, numParams } from '../model/params.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint-files.js';
import { type TrainConfig, parseTrainConfig, trainConfigToJson } from './train-config.js';
import { decayRanges } from './adamw.js';
import { Trainer } from './trainer.js';
import { TRAIN_STATE_FILE, decodeTrainState, encodeTrainState } from './train-state.js';
import { type LogRow, type TrainLogRow, type EvalLogRow, lossCurveSpec } from './loss-curve.js';
import { specToSvg, svgToPng } from '../render/figure.js';
import { shapesTokenizer, trainBatchSamples, buildEvalSet, encodeSamples } from './batches.js';
import { EfmoeGradientSource } from './efmoe-source.js';
import { layerBands } from '../model/router-stats.js';
import { evaluate, type EvalReport } from './evaluate.js';

export interface TrainRunOptions {
  config: string; // training config file
  out: string; // output folder
  steps?: number; // override `steps`
  seed?: number; // override `seed` and `train_seed`
  resume?: boolean;
  init?: string; // start from this checkpoint's weights (routers re-drawn when the config sets router_init_std)
  stopAt?: number; // stop (with a checkpoint) after this many updates, to resume later
  workers?: number;
  log?: (line: string) => void; // summary lines (stdout)
  progress?: boolean;
  force?: boolean; // replace an existing --out folder that is not a training run (never an input)
}

export interface TrainRunResult {
  step: number;
  finished: boolean;
  eval?: EvalReport;
}

export const LOG_FILE = 'train-log.jsonl';
export const CONFIG_COPY = 'train-config.json';

function readConfig(path: string): unknown {
  return parseJson(path, readInputText(path, LIMITS.jsonBytes, 'training config'));
}

/**
 * Values one training step keeps for backward, estimated from the config before anything is
 * allocated: per token and layer the attention and expert activations, plus the attention
 * scores over the sequence (at most max_position_embeddings; a shapes sample is its image's
 * patches and a caption).
 */
function activationEstimate(cfg: TrainConfig): number {
  const m = cfg.model;
  const patches = (m.image_size / m.patch_size) ** 2;
  const T = Math.min(m.max_position_embeddings, patches + 64);
  const perTokenLayer = 12 * m.hidden_size + 3 * m.num_experts_per_tok * m.intermediate_size + 2 * m.num_local_experts + m.num_attention_heads * T;
  return cfg.train.batch * T * m.num_hidden_layers * perTokenLayer + cfg.train.batch * patches * m.patch_size * m.patch_size * m.num_channels;
}

/** Sizes of the training half that allocate or loop: bounded like every size from a file (SPEC §6). */
function checkTrainLimits(cfg: TrainConfig, where: string): void {
  const t = cfg.train;
  checkInt(`${where}: steps`, t.steps, 1, LIMITS.steps);
  checkInt(`${where}: batch`, t.batch, 1, LIMITS.batch);
  checkInt(`${where}: eval_samples`, t.eval_samples, 1, LIMITS.evalSamples);
  for (const k of ['warmup', 'eval_every', 'checkpoint_every', 'snapshot_every', 'log_every'] as const) checkInt(`${where}: ${k}`, t[k], 0, LIMITS.steps);
  for (const k of ['seed', 'train_seed', 'eval_seed'] as const) checkInt(`${where}: ${k}`, t[k], 0, LIMITS.seed);
  const a = activationEstimate(cfg);
  if (a > LIMITS.trainActivations) {
    throw new InputError(`${where}: batch ${t.batch} of this model needs about ${a.toExponential(2)} activation values per step, above the limit ${LIMITS.trainActivations} (lower batch)`);
  }
}

/** Parse the config and apply the command-line overrides. */
export function loadTrainConfig(opts: Pick<TrainRunOptions, 'config' | 'steps' | 'seed'>): TrainConfig {
  const raw = readConfig(opts.config) as Record<string, unknown>;
  const cfg = parseTrainConfig(raw, opts.config);
  checkTrainLimits(cfg, opts.config);
  if (opts.steps !== undefined) cfg.train.steps = checkInt('--steps', opts.steps, 1, LIMITS.steps);
  if (opts.seed !== undefined) {
    cfg.train.seed = opts.seed;
    cfg.train.train_seed = opts.seed;
    if (cfg.train.train_seed === cfg.train.eval_seed) throw new InputError(`--seed ${opts.seed}: equals eval_seed of ${opts.config}; held-out data must come from another seed`);
  }
  return cfg;
}

function ensureWritableDir(out: string): void {
  try {
    mkdirSync(out, { recursive: true });
    if (!statSync(out).isDirectory()) throw new Error('not a folder');
    accessSync(out, constants.W_OK);
  } catch {
    throw new InputError(`${out}: cannot write the output folder here`);
  }
}

/** The router's state for the log: mean top-1 gate and entropy (bits) per layer band, over the batch's positions. */
function routerBandsOf(gateSum: number[], entropySum: number[], tokens: number): Pick<TrainLogRow, 'router_bands' | 'gate_top1' | 'router_entropy'> {
  const bands = layerBands(gateSum.length);
  const mean = (xs: number[], b: { from: number; to: number }) => {
    let s = 0;
    for (let l = b.from; l <= b.to; l++) s += xs[l];
    return Number((s / ((b.to - b.from + 1) * Math.max(1, tokens))).toFixed(4));
  };
  return { router_bands: bands.map((b) => b.label), gate_top1: bands.map((b) => mean(gateSum, b)), router_entropy: bands.map((b) => mean(entropySum, b)) };
}

/**
 * --init: the weights of an existing checkpoint whose model config equals the run's (the same keys and
 * values); when the config sets router_init_std the routers are re-drawn N(0, router_init_std) with
 * the run's seed, so a trained model can be given routers that start decided (issue 14).
 */
function initFromCheckpoint(dir: string, cfg: TrainConfig, say: (l: string) => void): Params {
  const ck = loadCheckpoint(dir);
  // the router loss coefficients only steer training: a run may change them
  const diff = Object.keys({ ...cfg.model, ...ck.config }).filter((k) => k !== 'router_aux_loss_coef' && k !== 'router_z_loss_coef').filter(
    (k) => JSON.stringify((cfg.model as unknown as Record<string, unknown>)[k]) !== JSON.stringify((ck.config as unknown as Record<string, unknown>)[k]),
  );
  if (diff.length) throw new InputError(`--init ${dir}: its config.json differs from the training config in ${diff.join(', ')}`);
  const params = createParams(cfg.model, ck.params.flat.slice());
  if (cfg.train.router_init_std !== undefined) {
    const fresh = initParams(cfg.model, cfg.train.seed, cfg.train.router_init_std);
    params.layers.forEach((l, i) => l.router.set(fresh.layers[i].router));
    say(`train: weights from ${dir}, routers re-drawn with std ${cfg.train.router_init_std}`);
  } else say(`train: weights from ${dir}`);
  return params;
}

/** The run's log; a damaged log (a line that is not a JSON object with a numeric step) is bad input. */
function readLog(path: string): LogRow[] {
  if (!existsSync(path)) return [];
  const rows: LogRow[] = [];
  readInputText(path, LIMITS.jsonBytes * 16, 'training log').split('\n').forEach((l, i) => {
    if (!l.trim()) return;
    const where = `${path}:${i + 1}`;
    const r = parseJson(where, l) as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null || Array.isArray(r) || !Number.isSafeInteger(r.step) || (r.kind !== 'train' && r.kind !== 'eval')) {
      throw new InputError(`${where}: not a training log row (expected {"kind": "train"|"eval", "step": N, ...})`);
    }
    rows.push(r as unknown as LogRow);
  });
  return rows;
}

/** The outermost folder that mkdir -p would create for `dir`, or null when it exists. */
function firstMissing(dir: string): string | null {
  let top: string | null = null;
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      lstatSync(d);
      return top;
    } catch {
      top = d;
      if (dirname(d) === d) return top;
    }
  }
}

/** `moescope train`: the whole run, resumable, writing everything into `out`. */
export async function trainRun(opts: TrainRunOptions): Promise<TrainRunResult> {
  const say = opts.log ?? (() => {});
  const cfg = loadTrainConfig(opts);
  const out = resolve(opts.out);
  const statePath = join(out, TRAIN_STATE_FILE);
  const cfgJson = trainConfigToJson(cfg);
  const tokenizer = shapesTokenizer();
  if (tokenizer.vocab.length > cfg.model.vocab_size) {
    throw new InputError(`${opts.config}: vocab_size ${cfg.model.vocab_size} is smaller than the shapes vocabulary (${tokenizer.vocab.length} words)`);
  }
  // SPEC §6: a new, empty or training-run folder; --force replaces another (never an input)
  guardOutput(opts.out, 'train', { inputs: [opts.config, ...(opts.init !== undefined ? [opts.init] : [])], force: opts.force });
  checkWritableParent(out);
  const existing = classifyOutput(out);
  if (opts.resume && existing.kind !== 'train') throw new InputError(`${opts.out}: nothing to resume (not a training run folder)`);
  if (opts.resume) {
    if (!existsSync(statePath)) throw new InputError(`${opts.out}: nothing to resume (no ${TRAIN_STATE_FILE})`);
  } else if (existsSync(statePath)) {
    throw new InputError(`${opts.out}: already holds a training run; pass --resume to continue it or choose another --out`);
  }
  // parameters: random, or a checkpoint's weights with --init (checked before anything is written)
  const initial = opts.init !== undefined && !opts.resume ? initFromCheckpoint(opts.init, cfg, say) : initParams(cfg.model, cfg.train.seed, cfg.train.router_init_std);
  if (opts.force && existing.kind !== 'train' && existing.kind !== 'missing' && existing.kind !== 'empty') rmSync(out, { recursive: true, force: true });
  const created = firstMissing(out);
  ensureWritableDir(out);
  try {
    return await trainIn(opts, cfg, out, statePath, cfgJson, tokenizer, say, initial);
  } catch (e) {
    // a run that failed before its first checkpoint leaves nothing: not even the folder it created
    if (created && !existsSync(statePath)) rmSync(created, { recursive: true, force: true });
    throw e;
  }
}

async function trainIn(opts: TrainRunOptions, cfg: TrainConfig, out: string, statePath: string, cfgJson: Record<string, unknown>, tokenizer: ReturnType<typeof shapesTokenizer>, say: (l: string) => void, initial: Params): Promise<TrainRunResult> {

  // parameters and optimizer: fresh (random, or a checkpoint's weights with --init), or exactly where the run's checkpoint left them
  if (opts.init !== undefined && !opts.resume) {
    // provenance of a warm start: which weights the run began from
    const bytes = readFileSync(join(opts.init, 'model.safetensors'));
    writeFileAtomic(join(out, 'init.json'), JSON.stringify({ init: resolve(opts.init), model_safetensors_sha256: createHash('sha256').update(bytes).digest('hex'), router_init_std: cfg.train.router_init_std ?? null }, null, 2) + '\n');
  }
  const source = new EfmoeGradientSource(cfg.model, initial, (step) => encodeSamples(trainBatchSamples(cfg.train, step), tokenizer, cfg.model), opts.workers ?? 1);
  const params = source.params;
  let trainer: Trainer;
  if (opts.resume) {
    const st = decodeTrainState(new Uint8Array(readFileSync(statePath)), statePath);
    // the same config, except that --steps may shorten or extend the run (the cosine schedule is then
    // recomputed from here on, so the result is no longer bit-identical to either uninterrupted run)
    const diff = Object.keys({ ...cfgJson, ...st.config })
      .filter((k) => JSON.stringify(cfgJson[k]) !== JSON.stringify(st.config[k]))
      .filter((k) => !(k === 'steps' && opts.steps !== undefined));
    if (diff.length) throw new InputError(`${opts.config}: differs from the run in ${opts.out} in ${diff.join(', ')}; resume needs the same config`);
    if (cfg.train.steps < st.opt.t) throw new InputError(`--steps ${cfg.train.steps}: the run in ${opts.out} is already at step ${st.opt.t}`);
    if (cfg.train.steps !== st.config.steps) say(`train: schedule changed from ${st.config.steps} to ${cfg.train.steps} steps at step ${st.opt.t}`);
    if (st.params.length !== params.flat.length) throw new InputError(`${statePath}: holds ${st.params.length} parameters, the config needs ${params.flat.length}`);
    params.flat.set(st.params);
    trainer = new Trainer(source, cfg.train, decayRanges(cfg.model), st.opt);
  } else {
    trainer = new Trainer(source, cfg.train, decayRanges(cfg.model));
  }
  const s = cfg.train;
  const startStep = trainer.step;
  const stopAt = Math.min(s.steps, opts.stopAt ?? s.steps);

  // the log continues from the checkpoint: rows after it belong to work that is redone now
  const logPath = join(out, LOG_FILE);
  // (a finished run resumed only to re-evaluate drops its final evaluation, which is redone)
  const kept = readLog(logPath).filter((r) => r.step < startStep || (r.step === startStep && !(r.kind === 'eval' && startStep >= s.steps)));
  writeFileAtomic(logPath, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  writeFileAtomic(join(out, CONFIG_COPY), JSON.stringify(cfgJson, null, 2) + '\n');
  const logRow = (r: LogRow) => appendFileSync(logPath, JSON.stringify(r) + '\n');

  const evalSet = buildEvalSet(s, tokenizer, cfg.model);
  const checkpoint = async () => {
    writeFileAtomic(statePath, encodeTrainState({ params: params.flat, opt: trainer.opt, config: cfgJson }));
    await saveCheckpoint(join(out, 'model'), { config: cfg.model, tokenizer, params });
  };

  if (startStep === 0) say(`train: ${numParams(cfg.model).toLocaleString('en')} parameters, ${s.steps} steps of ${s.batch} samples -> ${opts.out}`);
  else say(`train: resuming ${opts.out} at step ${startStep} of ${s.steps}`);

  if (startStep === 0 && s.eval_every > 0) {
    const ev = evaluate(cfg.model, params, evalSet, false);
    logRow({ kind: 'eval', step: 0, eval_ce: ev.ce, eval_loss: ev.loss });
  }
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  const progress = opts.progress === false ? null : new Progress('train', stopAt - startStep, 'steps');
  const t0 = Date.now();
  let emaTok = 0;
  let emaAux = 0;
  let emaLoss = 0;
  try {
    while (trainer.step < stopAt && !interrupted) {
      const ts = Date.now();
      const r = await trainer.trainStep();
      const dt = Math.max(1e-3, (Date.now() - ts) / 1000);
      const tps = r.tokens / dt;
      const a = trainer.step - startStep === 1 ? 1 : 0.1;
      emaTok = emaTok * (1 - a) + tps * a;
      emaAux = emaAux * (1 - a) + r.aux * a;
      emaLoss = emaLoss * (1 - a) + r.loss * a;
      if (r.step % s.log_every === 0 || r.step === stopAt) {
        const row: TrainLogRow = {
          kind: 'train', step: r.step, loss: r.loss, ce: r.ce, aux: r.aux, z: r.z, lr: r.lr, grad_norm: r.gradNorm,
          tokens: r.tokens, text_targets: r.targets, tokens_per_s: Math.round(tps), elapsed_s: (Date.now() - t0) / 1000,
          ...routerBandsOf(r.gateSum, r.entropySum, r.tokens),
        };
        logRow(row);
      }
      if (!isFinite(r.loss)) throw new Error(`training diverged at step ${r.step} (loss ${r.loss}); lower lr or raise clip`);
      if (s.eval_every > 0 && r.step % s.eval_every === 0 && r.step !== s.steps) {
        const ev = evaluate(cfg.model, params, evalSet, false);
        const row: EvalLogRow = { kind: 'eval', step: r.step, eval_ce: ev.ce, eval_loss: ev.loss };
        logRow(row);
      }
      if (s.snapshot_every > 0 && r.step % s.snapshot_every === 0) {
        await saveCheckpoint(join(out, 'snapshots', `step-${String(r.step).padStart(6, '0')}`), { config: cfg.model, tokenizer, params });
      }
      if (s.checkpoint_every > 0 && r.step % s.checkpoint_every === 0 && r.step !== stopAt) await checkpoint();
      await new Promise((r) => setImmediate(r)); // let a Ctrl-C (SIGINT) in between steps
      progress?.update(trainer.step - startStep, `step ${r.step} loss ${emaLoss.toFixed(3)} aux ${emaAux.toFixed(4)} ${Math.round(emaTok)} tok/s`);
    }
  } finally {
    process.off('SIGINT', onSigint);
    await source.close?.();
  }
  await checkpoint();
  if (trainer.step >= stopAt) progress?.done(`step ${trainer.step} loss ${emaLoss.toFixed(3)}`);
  else if (progress && process.stderr.isTTY) process.stderr.write('\n');
  const finished = trainer.step >= s.steps;
  let evalReport: EvalReport | undefined;
  if (finished) {
    evalReport = evaluate(cfg.model, params, evalSet, true);
    logRow({ kind: 'eval', step: trainer.step, eval_ce: evalReport.ce, eval_loss: evalReport.loss });
    writeFileAtomic(join(out, 'eval.json'), JSON.stringify(evalReport, null, 2) + '\n');
  }
  const rows = readLog(logPath);
  const svg = await specToSvg(lossCurveSpec(rows, { title: `Training loss: ${basename(out)} (${numParams(cfg.model).toLocaleString('en')} parameters)`, experts: cfg.model.num_local_experts }));
  writeFileAtomic(join(out, 'loss-curve.svg'), svg);
  writeFileAtomic(join(out, 'loss-curve.png'), svgToPng(svg));
  const secs = (Date.now() - t0) / 1000;
  if (interrupted) say(`train: interrupted at step ${trainer.step}; continue with --resume`);
  else if (!finished) say(`train: stopped at step ${trainer.step} of ${s.steps} (${formatSeconds(secs)}); continue with --resume`);
  else say(`train: done, ${trainer.step} steps in ${formatSeconds(secs)}; held-out CE ${evalReport!.ce.toFixed(3)}; model in ${join(opts.out, 'model')}`);
  if (interrupted) process.exitCode = 130;
  return { step: trainer.step, finished, eval: evalReport };
}

