import type { ModelConfig } from '../model/config.js';
import { paramSpecs } from '../model/params.js';

/** A contiguous run of the flat parameter buffer and whether weight decay applies to it. */
export interface DecayRange {
  offset: number;
  length: number;
  decay: boolean;
  router?: boolean; // a router (block_sparse_moe.gate): its own weight decay and learning-rate scale
}

/**
 * Which parameters decay: the matrices of linear layers (attention, router, experts, patch
 * embedding, LM head). Norm gains, biases and the token embedding table do not: shrinking them
 * towards zero is not a useful prior (a norm gain's neutral value is 1, an embedding row of a rare
 * word would only be decayed, never pushed back).
 */
export function decayRanges(config: ModelConfig): DecayRange[] {
  const ranges: DecayRange[] = [];
  let offset = 0;
  for (const s of paramSpecs(config)) {
    const length = s.shape.reduce((a, b) => a * b, 1);
    const decay = !(/norm\.weight$|layernorm\.weight$|\.bias$|^embed_tokens\./.test(s.name));
    const router = /\.block_sparse_moe\.gate\.weight$/.test(s.name);
    const last = ranges[ranges.length - 1];
    if (last && last.decay === decay && !!last.router === router) last.length += length;
    else ranges.push({ offset, length, decay, router });
    offset += length;
  }
  return ranges;
}

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  routerWeightDecay?: number; // decay of the router matrices (default: weightDecay)
  routerLrScale?: number; // the routers' learning rate is lr * routerLrScale (default 1)
}

/** AdamW state: first and second moments and the number of updates taken. */
export interface AdamWState {
  m: Float32Array;
  v: Float32Array;
  t: number;
}

export function createAdamW(n: number): AdamWState {
  return { m: new Float32Array(n), v: new Float32Array(n), t: 0 };
}

/**
 * One AdamW update, as torch.optim.AdamW does it: decoupled decay `p -= lr*wd*p` first, then
 * `p -= lr * mhat / (sqrt(vhat) + eps)` with bias-corrected moments.
 */
export function adamwStep(params: Float32Array, grads: Float32Array, s: AdamWState, lr: number, o: AdamWOptions, ranges: DecayRange[]): void {
  s.t += 1;
  const { beta1: b1, beta2: b2, eps } = o;
  const bc1 = 1 - Math.pow(b1, s.t);
  const bc2 = 1 - Math.pow(b2, s.t);
  const sqrtBc2 = Math.sqrt(bc2);
  const { m, v } = s;
  for (const r of ranges) {
    const rlr = r.router ? lr * (o.routerLrScale ?? 1) : lr;
    const stepSize = rlr / bc1;
    const shrink = r.decay ? 1 - rlr * (r.router ? (o.routerWeightDecay ?? o.weightDecay) : o.weightDecay) : 1;
    const end = r.offset + r.length;
    for (let i = r.offset; i < end; i++) {
      const g = grads[i];
      const mi = (m[i] = b1 * m[i] + (1 - b1) * g);
      const vi = (v[i] = b2 * v[i] + (1 - b2) * g * g);
      params[i] = params[i] * shrink - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
    }
  }
}

/** Global L2 norm of the gradient (accumulated in float64 so the order of a long sum matters less). */
export function gradNorm(grads: Float32Array): number {
  let s = 0;
  for (let i = 0; i < grads.length; i++) s += grads[i] * grads[i];
  return Math.sqrt(s);
}

/**
 * Scale the gradient so its global norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_:
 * coefficient maxNorm / (norm + 1e-6), applied only when below 1). Returns the norm before clipping.
 */
export function clipGradNorm(grads: Float32Array, maxNorm: number): number {
  const norm = gradNorm(grads);
  if (maxNorm > 0) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) for (let i = 0; i < grads.length; i++) grads[i] *= coef;
  }
  return norm;
}
