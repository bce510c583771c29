/**
 * Worker thread of ForwardPool: holds a copy of the model and runs runBatch (encode, forward, PNG) on
 * the batches it is sent, returning the results (transferred, not copied).
 */
import { parentPort } from 'node:worker_threads';
import type { ModelConfig } from '../model/config.js';
import { createParams } from '../model/params.js';
import { InferenceWorkspace, type EfmoeModel } from '../model/efmoe.js';
import { WordTokenizer } from '../model/tokenizer.js';
import type { Sample } from '../data/sample.js';
import { runBatch, batchTransfer } from './forward-batch.js';
import { answerJob } from '../util/worker-pool.js';

export type WorkerRequest =
  | { type: 'init'; config: ModelConfig; flat: Float32Array; vocab: readonly string[] }
  | { type: 'run'; id: number; batch: Sample[]; probs: boolean };

let model: EfmoeModel | null = null;
let tokenizer: WordTokenizer | null = null;
let ws: InferenceWorkspace | null = null; // the weights never change here: copied into WASM memory once
const port = parentPort!;

port.on('message', (m: WorkerRequest) => {
  if (m.type === 'init') {
    model = { config: m.config, params: createParams(m.config, m.flat) };
    tokenizer = new WordTokenizer(m.vocab);
    ws = new InferenceWorkspace(m.config, { fixedWeights: true });
    return;
  }
  answerJob(m.id, () => {
    const run = runBatch(model!, tokenizer!, ws!, m.batch, m.probs);
    return { value: run, transfer: batchTransfer(run) };
  });
});
