import type { FormatInfo } from './options.js';
import { readHf } from './formats/hf.js';
import { readMegatron } from './formats/megatron.js';
import { readOlmoe } from './formats/olmoe.js';
import { readSglang } from './formats/sglang.js';
import { readTable } from './formats/table.js';
import { readVllm } from './formats/vllm.js';

/** The import formats: a reader each, and what the driver should expect of it. */
export const FORMATS: Record<string, FormatInfo> = {
  hf: { read: readHf, phase: false, ragged: false, scores: true },
  vllm: { read: readVllm, phase: true, ragged: false, scores: false },
  sglang: { read: readSglang, phase: true, ragged: false, scores: false },
  megatron: { read: readMegatron, phase: false, ragged: false, scores: true },
  olmoe: { read: readOlmoe, phase: false, ragged: false, scores: false },
  table: { read: readTable, phase: false, ragged: true, scores: false },
  csv: { read: readTable, phase: false, ragged: true, scores: false }, // alias of table
};
export const FORMAT_NAMES = Object.keys(FORMATS);
