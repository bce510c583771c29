import type { Counts } from '../../../analysis/types.js';
import type { RGBImage } from '../../../data/sample.js';
import { shapesSample, SHAPES_EVAL_SEED } from '../../../data/shapes.js';
import type { SampleDetail } from '../api.js';
import { draw } from '../charts.js';
import type { Context } from '../context.js';
import { clear, h } from '../dom.js';
import type { WorkerReply, WorkerRequest } from '../model-worker.js';
import { figureSpec } from './figure.js';
import { layerSlider } from './layer-slider.js';
import { sampleDetailPanel } from './sample-detail.js';
import { errorText, message, type View } from './view.js';

const SIZE = 256; // drawing canvas, px (the model's preprocessing resizes it to image_size)
const INKS = [['red', '#DC2626'], ['green', '#16A34A'], ['blue', '#2563EB'], ['yellow', '#EAB308'], ['black', '#111111'], ['white (eraser)', '#FFFFFF']] as const;

/** The routing of one sample as counts (the figure's input), from the playground's own forward pass. */
export function sampleCounts(d: SampleDetail, numExperts: number, topK: number, mode: Counts['mode'], modalities: string[]): Counts {
  const L = d.layers.length, E = numExperts, M = modalities.length;
  const n = new Float64Array(L * E * M), tokens = new Float64Array(L * M);
  for (const t of d.tokens) {
    const m = modalities.indexOf(t.modality);
    if (m < 0) continue;
    for (let li = 0; li < L; li++) {
      const ex = t.experts[li], g = t.gates[li];
      const gsum = g.reduce((a, b) => a + b, 0) || 1;
      const k = mode === 'top1' ? 1 : ex.length;
      for (let j = 0; j < k; j++) n[(li * E + ex[j]) * M + m] += mode === 'gate' ? g[j] / gsum : 1;
      tokens[li * M + m] += 1;
    }
  }
  return { mode, numExperts: E, topK, layers: [...d.layers], modalities, n, tokens };
}

function canvasImage(c: HTMLCanvasElement): RGBImage {
  const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
  const data = new Uint8Array(c.width * c.height * 3);
  for (let i = 0, j = 0; i < px.length; i += 4, j += 3) {
    data[j] = px[i];
    data[j + 1] = px[i + 1];
    data[j + 2] = px[i + 2];
  }
  return { width: c.width, height: c.height, data };
}

function imageCanvas(img: RGBImage): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = img.width;
  c.height = img.height;
  const g = c.getContext('2d')!;
  const id = g.createImageData(img.width, img.height);
  for (let i = 0, j = 0; j < img.data.length; i += 4, j += 3) {
    id.data[i] = img.data[j];
    id.data[i + 1] = img.data[j + 1];
    id.data[i + 2] = img.data[j + 2];
    id.data[i + 3] = 255;
  }
  g.putImageData(id, 0, 0);
  return c;
}

/** View 7: the bundled model in the browser. Draw or upload an image, type a caption, see the routing live. */
export function playgroundView(ctx: Context): View {
  const cfg = ctx.info.model?.config as { num_local_experts?: number; num_experts_per_tok?: number; num_hidden_layers?: number } | null | undefined;
  const numExperts = cfg?.num_local_experts ?? ctx.numExperts;
  const topK = cfg?.num_experts_per_tok ?? 1;
  const canvas = h('canvas', { width: SIZE, height: SIZE, class: 'draw', 'aria-label': 'Drawing area: draw with the mouse or a pen' });
  const g = canvas.getContext('2d', { willReadFrequently: true })!;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, SIZE, SIZE);
  let ink: string = INKS[0][1];
  let brush = 18;
  const caption = h('input', { type: 'text', class: 'caption', 'aria-label': 'Caption', placeholder: 'a caption, e.g. a red circle left of a blue square', value: '' });
  const useImage = h('input', { type: 'checkbox', checked: true, 'aria-label': 'Include the image' });
  const status = h('p', { class: 'status-line', 'aria-live': 'polite' }, 'loading the model…');
  const fig = h('div', { class: 'chart', id: 'playground-figure' });
  const detailBox = h('div', { id: 'playground-detail' });
  const L = cfg?.num_hidden_layers ?? ctx.trace.meta.num_layers;
  // The figure's panels: the trace's choice when the trace comes from a model of this depth, else the seed's layers of this model.
  const sameDepth = ctx.trace.meta.num_layers === L;
  const panelsOf = () => (sameDepth ? ctx.state.panels : [...new Set([0, Math.round((2 * L) / 3), L - 1])]);
  const slider = layerSlider(Array.from({ length: L }, (_, l) => l), ctx.state.layer, (l) => ctx.set({ layer: l }));
  let panel: ReturnType<typeof sampleDetailPanel> | null = null;
  let last: SampleDetail | null = null;
  let example = 0;
  let optedIn = false;

  const inks = h('div', { class: 'draw-tools', role: 'group', 'aria-label': 'Ink' }, INKS.map(([name, col]) => h('button', {
    class: 'colour', title: name, 'aria-label': name, 'aria-pressed': String(col === ink), style: { background: col },
    onclick: (ev: Event) => {
      ink = col;
      for (const b of inks.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b === ev.currentTarget));
    },
  })));
  const upload = h('input', { type: 'file', accept: 'image/*', 'aria-label': 'Upload an image' });
  upload.addEventListener('change', async () => {
    const f = upload.files?.[0];
    if (!f) return;
    try {
      const bmp = await createImageBitmap(f);
      g.fillStyle = '#fff';
      g.fillRect(0, 0, SIZE, SIZE);
      g.drawImage(bmp, 0, 0, SIZE, SIZE);
      schedule(0);
    } catch (e) {
      clear(status, message(`${f.name}: not an image this browser can decode (${errorText(e)})`, 'error'));
    }
  });
  const loadExample = () => {
    // The next sample of the shapes world (the data the bundled model was trained on) that has an image.
    let s = shapesSample(SHAPES_EVAL_SEED, example++);
    while (!s.parts.some((p) => 'image' in p)) s = shapesSample(SHAPES_EVAL_SEED, example++);
    const img = s.parts.find((p): p is { image: RGBImage } => 'image' in p)!.image;
    g.imageSmoothingEnabled = false;
    g.drawImage(imageCanvas(img), 0, 0, SIZE, SIZE);
    caption.value = s.parts.filter((p): p is { text: string } => 'text' in p).map((p) => p.text).join(' ');
    schedule(0);
  };
  const tools = h('div', { class: 'draw-tools' },
    h('label', { class: 'control' }, h('span', {}, 'Brush'), h('select', { 'aria-label': 'Brush size', onchange: (ev: Event) => (brush = Number((ev.target as HTMLSelectElement).value)) },
      [8, 18, 32, 56].map((b) => h('option', { value: String(b), selected: b === brush }, `${b}px`)))),
    h('button', { class: 'small', onclick: () => { g.fillStyle = '#fff'; g.fillRect(0, 0, SIZE, SIZE); schedule(0); } }, 'clear'),
    h('button', { class: 'small', onclick: loadExample }, 'shapes example'),
    h('label', { class: 'control' }, useImage, h('span', {}, 'include image')));

  // Drawing: round strokes under the pointer; routing reruns when a stroke ends.
  let drawing = false;
  let lastPt: [number, number] | null = null;
  const at = (ev: PointerEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [((ev.clientX - r.left) / r.width) * SIZE, ((ev.clientY - r.top) / r.height) * SIZE];
  };
  const stroke = (p: [number, number]) => {
    g.strokeStyle = ink;
    g.fillStyle = ink;
    g.lineWidth = brush;
    g.lineCap = 'round';
    g.beginPath();
    if (lastPt) {
      g.moveTo(lastPt[0], lastPt[1]);
      g.lineTo(p[0], p[1]);
      g.stroke();
    } else {
      g.arc(p[0], p[1], brush / 2, 0, 2 * Math.PI);
      g.fill();
    }
    lastPt = p;
  };
  canvas.addEventListener('pointerdown', (ev) => {
    drawing = true;
    lastPt = null;
    canvas.setPointerCapture(ev.pointerId);
    stroke(at(ev));
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (drawing) stroke(at(ev));
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    lastPt = null;
    schedule(0);
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  caption.addEventListener('input', () => schedule(250));
  useImage.addEventListener('change', () => schedule(0));

  const model = ctx.info.model;
  const which = h('p', { class: 'model-line', id: 'playground-model' }, model
    ? [`Model: `, h('b', {}, model.folder), model.source === 'bundled' ? ' (the efmoe checkpoint bundled with moescope)' : ' (the checkpoint this trace was captured with)',
      model.ofTrace ? ` \u2014 the model of trace ${ctx.trace.folder}.` : ` \u2014 not the model of trace ${ctx.trace.folder}.`]
    : 'No model to run.');
  const refusal = h('div', { id: 'playground-refusal' });
  const el = h('section', { class: 'view', 'aria-label': 'Playground' }, which, refusal,
    h('div', { class: 'playground' },
      h('div', {}, h('h3', {}, 'Image'), canvas, inks, tools, h('div', { class: 'draw-tools' }, h('label', { class: 'control' }, h('span', {}, 'Upload'), upload)),
        h('h3', {}, 'Caption'), caption, status),
      h('div', {}, h('div', { class: 'controls' }, slider.el), fig, detailBox)),
    h('p', { class: 'hint' }, 'The model runs in this page (the same TypeScript code as `moescope capture`, weights fetched from the server). The image is resized to the model\u2019s input size and cut into patches as in a capture.'));
  const playArea = el.querySelector('.playground') as HTMLElement;

  // The worker: one request in flight, the latest wins.
  let worker: Worker | null = null;
  let ready = false;
  let seq = 0;
  let timer = 0;
  function schedule(delay: number) {
    clearTimeout(timer);
    timer = window.setTimeout(run, delay);
  }
  function run() {
    if (!worker || !ready) return;
    const msg: WorkerRequest = { type: 'route', id: ++seq, image: useImage.checked ? canvasImage(canvas) : null, caption: caption.value };
    worker.postMessage(msg);
  }
  const show = async (d: SampleDetail, modelImage: RGBImage | null) => {
    last = d;
    const counts = sampleCounts(d, numExperts, topK, ctx.state.count, ['text', 'image']);
    await draw(fig, figureSpec(counts, panelsOf(), ctx.state.normalize, ctx.state.sort, 'This sample'));
    const mi = modelImage ? imageCanvas(modelImage) : null;
    panel = sampleDetailPanel({ detail: d, numExperts, layer: Math.min(ctx.state.layer, L - 1), image: () => (mi ? Promise.resolve(mi) : null), onLayer: (l) => ctx.set({ layer: l }) });
    clear(detailBox, panel.el);
  };
  const start = () => {
    worker = new Worker(new URL('../model-worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = async (ev: MessageEvent<WorkerReply>) => {
      const m = ev.data;
      if (m.type === 'loaded') {
        ready = true;
        clear(status, `${model?.folder ?? 'model'} loaded: ${m.config.num_hidden_layers} layers, ${m.config.num_local_experts} experts, top-${m.config.num_experts_per_tok}, ${m.config.image_size}px images in ${m.config.patch_size}px patches (${m.ms.toFixed(0)} ms)`);
        if (!caption.value) loadExample();
        else run();
      } else if (m.type === 'routed') {
        if (m.id !== seq) return; // a newer request is on its way
        try {
          await show(m.detail, m.modelImage);
          clear(status, `routed ${m.detail.tokens.length} tokens through ${m.detail.layers.length} layers in ${m.ms.toFixed(1)} ms`);
          // What ran, for checking against the Node model (the browser tests do): the model-size image, the caption, the routing.
          (el as HTMLElement & { lastRun?: unknown }).lastRun = { image: m.modelImage, caption: m.detail.text, detail: m.detail };
          el.dataset.routed = String(m.id);
        } catch (e) {
          clear(status, message(errorText(e), 'error'));
        }
      } else {
        clear(status, message(m.message, 'error'));
      }
    };
    worker.onerror = (ev) => clear(status, message(`the model worker failed: ${ev.message}`, 'error'));
    worker.postMessage({ type: 'load', base: new URL('.', location.href).href } satisfies WorkerRequest);
  };

  return {
    id: 'playground', label: 'Playground', el,
    show: async () => {
      if (!model) {
        clear(status, message('No model to run: the trace names no checkpoint folder that still exists, and the bundled model is missing.', 'error'));
        return;
      }
      slider.set(ctx.state.layer);
      if (!model.ofTrace && !optedIn) {
        // Never pretend: routing shown here would be another model's, not this trace's.
        playArea.hidden = true;
        clear(refusal, h('p', { class: 'msg warning', role: 'alert' }, model.reason ?? 'This trace was not made by the model the playground runs.'),
          h('button', { class: 'small', id: 'playground-anyway', onclick: () => { optedIn = true; clear(refusal, h('p', { class: 'msg warning' }, `Running ${model.folder}, not the model of ${ctx.trace.folder}: its routing says nothing about this trace.`)); playArea.hidden = false; if (!worker) start(); } },
            `Run ${model.folder} anyway (its routing is not this trace\u2019s)`));
        return;
      }
      if (!worker) start();
    },
    update: async (changed) => {
      if (changed.includes('layer')) {
        slider.set(ctx.state.layer);
        panel?.setLayer(ctx.state.layer);
      }
      if (last && changed.some((k) => k === 'panels' || k === 'count' || k === 'normalize' || k === 'sort')) {
        const counts = sampleCounts(last, numExperts, topK, ctx.state.count, ['text', 'image']);
        await draw(fig, figureSpec(counts, panelsOf(), ctx.state.normalize, ctx.state.sort, 'This sample'));
      }
    },
  };
}
