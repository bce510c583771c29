import type { ModalityHints } from './modality.js';
import type { SampleExtras } from './sink.js';

/**
 * What a format reader yields: small records in the producer's own terms. The driver
 * (src/import/driver.ts) does everything else: layer mapping, top-k order and gates, scoring,
 * modality rules, checks and writing.
 */

/** A sample (sequence) starts: its tokens, as the input gives them. */
export interface SampleRecord {
  kind: 'sample';
  key: string; // the reader's identity of the sample; layer records of the same tokens use it (Megatron stages)
  where: string;
  rows: number; // routed tokens, positions 0..rows-1
  ids: Int32Array | null; // token ids (image placeholders allowed, see --image-placeholder-id)
  hints?: ModalityHints;
  text?: string;
  source: string;
  domain?: string | null;
  phase?: readonly string[]; // per position
  prefill?: number; // engines: positions below this are 'prefill', the rest 'decode' (instead of phase: no string per token to send between threads)
  extras?: SampleExtras; // images, token strings and image grids the producer saved
}

/** How the producer numbers its layers. */
export type LayerIndex =
  | 'decoder' // decoder layer (0-based, or --layer-base 1)
  | 'moe' // MoE ordinal (mapped by --moe-layers / --config)
  | 'stage'; // decoder layer local to a pipeline stage (Megatron `decoder.layers.N` with PP)

/** One layer's routing for some or all tokens of a sample. */
export interface LayerRecord {
  kind: 'layer';
  key: string;
  where: string;
  layer: number;
  layerIndex: LayerIndex;
  stage?: number; // pipeline stage of the file (layerIndex 'stage')
  pos?: Int32Array; // positions routed in this layer (default: all 0..rows-1)
  /** router scores [n, E]: logits or probabilities */
  scores?: { data: Float32Array; E: number; probs?: boolean; bias?: Float32Array | null };
  /** the engine's chosen experts [n, K] and their weights when it saved them */
  ids?: { data: Int32Array; K: number; weights: Float32Array | null; order: 'ranked' | 'unranked' };
  phase?: readonly string[]; // per routed row
}

/** A sample is complete (its layers may be checked). */
export interface EndRecord {
  kind: 'end';
  key: string;
  where: string;
}

export type ImportRecord = SampleRecord | LayerRecord | EndRecord;
