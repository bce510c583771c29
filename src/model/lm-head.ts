/**
 * The LM head and its loss (SPEC §1 Training) as a forward/backward pair: final RMSNorm over all N rows,
 * then only the Nt target rows go through lm_head, softmax and cross-entropy, averaged over targets.
 *
 * Shapes: N rows, C = hidden size, V = vocabulary, Nt = target rows; targetRows[i] is the row whose
 * next token targets[i] is predicted.
 */
import { matmulForward, matmulBackward } from './kernels/matmul.js';
import { rmsnormForward, rmsnormBackward } from './kernels/rmsnorm.js';
import { softmaxForward, crossEntropyForward, crossEntropySoftmaxBackward } from './kernels/softmax.js';

export interface LmHeadWeights {
  norm: Float32Array; // [C]
  lmHead: Float32Array; // [V,C]
}

/** What the backward needs: lnf [N,C], rstdf [N], lnfT [Nt,C], probsT [Nt,V]. logitsT [Nt,V] and losses [Nt] are scratch. */
export interface LmHeadActs {
  lnf: Float32Array; rstdf: Float32Array; lnfT: Float32Array; probsT: Float32Array;
  logitsT: Float32Array; losses: Float32Array;
}

/** Returns the mean cross-entropy over the targets (0 when there are none). */
export function lmHeadForward(
  a: LmHeadActs, x: Float32Array, w: LmHeadWeights, targetRows: Int32Array, targets: Int32Array,
  N: number, Nt: number, C: number, V: number, eps: number,
): number {
  rmsnormForward(a.lnf, a.rstdf, x, w.norm, N, C, eps); // lnf = RMSNorm(x; norm)
  for (let i = 0; i < Nt; i++) a.lnfT.set(a.lnf.subarray(targetRows[i] * C, targetRows[i] * C + C), i * C); // lnfT = lnf[target rows]
  matmulForward(a.logitsT, a.lnfT, w.lmHead, null, Nt, C, V); // logits = lm_head lnfT
  softmaxForward(a.probsT, a.logitsT, Nt, V); // probs = softmax(logits)
  crossEntropyForward(a.losses, a.probsT, targets, Nt, V); // losses = -log probs[target]
  let ce = 0;
  for (let i = 0; i < Nt; i++) ce += a.losses[i];
  return Nt > 0 ? ce / Nt : 0; // ce = mean(losses)
}

/** Overwrites dx [N,C]; accumulates into the gradients of norm and lm_head. Scratch: dlosses [Nt], dlogitsT [Nt,V], dlnfT [Nt,C], dlnf [N,C]. */
export function lmHeadBackward(
  dx: Float32Array, gw: LmHeadWeights, s: { dlosses: Float32Array; dlogitsT: Float32Array; dlnfT: Float32Array; dlnf: Float32Array },
  a: LmHeadActs, x: Float32Array, w: LmHeadWeights, targetRows: Int32Array, targets: Int32Array,
  N: number, Nt: number, C: number, V: number,
): void {
  dx.fill(0);
  if (Nt === 0) return;
  s.dlosses.fill(1 / Nt); // undoes ce = mean(losses)
  s.dlogitsT.fill(0);
  crossEntropySoftmaxBackward(s.dlogitsT, s.dlosses, a.probsT, targets, Nt, V); // undoes losses = -log softmax(logits)[target]
  s.dlnfT.fill(0);
  matmulBackward(s.dlnfT, gw.lmHead, null, s.dlogitsT, a.lnfT, w.lmHead, Nt, C, V); // undoes logits = lm_head lnfT
  s.dlnf.fill(0);
  for (let i = 0; i < Nt; i++) {
    const r = targetRows[i] * C, o = i * C;
    for (let c = 0; c < C; c++) s.dlnf[r + c] += s.dlnfT[o + c]; // undoes lnfT = lnf[target rows]
  }
  rmsnormBackward(dx, gw.norm, s.dlnf, x, w.norm, a.rstdf, N, C); // undoes lnf = RMSNorm(x; norm)
}
