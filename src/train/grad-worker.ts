import { parentPort, workerData } from 'node:worker_threads';
import type { ModelConfig } from '../model/config.js';
import { createParams } from '../model/params.js';
import type { EncodedSequence } from '../model/sequence.js';
import { MicroBatchGrad } from './efmoe-source.js';

/** Worker side of GradWorkerPool: gradient of the micro-batch it is sent, into the shared buffer. */
const { config, params, grads } = workerData as { config: ModelConfig; params: SharedArrayBuffer; grads: SharedArrayBuffer };
const p = createParams(config, new Float32Array(params));
const g = createParams(config, new Float32Array(grads));
const micro = new MicroBatchGrad(config, p);
parentPort!.on('message', (seqs: EncodedSequence[]) => {
  parentPort!.postMessage(micro.run(seqs, g));
});
