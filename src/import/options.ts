import type { ModalityRules } from './modality.js';
import type { ModelRouting, RouterRule } from './layers.js';
import type { RouterOutput, Scoring } from './routing.js';
import type { ImportRecord } from './records.js';

/** Everything the CLI flags say, resolved (config.json read, lists parsed). */
export interface ImportOptions {
  numExperts?: number;
  topK?: number;
  numLayers?: number;
  moeLayers?: number[]; // decoder layer of MoE ordinal i
  model?: ModelRouting & { path: string }; // --config
  scoring?: Scoring;
  routerOutput: RouterOutput;
  normTopk?: boolean;
  fullProbs: boolean;
  rules: ModalityRules;
  sideFile?: string;
  microBatch: number; // megatron: sequences per step (tokens are sequence-major)
  layerBase: 0 | 1; // producer layers are 1-based (Megatron's layer_number)
  pipeline?: { stages: number; layers?: number[]; tensorParallel: number }; // megatron PP
  expertOrder?: 'ranked' | 'unranked'; // override what the reader says about ids without weights
  routerBias?: string; // safetensors with e_score_correction_bias per layer
  domain?: string; // domain of every sample
  tokenizer?: string; // tokenizer.json to name token ids
  /** worker threads for top-k from router scores: 0 = this thread; default 2 once the input is large (tests set it) */
  routeThreads?: number;
}

/** What a reader gets: the options, and a place for notes and meta.json keys. */
export interface ReaderContext {
  opts: ImportOptions;
  notes: Set<string>;
  meta: Record<string, unknown>; // extra meta.json keys the reader knows (manifest config, ...)
  /** the router rule a reader learned from its input (hf manifest config), when --config gave none */
  rule?: RouterRule;
  numLayers?: number;
  /**
   * Memory to read `bytes` of float32 router scores into, lent by the routing workers (a record's
   * scores in it move to a worker without a copy); null: allocate as usual. Only for scores that
   * reach the driver as read, whole (not a picked or decoded copy).
   */
  scoreBuffer?: (bytes: number) => ArrayBuffer | null;
}

export interface Reader {
  (inputs: string[], ctx: ReaderContext): AsyncGenerator<ImportRecord>;
}

export interface FormatInfo {
  read: Reader;
  phase: boolean; // rows get a phase column
  ragged: boolean; // a token may be routed in fewer layers than others (table)
  scores: boolean; // input may carry router scores (--full-probs possible)
}
