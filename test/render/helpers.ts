import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode } from 'fast-png';
import type { Counts } from '../../src/analysis/types.js';

/** Package root (this file is dist/test/render/helpers.js) and the gitignored folder for pictures to look at. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'render');
export function artifact(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** A small deterministic generator (the tests' data must not depend on Math.random). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Counts n[l][e][g] from a function of (layer index, expert, group index). */
export function makeCounts(layers: number[], experts: number, groups: string[], f: (li: number, e: number, g: number) => number, topK = 1): Counts {
  const G = groups.length;
  const n = new Float64Array(layers.length * experts * G);
  layers.forEach((_, li) => {
    for (let e = 0; e < experts; e++) for (let g = 0; g < G; g++) n[(li * experts + e) * G + g] = f(li, e, g);
  });
  return { mode: 'all', numExperts: experts, topK, layers, modalities: groups, n, tokens: new Float64Array(layers.length * G) };
}

/** Pixels darker than a mid grey in a region of a PNG. */
export function darkPixels(png: Uint8Array, region: (x: number, y: number, w: number, h: number) => boolean = () => true): number {
  const img = decode(png);
  const ch = img.channels;
  let n = 0;
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++) {
      if (!region(x, y, img.width, img.height)) continue;
      const i = (y * img.width + x) * ch;
      const lum = 0.3 * img.data[i] + 0.59 * img.data[i + 1] + 0.11 * img.data[i + 2];
      if (lum < 100) n++;
    }
  return n;
}

/** Root width and height of an SVG. */
export function svgBox(svg: string): { width: number; height: number } {
  const root = /<svg\b[^>]*>/.exec(svg)![0];
  return { width: Number(/\swidth="([\d.]+)"/.exec(root)![1]), height: Number(/\sheight="([\d.]+)"/.exec(root)![1]) };
}
