import { InputError } from './errors.js';

/**
 * One place for the bounds that every size, count, id and range from a file or a flag is checked
 * against before memory is allocated (SPEC §6). They sit far above any real model (DeepSeek-V3:
 * 61 layers, 256 experts, 129k vocabulary; Llama-4: 128 experts) so that only hostile or broken
 * input meets them. docs/limits.md lists them for users.
 */
export const LIMITS = {
  layers: 1024,
  experts: 4096,
  layerExperts: 262_144, // layers x experts: each expert is 3 tensors in a checkpoint
  topK: 64,
  vocab: 4_194_304,
  hiddenSize: 65_536,
  intermediateSize: 262_144,
  parameters: 268_435_456, // 1 GiB of F32 weights: far above what trains or runs on a CPU in TypeScript
  heads: 1024,
  positions: 1_048_576,
  imagePixels: 16_777_216, // 4096 x 4096
  imageSide: 16_384,
  channels: 4,
  threads: 64,
  batch: 65_536,
  evalSamples: 65_536,
  trainActivations: 1_073_741_824, // values a training step keeps for backward (4 GiB F32)
  samples: 1_000_000_000,
  steps: 100_000_000,
  figureColumns: 64,
  figurePixels: 20_000,
  seed: 0xffffffff,
  jsonBytes: 64 * 1024 * 1024,
  headerBytes: 100 * 1024 * 1024,
  imageFileBytes: 256 * 1024 * 1024,
  jsonlLineBytes: 64 * 1024 * 1024,
} as const;

/** An integer that came from a file or a flag, checked (never wrapped) to lie in [min, max]. */
export function checkInt(where: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new InputError(`${where}: expected an integer in ${min}..${max}, got ${describe(value)}`);
  }
  if (value < min || value > max) throw new InputError(`${where}: ${value} is outside ${min}..${max}`);
  return value;
}

/** A 64-bit integer read from a file (BigInt) that must fit a safe JS integer in [min, max]. */
export function checkBigInt(where: string, value: bigint, min: number, max: number): number {
  if (value < BigInt(min) || value > BigInt(max)) throw new InputError(`${where}: ${value} is outside ${min}..${max}`);
  return Number(value);
}

/** An integer option (`--steps 100`): digits only, checked against [min, max]. */
export function parseIntOption(flag: string, text: string, min: number, max: number): number {
  const t = text.trim();
  if (!/^-?[0-9]+$/.test(t)) throw new InputError(`${flag}: expected an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
  const n = Number(t) + 0; // -0 -> 0
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InputError(`${flag}: ${t} is outside ${min}..${max}`);
  return n;
}

/** A commander option parser for an integer flag (`.option('--steps <n>', '...', intOption('--steps', 1, LIMITS.steps))`). */
export function intOption(flag: string, min: number, max: number): (text: string) => number {
  return (text: string) => parseIntOption(flag, text, min, max);
}

/** A finite number (weights, logits, gates): NaN and infinities are input errors. */
export function checkFinite(where: string, value: number): number {
  if (!Number.isFinite(value)) throw new InputError(`${where}: ${value} is not a finite number`);
  return value;
}

/**
 * Index of the first non-finite value in an array, or -1. x * 0 is NaN exactly when x is NaN or
 * infinite, so a block is summed without a branch per value (four sums, no chain of dependent
 * adds) and searched only when its sum is not 0: a third of the cost of testing every value, which
 * showed when checking every router logit.
 */
export function firstNonFinite(a: ArrayLike<number>): number {
  const BLOCK = 1024;
  for (let b = 0; b < a.length; b += BLOCK) {
    const end = Math.min(a.length, b + BLOCK);
    let z0 = 0, z1 = 0, z2 = 0, z3 = 0, i = b;
    for (; i + 3 < end; i += 4) {
      z0 += a[i] * 0;
      z1 += a[i + 1] * 0;
      z2 += a[i + 2] * 0;
      z3 += a[i + 3] * 0;
    }
    for (; i < end; i++) z0 += a[i] * 0;
    if (z0 + z1 + z2 + z3 !== 0) for (let j = b; j < end; j++) if (!Number.isFinite(a[j])) return j;
  }
  return -1;
}

/**
 * A layer list `0,16,23` or ranges `5-9`, ascending-or-not, each layer in 0..max-1. The range is
 * checked before it is expanded, so `0-1000000000` is an error, not an allocation.
 */
export function parseLayerList(flag: string, text: string, max: number = LIMITS.layers): number[] {
  const out: number[] = [];
  for (const part of text.split(',').map((x) => x.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new InputError(`${flag}: ${JSON.stringify(part)} is not a layer index or a range a-b`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || a >= max || b >= max) {
      throw new InputError(`${flag}: ${part} is outside 0..${max - 1}`);
    }
    if (b < a) throw new InputError(`${flag}: range ${part} ends before it starts`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  return [...new Set(out)];
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}
