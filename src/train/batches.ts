import type { ModelConfig } from '../model/config.js';
import { SPECIAL_TOKENS, WordTokenizer } from '../model/tokenizer.js';
import { Rng, deriveSeed } from '../model/rng.js';
import type { EncodedSequence, Sample } from '../data/sample.js';
import { encodeSample } from '../data/encode.js';
import { COLOUR_NAMES, SHAPE_NAMES, shapesSample, shapesVocabulary } from '../data/shapes.js';
import { InputError } from '../util/errors.js';
import type { TrainSettings } from './train-config.js';
import type { EvalSet, WordClass } from './evaluate.js';

/** The word tokenizer of the shapes world (the trained checkpoint ships it). */
export function shapesTokenizer(): WordTokenizer {
  return new WordTokenizer([...SPECIAL_TOKENS, ...shapesVocabulary()]);
}

const isTextOnly = (s: Sample) => s.parts.every((p) => 'text' in p);
const TRIES = 64;

/**
 * Sample `index` of a training or held-out stream with a given share of text-only samples: a seeded
 * draw decides the kind, then the first sample of that kind among shapes samples
 * index*64 .. index*64+63 of the seed is taken (the shapes world itself has ~20% text only).
 */
export function streamSample(seed: number, index: number, textOnlyShare: number): Sample {
  const wantText = new Rng(deriveSeed(seed, 'text-only', index)).next() < textOnlyShare;
  let s = shapesSample(seed, index * TRIES);
  for (let j = 1; j < TRIES && isTextOnly(s) !== wantText; j++) s = shapesSample(seed, index * TRIES + j);
  return s;
}

/** The samples of update `step` (0-based): indices step*batch .. step*batch+batch-1 of the training stream. */
export function trainBatchSamples(s: TrainSettings, step: number): Sample[] {
  const out: Sample[] = [];
  for (let i = 0; i < s.batch; i++) out.push(streamSample(s.train_seed, step * s.batch + i, s.text_only_share));
  return out;
}

export function encodeSamples(samples: Sample[], tokenizer: WordTokenizer, config: ModelConfig): EncodedSequence[] {
  return samples.map((x) => encodeSample(x, tokenizer, config));
}

export { COLOUR_NAMES as COLOUR_WORDS, SHAPE_NAMES as SHAPE_WORDS } from '../data/shapes.js';

/** Word classes whose prediction needs the image: colour names and shape names. */
export function imageWordClasses(tokenizer: WordTokenizer): WordClass[] {
  const ids = (words: readonly string[]) =>
    words.map((w) => {
      const id = tokenizer.id(w);
      if (id === undefined) throw new InputError(`shapes vocabulary: has no word ${JSON.stringify(w)}`);
      return id;
    });
  return [
    { name: 'colour', ids: ids(COLOUR_NAMES) },
    { name: 'shape', ids: ids(SHAPE_NAMES) },
  ];
}

/** Held-out samples from the eval seed, plus their image+caption subset with own and swapped images. */
export function buildEvalSet(s: TrainSettings, tokenizer: WordTokenizer, config: ModelConfig): EvalSet {
  const samples: Sample[] = [];
  for (let i = 0; i < s.eval_samples; i++) samples.push(streamSample(s.eval_seed, i, s.text_only_share));
  const withImage = samples.filter((x) => x.parts.some((p) => 'image' in p));
  const imageOf = (x: Sample) => x.parts.find((p) => 'image' in p)!;
  const swapped = withImage.map((x, i) => {
    const other = imageOf(withImage[(i + 1) % withImage.length]);
    return { parts: x.parts.map((p) => ('image' in p ? other : p)), source: `${x.source}:swapped-image` };
  });
  return {
    seqs: encodeSamples(samples, tokenizer, config),
    imageSeqs: encodeSamples(withImage, tokenizer, config),
    swappedSeqs: encodeSamples(swapped, tokenizer, config),
    classes: imageWordClasses(tokenizer),
  };
}
