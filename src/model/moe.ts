/**
 * The sparse MoE block after the router (SPEC §1), as forward/backward pairs over flat arrays:
 *
 *   dispatch:  sort the N*K assignments by expert (which slot each one gets)
 *   gather:    xe[slot] = ln2[row of the slot's assignment]                  [NK,C]
 *   experts:   ye[slots of e] = W2_e(silu(W1_e xe) * W3_e xe)                  per expert, on its rows only
 *   combine:   out[row] = h[row] + sum_k gate[row,k] * ye[slot of (row,k)]      [N,C]
 *
 * Shapes: N rows, C = hidden size, E experts, K per token, F = expert intermediate size, NK = N*K.
 * Backwards ACCUMULATE into parameter gradients and overwrite the activation gradients they produce
 * unless said otherwise.
 */
import { matmulForward, matmulForwardShared, matmulBackward } from './kernels/matmul.js';
import { swigluForward, swigluBackward } from './kernels/swiglu.js';

/**
 * Counting sort of the N*K assignments by expert: assignments of expert e get slots
 * expertStart[e] .. expertStart[e+1]-1, in assignment order; slotAssign[slot] = assignment index n*K+k.
 */
export function moeDispatch(expertStart: Int32Array, slotAssign: Int32Array, fill: Int32Array, experts: Int32Array, NK: number, E: number): void {
  expertStart.fill(0);
  for (let j = 0; j < NK; j++) expertStart[experts[j] + 1]++;
  for (let e = 0; e < E; e++) expertStart[e + 1] += expertStart[e];
  fill.fill(0);
  for (let j = 0; j < NK; j++) {
    const e = experts[j];
    slotAssign[expertStart[e] + fill[e]++] = j;
  }
}

export function moeGatherForward(xe: Float32Array, ln2: Float32Array, slotAssign: Int32Array, NK: number, K: number, C: number): void {
  for (let slot = 0; slot < NK; slot++) {
    const src = ((slotAssign[slot] / K) | 0) * C, dst = slot * C;
    for (let i = 0; i < C; i++) xe[dst + i] = ln2[src + i]; // xe[slot] = ln2[row]
  }
}

/** dln2 is ACCUMULATED (a row's K copies add up). */
export function moeGatherBackward(dln2: Float32Array, dxe: Float32Array, slotAssign: Int32Array, NK: number, K: number, C: number): void {
  for (let slot = 0; slot < NK; slot++) {
    const xo = ((slotAssign[slot] / K) | 0) * C, yo = slot * C;
    for (let i = 0; i < C; i++) dln2[xo + i] += dxe[yo + i]; // undoes xe[slot] = ln2[row]
  }
}

/** One expert's weights (or their gradients). */
export interface ExpertWeights {
  w1: Float32Array[]; // E x [F,C]
  w3: Float32Array[]; // E x [F,C]
  w2: Float32Array[]; // E x [C,F]
}

/** Per expert e, on its ne rows: g = W1_e xe, u = W3_e xe, s = silu(g) * u, ye = W2_e s. */
export function expertsForward(
  ye: Float32Array, g: Float32Array, u: Float32Array, s: Float32Array, xe: Float32Array,
  w: ExpertWeights, expertStart: Int32Array, E: number, C: number, F: number,
): void {
  for (let e = 0; e < E; e++) {
    const s0 = expertStart[e], ne = expertStart[e + 1] - s0;
    if (ne === 0) continue;
    const rc = [s0 * C, (s0 + ne) * C] as const, rf = [s0 * F, (s0 + ne) * F] as const;
    const xee = xe.subarray(...rc), ge = g.subarray(...rf), ue = u.subarray(...rf), se = s.subarray(...rf);
    matmulForwardShared([ge, ue], xee, [w.w1[e], w.w3[e]], ne, C, F); // g = W1_e xe, u = W3_e xe
    swigluForward(se, ge, ue, ne, F); // s = silu(g) * u
    matmulForward(ye.subarray(...rc), se, w.w2[e], null, ne, F, C); // ye = W2_e s
  }
}

/** Overwrites dxe, ds, dg, du (scratch of [NK,F]); accumulates into the expert weight gradients. */
export function expertsBackward(
  dxe: Float32Array, ds: Float32Array, dg: Float32Array, du: Float32Array, gw: ExpertWeights, dye: Float32Array,
  xe: Float32Array, g: Float32Array, u: Float32Array, s: Float32Array, w: ExpertWeights, expertStart: Int32Array, E: number, C: number, F: number,
): void {
  ds.fill(0);
  dg.fill(0);
  du.fill(0);
  dxe.fill(0);
  for (let e = 0; e < E; e++) {
    const s0 = expertStart[e], ne = expertStart[e + 1] - s0;
    if (ne === 0) continue;
    const rc = [s0 * C, (s0 + ne) * C] as const, rf = [s0 * F, (s0 + ne) * F] as const;
    const dse = ds.subarray(...rf), dge = dg.subarray(...rf), due = du.subarray(...rf), dxee = dxe.subarray(...rc), xee = xe.subarray(...rc);
    matmulBackward(dse, gw.w2[e], null, dye.subarray(...rc), s.subarray(...rf), w.w2[e], ne, F, C); // undoes ye = W2_e s
    swigluBackward(dge, due, dse, g.subarray(...rf), u.subarray(...rf), ne, F); // undoes s = silu(g) * u
    matmulBackward(dxee, gw.w3[e], null, due, xee, w.w3[e], ne, C, F); // undoes u = W3_e xe
    matmulBackward(dxee, gw.w1[e], null, dge, xee, w.w1[e], ne, C, F); // undoes g = W1_e xe
  }
}

/** out = h + sum_k gate_k * ye_k. `out` may alias `h` (inference runs in place). */
export function moeCombineForward(out: Float32Array, h: Float32Array, ye: Float32Array, gates: Float32Array, slotAssign: Int32Array, N: number, NK: number, K: number, C: number): void {
  if (out !== h) out.set(h.subarray(0, N * C)); // out = h
  for (let slot = 0; slot < NK; slot++) {
    const j = slotAssign[slot];
    const gate = gates[j];
    const xo = ((j / K) | 0) * C, yo = slot * C;
    for (let i = 0; i < C; i++) out[xo + i] += gate * ye[yo + i]; // out += gate_k * ye_k
  }
}

/** Overwrites dh, dye [NK,C] and dgates [NK]. */
export function moeCombineBackward(
  dh: Float32Array, dye: Float32Array, dgates: Float32Array, dout: Float32Array,
  ye: Float32Array, gates: Float32Array, slotAssign: Int32Array, NK: number, K: number, C: number,
): void {
  dh.set(dout); // undoes out = h
  for (let slot = 0; slot < NK; slot++) {
    const j = slotAssign[slot];
    const xo = ((j / K) | 0) * C, yo = slot * C;
    const gate = gates[j];
    let dot = 0;
    for (let i = 0; i < C; i++) {
      dot += dout[xo + i] * ye[yo + i];
      dye[yo + i] = gate * dout[xo + i]; // undoes out += gate_k * ye_k (w.r.t. ye)
    }
    dgates[j] = dot; // undoes out += gate_k * ye_k (w.r.t. gate)
  }
}
