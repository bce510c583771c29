import type { Command } from 'commander';
import { InputError } from '../../util/errors.js';
import { guardOutput } from '../../util/output-guard.js';
import { FORMATS, runImport } from '../../import/run.js';
import { parseLayerList, readModelConfig } from '../../import/layers.js';
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
}

function int(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError(`${flag}: ${JSON.stringify(v)} is not an integer >= ${min}`);
  return n;
}

function idSet(flag: string, v: string | undefined): Set<number> | undefined {
  if (v === undefined) return undefined;
  const ids = v.split(',').map((s) => s.trim()).filter(Boolean).map((s) => int(flag, s, -(2 ** 31))!);
  return new Set(ids);
}

export function toOptions(f: Flags): ImportOptions {
  const model = f.config ? { ...readModelConfig(f.config), path: f.config } : undefined;
  const scoring = f.scoring;
  if (scoring !== undefined && scoring !== 'softmax' && scoring !== 'sigmoid') throw new InputError(`--scoring: ${JSON.stringify(scoring)} is not softmax or sigmoid`);
  const ro = f.routerOutput;
  if (ro !== 'auto' && ro !== 'logits' && ro !== 'probs') throw new InputError(`--router-output: ${JSON.stringify(ro)} is not auto, logits or probs`);
  return {
    numExperts: int('--num-experts', f.numExperts, 1) ?? model?.numExperts,
    topK: int('--top-k', f.topK, 1) ?? model?.topK,
    numLayers: int('--num-layers', f.numLayers, 1) ?? model?.numLayers,
    moeLayers: f.moeLayers ? parseLayerList(f.moeLayers) : model?.moeLayers && model.moeLayers.length !== model.numLayers ? model.moeLayers : undefined,
    model,
    scoring: scoring as ImportOptions['scoring'],
    routerOutput: ro,
    normTopk: f.normTopk,
    fullProbs: f.fullProbs === true,
    rules: {
      imageTokenId: int('--image-token-id', f.imageTokenId, -(2 ** 31)),
      imageSpecialIds: idSet('--image-special-ids', f.imageSpecialIds),
      specialIds: idSet('--special-ids', f.specialIds),
      placeholderId: int('--image-placeholder-id', f.imagePlaceholderId, -(2 ** 31)),
      patchesPerImage: int('--image-patches', f.imagePatches, 1),
    },
    sideFile: f.modality,
    microBatch: int('--micro-batch', f.microBatch, 1)!,
    includeMtp: false,
  };
}

export function register(program: Command): void {
  program
    .command('import')
    .description(`convert another engine's routing dump into a trace (formats: ${FORMATS.join(', ')}; see docs/importers.md)`)
    .argument('<format>', FORMATS.join(' | '))
    .argument('<input...>', 'input files or folders')
    .requiredOption('--out <dir>', 'trace folder to write')
    .option('--config <file>', "the model's HF config.json: MoE layers, experts, top-k, scoring")
    .option('--moe-layers <list>', 'decoder layer of each MoE layer, e.g. 1-23 or 1,3,5 (engines that number MoE layers)')
    .option('--num-experts <n>', 'experts per layer (else from the config or the data)')
    .option('--top-k <k>', 'experts per token when the input has router logits')
    .option('--num-layers <n>', 'decoder layers of the model (meta.json)')
    .option('--scoring <fn>', 'router scoring: softmax | sigmoid')
    .option('--router-output <kind>', 'hf router_logits are: auto | logits | probs', 'auto')
    .option('--norm-topk', 'renormalise gates over the top-k (norm_topk_prob)')
    .option('--no-norm-topk', 'do not renormalise gates over the top-k')
    .option('--full-probs', 'also store the router distribution over all experts (hf, megatron with logits)')
    .option('--image-token-id <id>', 'token id of one image patch (e.g. <|image_pad|>)')
    .option('--image-special-ids <ids>', 'image begin/end/newline token ids, recorded as special')
    .option('--special-ids <ids>', 'bos/eos/pad/separator token ids, recorded as special')
    .option('--image-placeholder-id <id>', 'one id that stands for a whole image (MoE-LLaVA: -200)')
    .option('--image-patches <n>', 'rows per image placeholder (inferred when omitted)')
    .option('--modality <file>', 'modality side file (JSONL, one line per sample) for inputs without token ids')
    .option('--micro-batch <b>', 'megatron: sequences per forward pass (tokens are [seq, batch] order)', '1')
    .action(async (format: string, inputs: string[], flags: Flags) => {
      guardOutput(flags.out, 'trace', { inputs: [...inputs, ...[flags.config, flags.modality].filter((p): p is string => !!p)], force: flags.force });
      const { meta, notes } = await runImport(format, inputs, flags.out, toOptions(flags));
      for (const n of notes) process.stderr.write(`moescope: note: ${n}\n`);
      const toks = Object.entries(meta.tokens).map(([m, n]) => `${m} ${n}`).join(', ');
      process.stdout.write(
        `imported ${meta.rows} routing rows (${meta.samples} samples; tokens: ${toks}) over ${meta.layers?.length ?? '?'} MoE layers of ${meta.num_layers}, ` +
          `${meta.num_experts} experts, top-${meta.top_k}, scoring ${meta.router_scoring} -> ${flags.out}\n`,
      );
    });
}
