import { InputError } from '../util/errors.js';
import type { ModelConfig } from '../model/config.js';
import type { WordTokenizer } from '../model/tokenizer.js';
import { checkImage, fitImage, patchify } from './image.js';
import {
  type EncodedSequence, type RGBImage, type Sample, MODALITY_IMAGE, MODALITY_SPECIAL, MODALITY_TEXT,
} from './sample.js';

/** A sample's images as the model sees them (resized to image_size), in part order. */
export function modelImages(sample: Sample, imageSize: number): RGBImage[] {
  const out: RGBImage[] = [];
  for (const p of sample.parts) if ('image' in p) out.push(fitImage(p.image, imageSize));
  return out;
}

/**
 * SPEC §1 sequence: <bos>, each part's tokens in order (text: word ids; image: its patches),
 * <eos>. Errors name the sample's source. `imagesOut`, when given, receives the images as fed
 * to the model (after resizing), e.g. for the trace's samples.parquet.
 */
export function encodeSample(sample: Sample, tokenizer: WordTokenizer, config: ModelConfig, imagesOut?: RGBImage[]): EncodedSequence {
  const where = sample.source;
  if (sample.parts.length === 0) throw new InputError(`${where}: sample has no parts`);
  if (config.num_channels !== 3) throw new InputError(`${where}: model expects ${config.num_channels} channels; images are decoded to RGB (3)`);
  const P = config.patch_size;
  const grid = config.image_size / P;
  const perImage = grid * grid;
  const patchDim = P * P * config.num_channels;

  const textIds: number[][] = [];
  const images: RGBImage[] = [];
  let T = 2;
  for (const part of sample.parts) {
    if ('image' in part) {
      checkImage(part.image, where);
      images.push(fitImage(part.image, config.image_size));
      T += perImage;
    } else {
      const ids = tokenizer.encode(part.text);
      textIds.push(ids);
      T += ids.length;
    }
  }
  if (T > config.max_position_embeddings) {
    throw new InputError(`${where}: sequence of ${T} tokens is longer than the model's max_position_embeddings ${config.max_position_embeddings}`);
  }

  const ids = new Int32Array(T);
  const modality = new Uint8Array(T);
  const token = new Int32Array(T);
  const imagePart = new Int32Array(T).fill(-1);
  const patches = new Float32Array(images.length * perImage * patchDim);
  let t = 0;
  const special = (id: number) => {
    ids[t] = id;
    token[t] = id;
    modality[t++] = MODALITY_SPECIAL;
  };
  special(config.bos_token_id);
  let ti = 0, ii = 0;
  for (const part of sample.parts) {
    if ('image' in part) {
      patchify(images[ii], P, patches, ii * perImage * patchDim);
      for (let k = 0; k < perImage; k++) {
        ids[t] = -1;
        token[t] = k;
        modality[t] = MODALITY_IMAGE;
        imagePart[t++] = ii;
      }
      ii++;
    } else {
      for (const id of textIds[ti++]) {
        ids[t] = id;
        token[t] = id;
        modality[t++] = MODALITY_TEXT;
      }
    }
  }
  special(config.eos_token_id);
  imagesOut?.push(...images);
  return { T, ids, modality, token, imagePart, patches };
}

/** The trace's `text` for a sample: its text parts joined by a space (SPEC §2). */
export function sampleText(sample: Sample): string {
  return sample.parts.flatMap((p) => ('text' in p ? [p.text] : [])).join(' ');
}
