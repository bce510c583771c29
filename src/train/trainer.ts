import { type AdamWState, type DecayRange, adamwStep, clipGradNorm, createAdamW } from './adamw.js';
import { learningRate } from './schedule.js';
import type { TrainSettings } from './train-config.js';

/** Loss parts of one batch, as the model reports them. */
export interface LossParts {
  loss: number;
  ce: number;
  aux: number;
  z: number;
  targets: number; // text positions with a next-token target
  tokens: number; // all positions of the batch
  gateSum: number[]; // per layer: sum over the batch's positions of the top-1 gate
  entropySum: number[]; // per layer: sum over the batch's positions of the router entropy (bits)
}

/**
 * Whatever computes the loss and gradient of the batch of a given step: it overwrites `grads`
 * (same layout as `params`) with d loss / d params. The batch must be a pure function of the step,
 * so that a resumed run sees exactly the data it would have seen.
 */
export interface GradientSource {
  readonly flatParams: Float32Array;
  readonly grads: Float32Array;
  lossAndGrad(step: number): LossParts | Promise<LossParts>;
  close?(): Promise<void>;
}

export interface StepReport extends LossParts {
  step: number; // updates done after this one
  lr: number;
  gradNorm: number;
}

/**
 * The optimisation state of a run: parameters (owned by the gradient source), AdamW moments and
 * the number of updates done. This is everything a resume needs: data order is a function of the
 * step and there is no other randomness.
 */
export class Trainer {
  readonly opt: AdamWState;
  constructor(
    readonly source: GradientSource,
    readonly settings: TrainSettings,
    readonly ranges: DecayRange[],
    opt?: AdamWState,
  ) {
    this.opt = opt ?? createAdamW(source.flatParams.length);
  }

  /** Updates done so far. */
  get step(): number {
    return this.opt.t;
  }

  async trainStep(): Promise<StepReport> {
    const s = this.settings;
    const index = this.opt.t; // 0-based index of this update
    const parts = await this.source.lossAndGrad(index);
    const gradNorm = clipGradNorm(this.source.grads, s.clip);
    const lr = learningRate(index, s);
    adamwStep(this.source.flatParams, this.source.grads, this.opt, lr, { beta1: s.beta1, beta2: s.beta2, eps: s.adam_eps, weightDecay: s.weight_decay, routerWeightDecay: s.router_weight_decay, routerLrScale: s.router_lr_scale }, this.ranges);
    return { ...parts, step: this.opt.t, lr, gradNorm };
  }
}
