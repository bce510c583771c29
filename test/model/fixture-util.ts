/** Loading the committed efmoe fixtures (scripts/make-model-fixture.py) for the model tests. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../../src/io/checkpoint-files.js';
import { readSafetensors, type Tensor } from '../../src/model/safetensors.js';
import type { EncodedSequence } from '../../src/data/sample.js';
import type { ModelConfig } from '../../src/model/config.js';
import type { Params } from '../../src/model/params.js';

// compiled to dist/test/model/*.js: the package root is three levels up
export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

export interface Fixture {
  model: { config: ModelConfig; params: Params };
  expected: Map<string, Tensor>;
  seqs: EncodedSequence[];
}

interface RawSeq { ids: number[]; modality: number[]; imagePart: number[]; patches: number[] }

export function loadInputs(): EncodedSequence[] {
  const raw = JSON.parse(readFileSync(FIXTURES + 'efmoe-inputs.json', 'utf8')) as { sequences: RawSeq[] };
  return raw.sequences.map((s) => {
    const T = s.ids.length;
    const token = new Int32Array(T);
    let patch = 0;
    for (let t = 0; t < T; t++) token[t] = s.ids[t] >= 0 ? s.ids[t] : patch++;
    return {
      T, ids: Int32Array.from(s.ids), modality: Uint8Array.from(s.modality), token,
      imagePart: Int32Array.from(s.imagePart), patches: Float32Array.from(s.patches),
    };
  });
}

/** name: 'tiny-k2' (K=2, norm_topk_prob), 'tiny-k1' (K=1, no renormalisation) or 'tiny-plain' (K=2 unnormalised, no QK-norm, 4 heads). */
export function loadFixture(name: string): Fixture {
  const dir = FIXTURES + 'efmoe-' + name;
  const ck = loadCheckpoint(dir);
  const expected = readSafetensors(new Uint8Array(readFileSync(dir + '/expected.safetensors')), dir + '/expected.safetensors').tensors;
  return { model: { config: ck.config, params: ck.params }, expected, seqs: loadInputs() };
}

/** Largest |a - b| over the largest |b|: a scale-free error for whole tensors. */
export function relMaxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let err = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? err : err / scale;
}
