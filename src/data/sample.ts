/** An RGB image, 8 bits per channel, row-major, 3 bytes per pixel (alpha already dropped). */
export interface RGBImage {
  width: number;
  height: number;
  data: Uint8Array; // length width*height*3
}

export type Part = { text: string } | { image: RGBImage };

/** One sample: text and image parts in order, and where it came from (SPEC §2 `source`). */
export interface Sample {
  parts: Part[];
  source: string;
}

// the encoded sequence is the model's input type: it lives in src/model (data imports model, not the reverse)
export { MODALITY_SPECIAL, MODALITY_TEXT, MODALITY_IMAGE, MODALITY_NAMES, type EncodedSequence } from '../model/sequence.js';
