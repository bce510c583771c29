/**
 * One batch of capture's forward work, where the forward pass runs (a ForwardPool worker, or inline):
 * encode the samples, run the model, and PNG-encode the images the model saw for samples.parquet. The
 * capture's main thread then only writes.
 */
import type { ModelConfig } from '../model/config.js';
import type { WordTokenizer } from '../model/tokenizer.js';
import { forwardInference, type EfmoeModel, type InferenceResult, type InferenceWorkspace } from '../model/efmoe.js';
import { encodeSample } from '../data/encode.js';
import { encodePngRgb } from '../data/png-encoder.js';
import type { RGBImage, Sample } from '../data/sample.js';

/** What the trace needs of an encoded sequence. */
export interface SequenceRows {
  T: number;
  token: Int32Array; // [T]
  modality: Uint8Array; // [T]
}

export interface BatchRun {
  result: InferenceResult;
  seqs: SequenceRows[];
  pngs: Uint8Array[][]; // per sample, its images as fed to the model
}

export function runBatch(model: EfmoeModel & { config: ModelConfig }, tokenizer: WordTokenizer, ws: InferenceWorkspace, batch: Sample[], probs: boolean): BatchRun {
  const images: RGBImage[][] = [];
  const seqs = batch.map((s) => {
    const imgs: RGBImage[] = [];
    const seq = encodeSample(s, tokenizer, model.config, imgs);
    images.push(imgs);
    return seq;
  });
  const result = forwardInference(model, seqs, { probs }, ws);
  return { result, seqs: seqs.map(({ T, token, modality }) => ({ T, token, modality })), pngs: images.map((imgs) => imgs.map(encodePngRgb)) };
}

/** The buffers of a BatchRun that can move to another thread instead of being copied. */
export function batchTransfer(r: BatchRun): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>([r.result.rowStart.buffer as ArrayBuffer]);
  for (const l of r.result.layers) {
    out.add(l.experts.buffer as ArrayBuffer).add(l.gates.buffer as ArrayBuffer);
    if (l.probs) out.add(l.probs.buffer as ArrayBuffer);
  }
  for (const s of r.seqs) out.add(s.token.buffer as ArrayBuffer).add(s.modality.buffer as ArrayBuffer);
  for (const p of r.pngs) for (const b of p) out.add(b.buffer as ArrayBuffer);
  return [...out];
}
