import { InputError } from '../util/errors.js';
import { parseLayerList } from '../util/limits.js';

/** The seed's panels: first, round(2L/3), last (0, 16, 23 for 24 layers). */
export function figureLayers(numLayers: number): number[] {
  return [...new Set([0, Math.round((2 * numLayers) / 3), numLayers - 1])].filter((l) => l >= 0 && l < numLayers);
}

/**
 * Resolve a `--layers` value against the layers the trace has rows for: a list (`0,16,23`, ranges
 * `0-5`), `all`, or nothing (the `fallback`). The seed's default layers are moved to the nearest
 * layer with rows when a trace routes only some layers (e.g. every other layer is MoE).
 */
export function resolveLayers(spec: string | undefined, traceLayers: readonly number[], numLayers: number, fallback: 'all' | 'figure', where: string): number[] {
  if (spec === undefined || spec === '') {
    if (fallback === 'all') return [...traceLayers];
    const near = (l: number) => traceLayers.reduce((best, x) => (Math.abs(x - l) < Math.abs(best - l) ? x : best), traceLayers[0]);
    return [...new Set(figureLayers(numLayers).map(near))];
  }
  if (spec.trim() === 'all') return [...traceLayers];
  // one parser for layer lists (src/util/limits.ts): ranges are bounded before they are expanded
  const out = parseLayerList('--layers', spec);
  const have = new Set(traceLayers);
  for (const l of out) {
    if (!have.has(l)) throw new InputError(`${where}: layer ${l} is not in the trace (it has layers ${describeLayers(traceLayers)})`);
  }
  return out;
}

function describeLayers(ls: readonly number[]): string {
  const contiguous = ls.every((l, i) => i === 0 || l === ls[i - 1] + 1);
  return contiguous && ls.length > 2 ? `${ls[0]}..${ls[ls.length - 1]}` : ls.join(', ');
}
