/**
 * The model's input: one sample encoded as a sequence (SPEC §1). It lives with the model, which
 * imports nothing from data/; data/encode.ts produces it from a Sample.
 */

/** Modality codes used inside the model code; the trace writes the names. */
export const MODALITY_SPECIAL = 0;
export const MODALITY_TEXT = 1;
export const MODALITY_IMAGE = 2;
export const MODALITY_NAMES = ['special', 'text', 'image'] as const;

/**
 * A sample turned into the model's sequence (SPEC §1): <bos>, each part's tokens, <eos>.
 * Position t of the sequence is text/special (ids[t] >= 0) or an image patch (ids[t] = -1, its
 * vector is the next row of `patches`).
 */
export interface EncodedSequence {
  T: number;
  ids: Int32Array; // token id, or -1 for an image patch
  modality: Uint8Array; // MODALITY_* per position
  token: Int32Array; // trace `token` column: token id, or patch index within its image
  imagePart: Int32Array; // which image of the sample the position belongs to, -1 if none (bidirectional mask)
  patches: Float32Array; // [number of patch positions, patchDim], in position order, already normalised
}
