import type { ModelConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import { type EncodedSequence, MODALITY_TEXT, MODALITY_IMAGE } from '../model/sequence.js';
import { routerStatsSums } from '../model/router-stats.js';
import { type EfmoeModel, type TrainState, createTrainState, forwardTrain, forwardInference } from '../model/efmoe.js';

/** A class of words whose prediction needs the image (colour names, shape names). */
export interface WordClass {
  name: string;
  ids: number[];
}

/**
 * The held-out set, encoded once: all samples (for CE), and the image+caption samples twice, with
 * their own image and with the image of another sample (the next one, cyclically).
 */
export interface EvalSet {
  seqs: EncodedSequence[];
  imageSeqs: EncodedSequence[];
  swappedSeqs: EncodedSequence[];
  classes: WordClass[];
}

export interface WordAccuracy {
  name: string;
  n: number; // positions whose target is a word of the class, in image+caption samples
  accuracy: number; // argmax over the whole vocabulary equals the target
  accuracy_swapped_image: number; // same positions, each image swapped for another sample's
  ce: number; // mean cross-entropy at those positions
  ce_swapped_image: number;
  chance: number; // 1 / (words in the class): a model that knows a word of the class comes but not which
  majority: number; // share of the most frequent word of the class at those positions
}

export interface EvalReport {
  samples: number;
  ce: number; // mean next-token CE over all text targets of the held-out set
  loss: number; // ce + aux + z, averaged over chunks
  image_samples?: number;
  caption_ce?: number; // CE of the image+caption samples with their own image
  caption_ce_swapped_image?: number; // ... with another sample's image
  words?: WordAccuracy[];
  router?: RouterReport;
}

/** How decided the routers are on the held-out samples, per layer (all positions). */
export interface RouterReport {
  gate_top1: number[]; // mean top-1 gate (1/E = a tie)
  entropy_bits: number[]; // mean router entropy (log2 E = a tie)
  S: number[]; // text/image specialisation of the top-1 choices (SPEC §3), special tokens left out
  layers_gate_over_2x_uniform: number; // layers whose mean top-1 gate is at least 2/E
  mean_entropy_bits: number;
}

/** Router statistics of the held-out set: the numbers issue 14 asks for, computed from the probs. */
export function routerReport(model: EfmoeModel, seqs: EncodedSequence[]): RouterReport {
  const { num_hidden_layers: L, num_local_experts: E, num_experts_per_tok: K } = model.config;
  const gate = new Array<number>(L).fill(0), ent = new Array<number>(L).fill(0);
  const counts = Array.from({ length: L }, () => new Float64Array(E * 2)); // [e][text, image] of the top-1 choice
  let rows = 0;
  for (const c of chunks(seqs, CHUNK)) {
    const r = forwardInference(model, c, { probs: true });
    rows += r.N;
    r.layers.forEach((ly, l) => {
      const st = routerStatsSums(ly.probs!, ly.gates, r.N, E, K);
      gate[l] += st.gate;
      ent[l] += st.entropy;
    });
    c.forEach((s, b) => {
      for (let t = 0; t < s.T; t++) {
        const g = s.modality[t] === MODALITY_TEXT ? 0 : s.modality[t] === MODALITY_IMAGE ? 1 : -1;
        if (g < 0) continue;
        const row = r.rowStart[b] + t;
        r.layers.forEach((ly, l) => counts[l][ly.experts[row * K] * 2 + g]++);
      }
    });
  }
  const S = counts.map((n) => {
    let sum = 0, used = 0;
    for (let e = 0; e < E; e++) {
      const tot = n[2 * e] + n[2 * e + 1];
      if (tot === 0) continue;
      let h = 0;
      for (const x of [n[2 * e], n[2 * e + 1]]) if (x > 0) h -= (x / tot) * Math.log2(x / tot);
      sum += 1 - h; // 1 - H(share_e) / log2(2 groups)
      used++;
    }
    return used ? sum / used : 0;
  });
  const g = gate.map((x) => x / Math.max(1, rows)), h = ent.map((x) => x / Math.max(1, rows));
  return {
    gate_top1: g, entropy_bits: h, S,
    layers_gate_over_2x_uniform: g.filter((x) => x >= 2 / E).length,
    mean_entropy_bits: h.reduce((a, b) => a + b, 0) / Math.max(1, L),
  };
}

const CHUNK = 16;

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** Mean CE over all targets (weighted by targets per chunk) and mean loss per chunk. */
export function heldOutLoss(model: EfmoeModel, seqs: EncodedSequence[], state?: TrainState): { ce: number; loss: number; targets: number } {
  const st = state ?? createTrainState(model.config, 1);
  let ceSum = 0, targets = 0, lossSum = 0, parts = 0;
  for (const c of chunks(seqs, CHUNK)) {
    const r = forwardTrain(model, c, st);
    ceSum += r.ce * r.targets;
    targets += r.targets;
    lossSum += r.loss - r.ce;
    parts++;
  }
  const ce = targets > 0 ? ceSum / targets : 0;
  return { ce, loss: ce + (parts > 0 ? lossSum / parts : 0), targets };
}

/**
 * For every position t after an image whose token is a word of a class: was it the argmax of the
 * prediction made at t-1? Per class: hits, positions, and the count of each target word.
 */
function classHits(model: EfmoeModel, seqs: EncodedSequence[], classes: WordClass[]): { hits: number; n: number; nll: number; counts: Map<number, number> }[] {
  const V = model.config.vocab_size;
  const res = classes.map(() => ({ hits: 0, n: 0, nll: 0, counts: new Map<number, number>() }));
  const classOf = new Map<number, number>();
  classes.forEach((c, i) => c.ids.forEach((id) => classOf.set(id, i)));
  for (const c of chunks(seqs, CHUNK)) {
    const r = forwardInference(model, c, { logits: true });
    const logits = r.logits!;
    c.forEach((s, b) => {
      const r0 = r.rowStart[b];
      // only words after an image: a caption written before its image ("draw a red circle :") cannot know it
      let seenImage = false;
      for (let t = 1; t < s.T; t++) {
        if (s.ids[t] < 0) seenImage = true;
        const target = s.ids[t];
        const k = classOf.get(target);
        if (!seenImage || s.modality[t] !== MODALITY_TEXT || k === undefined) continue;
        const o = (r0 + t - 1) * V;
        let best = 0;
        for (let v = 1; v < V; v++) if (logits[o + v] > logits[o + best]) best = v;
        let z = 0;
        for (let v = 0; v < V; v++) z += Math.exp(logits[o + v] - logits[o + best]);
        const x = res[k];
        x.nll += Math.log(z) - (logits[o + target] - logits[o + best]); // -log softmax(logits)[target]
        if (best === target) x.hits++;
        x.n++;
        x.counts.set(target, (x.counts.get(target) ?? 0) + 1);
      }
    });
  }
  return res;
}

/** Held-out evaluation: CE, and with `full` the two checks that the model reads the image. */
export function evaluate(config: ModelConfig, params: Params, set: EvalSet, full: boolean): EvalReport {
  const model: EfmoeModel = { config, params };
  const st = createTrainState(config, 1);
  const all = heldOutLoss(model, set.seqs, st);
  const report: EvalReport = { samples: set.seqs.length, ce: all.ce, loss: all.loss };
  if (!full) return report;
  report.router = routerReport(model, set.seqs);
  if (set.imageSeqs.length === 0) return report;
  report.image_samples = set.imageSeqs.length;
  report.caption_ce = heldOutLoss(model, set.imageSeqs, st).ce;
  report.caption_ce_swapped_image = heldOutLoss(model, set.swappedSeqs, st).ce;
  const ownAll = classHits(model, set.imageSeqs, set.classes);
  const swappedAll = classHits(model, set.swappedSeqs, set.classes);
  report.words = set.classes.map((cls, i) => {
    const own = ownAll[i];
    const swapped = swappedAll[i];
    const majority = own.n > 0 ? Math.max(...own.counts.values()) / own.n : 0;
    return {
      name: cls.name, n: own.n,
      accuracy: own.n ? own.hits / own.n : 0,
      accuracy_swapped_image: swapped.n ? swapped.hits / swapped.n : 0,
      ce: own.n ? own.nll / own.n : 0,
      ce_swapped_image: swapped.n ? swapped.nll / swapped.n : 0,
      chance: 1 / cls.ids.length,
      majority,
    };
  });
  return report;
}
