import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../util/errors.js';
import { LIMITS } from '../util/limits.js';
import type { SampleExtras } from './sink.js';

/**
 * What python/moescope_capture.py records per sample besides routing (manifest version 2): the
 * images as PNG files, each input_ids position's token string, and each image's grid of language-
 * model tokens [t, h, w] (Qwen2/3-VL `image_grid_thw` after the 2x2 merge; 24x24 for LLaVA), so
 * views can draw words and tint patches in place. All optional; checked before use.
 */
export interface HfBatchExtras {
  images?: unknown;
  tokens?: unknown;
  image_grids?: unknown;
}


const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const MAX_IMAGE_BYTES = 64 * 1024 * 1024;

/**
 * Sample `s` of one manifest batch entry. `keep` are the routed positions kept (padding dropped)
 * among `S` input_ids positions; tokens must cover exactly those positions.
 */
export function hfSampleExtras(where: string, dir: string, entry: HfBatchExtras, s: number, S: number, keep: number[] | null): SampleExtras {
  const out: SampleExtras = { images: [], tokens: null, imageGrids: null };
  const item = (v: unknown, what: string): unknown => {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw new InputError(`${where}: "${what}" must be a list per sample`);
    return v[s];
  };
  const imgs = item(entry.images, 'images');
  if (imgs !== undefined) {
    if (!Array.isArray(imgs) || imgs.some((p) => typeof p !== 'string')) throw new InputError(`${where}: "images" of sample ${s} must be a list of PNG file names`);
    for (const name of imgs as string[]) {
      if (name.includes('/') || name.includes('\\') || name.startsWith('.')) throw new InputError(`${where}: image ${JSON.stringify(name)} must be a file name in the capture folder`);
      const p = join(dir, name);
      let size: number;
      try {
        size = statSync(p).size;
      } catch {
        throw new InputError(`${p}: image listed in the manifest is missing`);
      }
      if (size > MAX_IMAGE_BYTES) throw new InputError(`${p}: image of ${size} bytes exceeds ${MAX_IMAGE_BYTES}`);
      const b = new Uint8Array(readFileSync(p));
      if (b.length < 8 || PNG_MAGIC.some((m, i) => b[i] !== m)) throw new InputError(`${p}: not a PNG file`);
      out.images.push(b);
    }
  }
  const toks = item(entry.tokens, 'tokens');
  if (toks !== undefined) {
    if (!Array.isArray(toks) || toks.some((t) => typeof t !== 'string')) throw new InputError(`${where}: "tokens" of sample ${s} must be a list of strings`);
    if (toks.length !== S) throw new InputError(`${where}: "tokens" of sample ${s} has ${toks.length} strings but input_ids has ${S} positions`);
    out.tokens = keep ? keep.map((t) => toks[t] as string) : (toks as string[]);
  }
  const grids = item(entry.image_grids, 'image_grids');
  if (grids !== undefined) {
    const ok = Array.isArray(grids) && grids.every((g) => Array.isArray(g) && g.length === 3 && g.every((x) => Number.isInteger(x) && x >= 1 && x <= LIMITS.positions));
    if (!ok) throw new InputError(`${where}: "image_grids" of sample ${s} must be a list of [t, h, w] positive integers`);
    out.imageGrids = grids as number[][];
    if (out.images.length > 0 && out.images.length !== out.imageGrids.length) {
      throw new InputError(`${where}: sample ${s} has ${out.images.length} images but ${out.imageGrids.length} image grids`);
    }
  }
  return out;
}

/** The helper's record of what it read per layer, for meta.json. */
export function hfManifestMeta(m: { family?: unknown; recorded?: unknown; gates?: unknown } | null): Record<string, unknown> {
  if (!m) return {};
  const out: Record<string, unknown> = {};
  if (typeof m.family === 'string') out.family = m.family;
  if (m.recorded !== undefined) out.recorded = m.recorded;
  return out;
}
