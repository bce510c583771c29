import type { Command } from 'commander';
import { InputError } from '../../util/errors.js';
import { guardOutput } from '../../util/output-guard.js';
import { LIMITS, parseIntOption, parseLayerList } from '../../util/limits.js';
import { runImport } from '../../import/driver.js';
import { FORMATS, FORMAT_NAMES } from '../../import/formats.js';
import { readModelConfig } from '../../import/layers.js';
import type { ImportOptions } from '../../import/options.js';

interface Flags {
  out: string;
  numExperts?: string;
  topK?: string;
  numLayers?: string;
  moeLayers?: string;
  config?: string;
  scoring?: string;
  routerOutput: string;
  normTopk?: boolean;
  fullProbs?: boolean;
  imageTokenId?: string;
  imageSpecialIds?: string;
  specialIds?: string;
  imagePlaceholderId?: string;
  imagePatches?: string;
  modality?: string;
  microBatch: string;
  force?: boolean;
  layerBase: string;
  pipelineParallel?: string;
  pipelineLayers?: string;
  expertOrder?: string;
  routerBias?: string;
  domain?: string;
  tokenizer?: string;
}

const ID = [-(2 ** 31), 2 ** 31 - 1] as const;
const opt = (flag: string, v: string | undefined, min: number, max: number) => (v === undefined ? undefined : parseIntOption(flag, v, min, max));

function idSet(flag: string, v: string | undefined): Set<number> | undefined {
  if (v === undefined) return undefined;
  return new Set(v.split(',').map((s) => s.trim()).filter(Boolean).map((s) => parseIntOption(flag, s, ...ID)));
}

function countList(flag: string, v: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  if (parts.length > LIMITS.layers) throw new InputError(`${flag}: more than ${LIMITS.layers} entries`);
  return parts.map((s) => parseIntOption(flag, s, 1, LIMITS.layers));
}

/** --moe-layers: decoder layer of MoE ordinal 0, 1, ...: ascending, checked before it is expanded. */
function moeLayerList(v: string, numLayers: number | undefined): number[] {
  const l = parseLayerList('--moe-layers', v, numLayers ?? LIMITS.layers);
  for (let i = 1; i < l.length; i++) if (l[i] <= l[i - 1]) throw new InputError(`--moe-layers: layers must be ascending (MoE ordinal i is the i-th entry)`);
  return l;
}

export function toOptions(f: Flags): ImportOptions {
  const model = f.config ? { ...readModelConfig(f.config), path: f.config } : undefined;
  const scoring = f.scoring;
  if (scoring !== undefined && scoring !== 'softmax' && scoring !== 'sigmoid') throw new InputError(`--scoring: ${JSON.stringify(scoring)} is not softmax or sigmoid`);
  const ro = f.routerOutput;
  if (ro !== 'auto' && ro !== 'logits' && ro !== 'probs') throw new InputError(`--router-output: ${JSON.stringify(ro)} is not auto, logits or probs`);
  const eo = f.expertOrder;
  if (eo !== undefined && eo !== 'ranked' && eo !== 'unranked') throw new InputError(`--expert-order: ${JSON.stringify(eo)} is not ranked or unranked`);
  const numLayers = opt('--num-layers', f.numLayers, 1, LIMITS.layers);
  const base = parseIntOption('--layer-base', f.layerBase, 0, 1) as 0 | 1;
  const P = opt('--pipeline-parallel', f.pipelineParallel, 1, LIMITS.layers);
  const pl = f.pipelineLayers ? countList('--pipeline-layers', f.pipelineLayers) : undefined;
  if (pl && P !== undefined && pl.length !== P) throw new InputError(`--pipeline-layers: ${pl.length} stages listed but --pipeline-parallel is ${P}`);
  const stages = P ?? pl?.length;
  return {
    numExperts: opt('--num-experts', f.numExperts, 1, LIMITS.experts) ?? model?.numExperts,
    topK: opt('--top-k', f.topK, 1, LIMITS.topK) ?? model?.topK,
    numLayers: numLayers ?? model?.numLayers,
    moeLayers: f.moeLayers ? moeLayerList(f.moeLayers, numLayers ?? model?.numLayers) : model?.moeLayers && model.moeLayers.length !== model.numLayers ? model.moeLayers : undefined,
    model,
    scoring: scoring as ImportOptions['scoring'],
    routerOutput: ro,
    normTopk: f.normTopk,
    fullProbs: f.fullProbs === true,
    rules: {
      imageTokenId: opt('--image-token-id', f.imageTokenId, ...ID),
      imageSpecialIds: idSet('--image-special-ids', f.imageSpecialIds),
      specialIds: idSet('--special-ids', f.specialIds),
      placeholderId: opt('--image-placeholder-id', f.imagePlaceholderId, ...ID),
      patchesPerImage: opt('--image-patches', f.imagePatches, 1, LIMITS.positions),
    },
    sideFile: f.modality,
    microBatch: parseIntOption('--micro-batch', f.microBatch, 1, LIMITS.batch),
    layerBase: base,
    pipeline: stages !== undefined && stages > 1 ? { stages, layers: pl, tensorParallel: 1 } : undefined,
    expertOrder: eo as ImportOptions['expertOrder'],
    routerBias: f.routerBias,
    domain: f.domain,
    tokenizer: f.tokenizer,
  };
}

export function register(program: Command): void {
  program
    .command('import')
    .description(`convert another engine's routing dump into a trace (formats: ${FORMAT_NAMES.join(', ')}; see docs/importers.md)`)
    .argument('<format>', FORMAT_NAMES.join(' | '))
    .argument('<input...>', 'input files or folders (e.g. one per rank)')
    .requiredOption('--out <dir>', 'trace folder to write')
    .option('--config <file>', "the model's HF config.json: MoE layers, experts, top-k, router scoring, bias and groups")
    .option('--moe-layers <list>', 'decoder layer of each MoE layer, e.g. 1-23 or 1,3,5 (engines that number MoE layers)')
    .option('--num-experts <n>', 'experts per layer (else from the config or the data)')
    .option('--top-k <k>', 'experts per token when the input has router logits')
    .option('--num-layers <n>', 'decoder layers of the model (meta.json)')
    .option('--scoring <fn>', 'router scoring: softmax | sigmoid')
    .option('--router-output <kind>', 'hf router_logits are: auto | logits | probs', 'auto')
    .option('--norm-topk', 'renormalise gates over the top-k (norm_topk_prob)')
    .option('--no-norm-topk', 'do not renormalise gates over the top-k')
    .option('--router-bias <file>', 'safetensors with the e_score_correction_bias of each layer (DeepSeek-V3, GLM-4.5, MiniMax-M2 logits)')
    .option('--full-probs', 'also store the router distribution over all experts (hf, megatron with logits)')
    .option('--image-token-id <id>', 'token id of one image patch (e.g. <|image_pad|>)')
    .option('--image-special-ids <ids>', 'image begin/end/newline token ids, recorded as special')
    .option('--special-ids <ids>', 'bos/eos/pad/separator token ids, recorded as special')
    .option('--image-placeholder-id <id>', 'one id that stands for a whole image (MoE-LLaVA: -200)')
    .option('--image-patches <n>', 'rows per image placeholder (inferred when omitted)')
    .option('--modality <file>', 'modality side file (JSONL, one line per sample) for inputs without token ids')
    .option('--domain <name>', 'data domain of every sample (samples.domain), when the input does not say')
    .option('--tokenizer <file>', 'tokenizer.json to name token ids (samples.tokens)')
    .option('--micro-batch <b>', 'megatron: sequences per forward pass (tokens are [seq, batch] order)', '1')
    .option('--pipeline-parallel <p>', 'megatron: pipeline stages; layers in the rank files are stage-local')
    .option('--pipeline-layers <list>', 'megatron: decoder layers per stage n0,n1,... (uneven split)')
    .option('--layer-base <0|1>', "producer layers are 0- or 1-based (Megatron's layer_number with --moe-enable-routing-replay: 1)", '0')
    .option('--expert-order <order>', 'ids without gate weights are ranked (slot 0 = top-1) or unranked; overrides what the format says')
    .action(async (format: string, inputs: string[], flags: Flags) => {
      const info = FORMATS[format];
      if (!info) throw new InputError(`import: unknown format ${JSON.stringify(format)} (one of ${FORMAT_NAMES.join(', ')})`);
      guardOutput(flags.out, 'trace', { inputs: [...inputs, ...[flags.config, flags.modality, flags.routerBias, flags.tokenizer].filter((p): p is string => !!p)], force: flags.force });
      const { meta, notes } = await runImport(format === 'csv' ? 'table' : format, info, inputs, flags.out, toOptions(flags));
      for (const n of notes) process.stderr.write(`moescope: note: ${n}\n`);
      const toks = Object.entries(meta.tokens).map(([m, n]) => `${m} ${n}`).join(', ');
      process.stdout.write(
        `imported ${meta.rows} routing rows (${meta.samples} samples; tokens: ${toks}) over ${meta.layers?.length ?? '?'} MoE layers of ${meta.num_layers}, ` +
          `${meta.num_experts} experts, top-${meta.top_k}, scoring ${meta.router_scoring}, gates ${meta.gates}, ids ${meta.expert_order} -> ${flags.out}\n`,
      );
    });
}
