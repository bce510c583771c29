/// <reference lib="webworker" />
import { checkpointFromBytes, type Checkpoint } from '../../model/checkpoint.js';
import { dims } from '../../model/config.js';
import { forwardInference } from '../../model/efmoe.js';
import { encodeSample } from '../../data/encode.js';
import { MODALITY_NAMES, type RGBImage, type Sample } from '../../data/sample.js';
import type { SampleDetail, TokenRouting } from './api.js';

/**
 * The playground's model, off the page's thread: the bundled checkpoint fetched from the server and
 * run by the same TypeScript model code as `moescope capture` (src/model, src/data).
 */
export type WorkerRequest =
  | { type: 'load'; base: string }
  | { type: 'route'; id: number; image: RGBImage | null; caption: string };

export type WorkerReply =
  | { type: 'loaded'; config: Checkpoint['config']; vocab: number; ms: number }
  | { type: 'routed'; id: number; detail: SampleDetail; modelImage: RGBImage | null; ms: number }
  | { type: 'error'; id?: number; message: string };

let ck: Checkpoint | null = null;
const post = (m: WorkerReply) => (self as unknown as DedicatedWorkerGlobalScope).postMessage(m);

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) {
    let reason = r.statusText;
    try {
      reason = ((await r.json()) as { error?: string }).error ?? reason;
    } catch { /* not JSON */ }
    throw new Error(`${url}: ${r.status} ${reason}`);
  }
  return r;
}

function route(image: RGBImage | null, caption: string): { detail: SampleDetail; modelImage: RGBImage | null } {
  if (!ck) throw new Error('the model is not loaded');
  const parts: Sample['parts'] = [];
  if (image) parts.push({ image });
  if (caption.trim()) parts.push({ text: caption });
  if (!parts.length) throw new Error('draw an image or type a caption');
  const images: RGBImage[] = [];
  const seq = encodeSample({ parts, source: 'playground' }, ck.tokenizer, ck.config, images);
  const res = forwardInference(ck, [seq]);
  const { K, L } = dims(ck.config);
  const tokens: TokenRouting[] = [];
  for (let t = 0; t < seq.T; t++) {
    const modality = MODALITY_NAMES[seq.modality[t]];
    tokens.push({
      pos: t, modality, token: seq.token[t],
      word: modality === 'image' ? null : ck.tokenizer.decode(seq.ids[t]),
      image: seq.imagePart[t],
      experts: res.layers.map((l) => Array.from(l.experts.subarray(t * K, t * K + K))),
      gates: res.layers.map((l) => Array.from(l.gates.subarray(t * K, t * K + K))),
    });
  }
  return {
    detail: { sample: 0, text: caption, source: 'playground', domain: null, images: images.length, imageGrids: null, layers: Array.from({ length: L }, (_, l) => l), tokens },
    modelImage: images[0] ?? null,
  };
}

self.onmessage = async (ev: MessageEvent<WorkerRequest>) => {
  const m = ev.data;
  try {
    if (m.type === 'load') {
      const t0 = performance.now();
      const [config, tokenizer, weights] = await Promise.all([
        fetchOk(`${m.base}api/model/config.json`).then((r) => r.text()),
        fetchOk(`${m.base}api/model/tokenizer.json`).then((r) => r.text()),
        fetchOk(`${m.base}api/model/model.safetensors`).then(async (r) => new Uint8Array(await r.arrayBuffer())),
      ]);
      ck = checkpointFromBytes({ config, tokenizer, weights }, 'model');
      post({ type: 'loaded', config: ck.config, vocab: ck.tokenizer.vocab.length, ms: performance.now() - t0 });
    } else {
      const t0 = performance.now();
      const r = route(m.image, m.caption);
      post({ type: 'routed', id: m.id, ...r, ms: performance.now() - t0 });
    }
  } catch (e) {
    post({ type: 'error', id: m.type === 'route' ? m.id : undefined, message: e instanceof Error ? e.message : String(e) });
  }
};
