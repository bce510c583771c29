import type { ModalityRules } from './modality.js';
import type { ModelRouting } from './layers.js';
import type { RouterOutput, Scoring } from './routing.js';
import type { ImportSink } from './sink.js';
import type { ModalitySideFile } from './side-file.js';

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
  includeMtp: boolean; // megatron: also multi-token-prediction layers
}

/** What a format parser gets: options, the sink, the side file when given. */
export interface ImportContext {
  opts: ImportOptions;
  sink: ImportSink;
  side: ModalitySideFile | null;
}

/** What a format parser returns for meta.json. */
export interface FormatResult {
  router_scoring: string;
  gates: string; // where gate values come from
  num_layers?: number;
  model?: { path: string; config: Record<string, unknown> } | null;
  notes?: string[];
  extra?: Record<string, unknown>;
}
