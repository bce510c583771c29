/**
 * Worker thread of ForwardPool: holds a copy of the model and runs forwardInference on the batches
 * it is sent, returning the routing arrays (transferred, not copied).
 */
import { parentPort } from 'node:worker_threads';
import type { ModelConfig } from '../model/config.js';
import { createParams } from '../model/params.js';
import { forwardInference, InferenceWorkspace, type EfmoeModel } from '../model/efmoe.js';
import type { EncodedSequence } from '../model/sequence.js';

export type WorkerRequest =
  | { type: 'init'; config: ModelConfig; flat: Float32Array }
  | { type: 'run'; id: number; seqs: EncodedSequence[]; probs: boolean };

export type WorkerReply =
  | { type: 'result'; id: number; N: number; rowStart: Int32Array; layers: { experts: Int32Array; gates: Float32Array; probs?: Float32Array }[] }
  | { type: 'error'; id: number; message: string; input: boolean };

let model: EfmoeModel | null = null;
let ws: InferenceWorkspace | null = null; // the weights never change here: copied into WASM memory once
const port = parentPort!;

port.on('message', (m: WorkerRequest) => {
  if (m.type === 'init') {
    model = { config: m.config, params: createParams(m.config, m.flat) };
    ws = new InferenceWorkspace(m.config, { fixedWeights: true });
    return;
  }
  try {
    const r = forwardInference(model!, m.seqs, { probs: m.probs }, ws!);
    const transfer: ArrayBuffer[] = [r.rowStart.buffer as ArrayBuffer];
    for (const l of r.layers) {
      transfer.push(l.experts.buffer as ArrayBuffer, l.gates.buffer as ArrayBuffer);
      if (l.probs) transfer.push(l.probs.buffer as ArrayBuffer);
    }
    port.postMessage({ type: 'result', id: m.id, N: r.N, rowStart: r.rowStart, layers: r.layers } satisfies WorkerReply, transfer);
  } catch (e) {
    port.postMessage({ type: 'error', id: m.id, message: e instanceof Error ? e.message : String(e), input: e instanceof Error && e.name === 'InputError' } satisfies WorkerReply);
  }
});
