import { InputError } from '../util/errors.js';
import { SHAPES_DEFAULT_SAMPLES, SHAPES_EVAL_SEED } from './shapes.js';

/** A parsed `--data` value: the built-in shapes world, or a JSONL file. */
export type DataSpec =
  | { kind: 'shapes'; samples: number; seed: number }
  | { kind: 'jsonl'; path: string };

const COUNT = /^[0-9]+$/;

/**
 * `shapes`, `shapes:N`, `shapes:N:SEED` (defaults: SHAPES_DEFAULT_SAMPLES samples, the eval seed
 * SHAPES_EVAL_SEED), or a path ending in `.jsonl`.
 */
export function parseDataSpec(spec: string): DataSpec {
  if (spec === 'shapes' || spec.startsWith('shapes:')) {
    const [, n, seed, ...rest] = spec.split(':');
    const bad = (what: string) => new InputError(`--data ${spec}: ${what} (expected shapes, shapes:N or shapes:N:SEED)`);
    if (rest.length) throw bad('too many fields');
    if (n !== undefined && (!COUNT.test(n) || Number(n) < 1 || Number(n) > 1e9)) throw bad(`N must be a positive integer, got "${n}"`);
    if (seed !== undefined && (!COUNT.test(seed) || Number(seed) > 0xffffffff)) throw bad(`SEED must be an integer in 0..4294967295, got "${seed}"`);
    return {
      kind: 'shapes',
      samples: n === undefined ? SHAPES_DEFAULT_SAMPLES : Number(n),
      seed: seed === undefined ? SHAPES_EVAL_SEED : Number(seed),
    };
  }
  if (/\.jsonl$/i.test(spec)) return { kind: 'jsonl', path: spec };
  throw new InputError(`--data ${spec}: unknown data spec (expected shapes, shapes:N, shapes:N:SEED or a .jsonl file)`);
}

/** The canonical text of a spec, for meta.json. */
export function formatDataSpec(d: DataSpec): string {
  return d.kind === 'shapes' ? `shapes:${d.samples}:${d.seed}` : d.path;
}
