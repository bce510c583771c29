import { resolve } from 'node:path';
import { writeDirAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import type { TraceMeta } from '../trace/meta.js';
import { importCsv } from './formats/csv.js';
import { importHf } from './formats/hf.js';
import { importMegatron } from './formats/megatron.js';
import { importOlmoe } from './formats/olmoe.js';
import { importVllm } from './formats/vllm.js';
import type { FormatResult, ImportContext, ImportOptions } from './options.js';
import { ModalitySideFile } from './side-file.js';
import { ImportSink } from './sink.js';

export const FORMATS = ['hf', 'vllm', 'megatron', 'olmoe', 'csv'] as const;
export type ImportFormat = (typeof FORMATS)[number];

const PARSERS: Record<ImportFormat, (inputs: string[], ctx: ImportContext) => Promise<FormatResult>> = {
  hf: importHf,
  vllm: importVllm,
  megatron: importMegatron,
  olmoe: importOlmoe,
  csv: importCsv,
};

/** Formats whose records carry no token ids: modality needs the side file (else all text). */
const NO_TOKEN_IDS: ImportFormat[] = ['megatron'];

/**
 * Convert another engine's routing dump into a trace folder (SPEC §2). The folder appears only
 * when the whole input converted; any bad record aborts with an InputError naming it.
 */
export async function runImport(format: string, inputs: string[], out: string, opts: ImportOptions): Promise<{ meta: TraceMeta; notes: string[] }> {
  if (!(FORMATS as readonly string[]).includes(format)) throw new InputError(`import: unknown format ${JSON.stringify(format)} (one of ${FORMATS.join(', ')})`);
  const fmt = format as ImportFormat;
  if (inputs.length === 0) throw new InputError('import: no input files');
  for (const i of inputs) if (resolve(i) === resolve(out)) throw new InputError(`${out}: the output would overwrite an input`);
  if (opts.fullProbs && fmt !== 'hf' && fmt !== 'megatron') {
    throw new InputError(`import ${fmt}: --full-probs needs the router's scores, which ${fmt} dumps do not have (hf, or megatron with the logits sidecar)`);
  }
  return writeDirAtomic(out, async (dir) => {
    const sink = new ImportSink(dir, {
      fullProbs: opts.fullProbs,
      numExperts: opts.numExperts ?? opts.model?.numExperts,
      extraColumns: fmt === 'vllm' ? [{ name: 'phase', type: 'VARCHAR' }] : undefined,
    });
    const side = opts.sideFile ? new ModalitySideFile(opts.sideFile) : null;
    try {
      const res = await PARSERS[fmt](inputs, { opts, sink, side });
      const notes = [...(res.notes ?? [])];
      if (!side && NO_TOKEN_IDS.includes(fmt)) notes.push(`${fmt} records have no token ids: every token is text (give --modality FILE to mark images)`);
      const { meta, inferredExperts } = await sink.finish(
        {
          num_layers: opts.numLayers ?? res.num_layers ?? opts.model?.numLayers,
          router_scoring: res.router_scoring,
          model: res.model ?? (opts.model?.config ? { path: opts.model.path, config: opts.model.config } : null),
          data: { importer: fmt, inputs: inputs.map((p) => resolve(p)), modality: opts.sideFile ? resolve(opts.sideFile) : null },
          gates: res.gates,
          import_notes: notes,
          ...(res.extra ?? {}),
        },
        inputs.join(', '),
      );
      if (side) await side.finish(meta.samples ?? 0);
      if (inferredExperts) notes.push(`number of experts inferred as ${meta.num_experts} (highest id + 1); pass --num-experts or --config if some experts never got a token`);
      return { meta, notes };
    } catch (e) {
      await sink.abort();
      throw e;
    }
  });
}
