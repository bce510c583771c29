import { InputError } from '../util/errors.js';
import { countJsonlSamples, readJsonlSamples } from './jsonl.js';
import type { Sample } from './sample.js';
import { shapesSample } from './shapes.js';
import { type DataSpec, formatDataSpec, parseDataSpec } from './spec.js';

/** Samples behind a `--data` value, streamed in order (Node: JSONL files are read from disk). */
export interface DataSource {
  spec: DataSpec;
  description: string; // for meta.json `data`
  total: number; // number of samples (JSONL: counted up front, for progress)
  samples(): AsyncIterable<Sample>;
}

export async function openDataSource(specText: string | DataSpec): Promise<DataSource> {
  const spec = typeof specText === 'string' ? parseDataSpec(specText) : specText;
  if (spec.kind === 'shapes') {
    return {
      spec,
      description: formatDataSpec(spec),
      total: spec.samples,
      async *samples() {
        for (let i = 0; i < spec.samples; i++) yield shapesSample(spec.seed, i);
      },
    };
  }
  const total = await countJsonlSamples(spec.path);
  // an empty trace must never replace a good one: a file without samples is bad input
  if (total === 0) throw new InputError(`${spec.path}: no samples (the file is empty or has only blank lines)`);
  return { spec, description: formatDataSpec(spec), total, samples: () => readJsonlSamples(spec.path) };
}
