/**
 * The input embedding (SPEC §1) as a forward/backward pair: a text row takes its token's row of
 * embed_tokens, an image row the patch embedding of its patch (one matmul over all Np patches).
 *
 * Shapes: N rows, C = hidden size, P = patch vector size, Np = image rows. `rowIds[n]` is the token id of
 * row n or -1 for an image row; `patchRows[i]` is the row of the i-th patch, whose vector is
 * patches[i*P .. i*P+P-1].
 */
import { matmulForward, matmulBackward } from './kernels/matmul.js';

export interface EmbeddingWeights {
  embedTokens: Float32Array; // [V,C]
  patchW: Float32Array; // [C,P]
  patchB: Float32Array; // [C]
}

/** pe [Np,C] is scratch that the backward does not need. */
export function embedForward(
  x: Float32Array, pe: Float32Array, w: EmbeddingWeights, rowIds: Int32Array, patches: Float32Array, patchRows: Int32Array,
  N: number, Np: number, C: number, P: number,
): void {
  for (let n = 0; n < N; n++) {
    const id = rowIds[n];
    if (id >= 0) x.set(w.embedTokens.subarray(id * C, id * C + C), n * C); // x = embed_tokens[id]
  }
  if (Np === 0) return;
  matmulForward(pe, patches, w.patchW, w.patchB, Np, P, C); // pe = patch_embed.weight @ patch + bias
  for (let i = 0; i < Np; i++) x.set(pe.subarray(i * C, i * C + C), patchRows[i] * C); // x[patch row] = pe
}

/** Accumulates into the gradients of embed_tokens and patch_embed; dpe [Np,C] is scratch. */
export function embedBackward(
  gw: EmbeddingWeights, dpe: Float32Array, dx: Float32Array, w: EmbeddingWeights, rowIds: Int32Array, patches: Float32Array, patchRows: Int32Array,
  N: number, Np: number, C: number, P: number,
): void {
  for (let n = 0; n < N; n++) {
    const id = rowIds[n];
    if (id < 0) continue;
    const ro = n * C, eo = id * C;
    for (let c = 0; c < C; c++) gw.embedTokens[eo + c] += dx[ro + c]; // undoes x = embed_tokens[id]
  }
  if (Np === 0) return;
  for (let i = 0; i < Np; i++) dpe.set(dx.subarray(patchRows[i] * C, patchRows[i] * C + C), i * C); // undoes x[patch row] = pe
  matmulBackward(null, gw.patchW, gw.patchB, dpe, patches, w.patchW, Np, P, C); // undoes pe = patch_embed.weight @ patch + bias
}
