import { MODALITIES } from '../analysis/groups.js';
import { InputError } from '../util/errors.js';
import { IntTensor } from './json-ints.js';

/**
 * Which modality each routed token has, and its trace `token` value (SPEC §2): the token id for
 * text/special tokens, the patch index within its image (frame, clip) for image/video/audio tokens.
 */
// codes index MODALITIES (src/analysis/groups.ts), the one list of modalities
export const MOD_SPECIAL = 0;
export const MOD_TEXT = 1;
export const MOD_IMAGE = 2;
export const MOD_VIDEO = 3;
export const MOD_AUDIO = 4;
const MOD_CHARS: Record<string, number> = { s: MOD_SPECIAL, t: MOD_TEXT, i: MOD_IMAGE, v: MOD_VIDEO, a: MOD_AUDIO };

/** How to tell image tokens from text tokens when the input has token ids (CLI flags). */
export interface ModalityRules {
  imageTokenId?: number; // token id that stands for one image patch (Qwen-VL <|image_pad|>, LLaVA <image> expanded)
  imageSpecialIds?: Set<number>; // image begin/end/newline tokens: recorded as `special`
  specialIds?: Set<number>; // bos/eos/pad/separators: recorded as `special`
  placeholderId?: number; // one id in input_ids that the model expands to many patch rows (MoE-LLaVA -200)
  patchesPerImage?: number; // rows per placeholder; inferred from the row count when not given
}

/** Per-token hints some inputs carry beside the ids. */
export interface ModalityHints {
  mmTokenTypeIds?: Int32Array; // HF processors: 0 text, 1 image, 2 video, 3 audio
  imageMask?: Int32Array; // nonzero = image
  modality?: Uint8Array; // already resolved (side file compact string / names)
}

export interface ResolvedTokens {
  modality: Uint8Array; // MOD_* per routed row
  token: Int32Array; // trace `token` column
  ids: Int32Array | null; // token ids after placeholder expansion (-1 for expanded patches)
}

/**
 * Resolve modality and `token` for one sequence of `rows` routed tokens. `ids` may be shorter than
 * `rows` when it holds image placeholders that the model expanded into patch rows.
 */
export function resolveTokens(where: string, rows: number, ids: Int32Array | null, hints: ModalityHints, rules: ModalityRules): ResolvedTokens {
  let newImage: Uint8Array | null = null; // 1 where an expanded placeholder's first patch sits
  if (ids && rules.placeholderId !== undefined && ids.length !== rows) {
    ({ ids, newImage } = expandPlaceholders(where, ids, rows, rules.placeholderId, rules.patchesPerImage));
  }
  if (ids && ids.length !== rows) {
    throw new InputError(`${where}: ${ids.length} token ids but ${rows} routed tokens${rules.placeholderId === undefined ? ' (if images are one placeholder id each, pass --image-placeholder-id)' : ''}`);
  }
  const check = (name: string, a: { length: number } | undefined) => {
    if (a && a.length !== rows) throw new InputError(`${where}: ${name} has ${a.length} values but there are ${rows} routed tokens`);
  };
  check('mm_token_type_ids', hints.mmTokenTypeIds);
  check('image mask', hints.imageMask);
  check('modality', hints.modality);

  const modality = new Uint8Array(rows).fill(MOD_TEXT);
  if (hints.modality) modality.set(hints.modality);
  else if (hints.mmTokenTypeIds) {
    for (let t = 0; t < rows; t++) {
      const v = hints.mmTokenTypeIds[t];
      if (v < 0 || v > 3) throw new InputError(`${where}: mm_token_type_ids[${t}] = ${v}, expected 0 text, 1 image, 2 video or 3 audio`);
      modality[t] = v === 0 ? MOD_TEXT : v === 1 ? MOD_IMAGE : v === 2 ? MOD_VIDEO : MOD_AUDIO;
    }
  } else if (hints.imageMask) {
    for (let t = 0; t < rows; t++) if (hints.imageMask[t]) modality[t] = MOD_IMAGE;
  } else if (ids && rules.imageTokenId !== undefined) {
    for (let t = 0; t < rows; t++) if (ids[t] === rules.imageTokenId) modality[t] = MOD_IMAGE;
  }
  if (newImage) for (let t = 0; t < rows; t++) if (ids![t] === -1 && modality[t] === MOD_TEXT) modality[t] = MOD_IMAGE;
  if (ids) {
    for (let t = 0; t < rows; t++) {
      const id = ids[t];
      if (rules.imageSpecialIds?.has(id) || rules.specialIds?.has(id)) modality[t] = MOD_SPECIAL;
    }
  }

  // token: id for text/special, index within the run of patches for the rest
  const token = new Int32Array(rows);
  let run = 0;
  for (let t = 0; t < rows; t++) {
    const m = modality[t];
    if (m === MOD_TEXT || m === MOD_SPECIAL) {
      token[t] = ids ? ids[t] : -1;
      run = 0;
      continue;
    }
    if (t === 0 || modality[t - 1] !== m || (newImage && newImage[t])) run = 0;
    token[t] = run++;
  }
  return { modality, token, ids };
}

/** MoE-LLaVA style: each placeholder id in `ids` became `patches` rows in the model's sequence. */
function expandPlaceholders(where: string, ids: Int32Array, rows: number, placeholder: number, patches?: number): { ids: Int32Array; newImage: Uint8Array } {
  let n = 0;
  for (const id of ids) if (id === placeholder) n++;
  if (n === 0) return { ids, newImage: new Uint8Array(ids.length) };
  const extra = rows - (ids.length - n);
  if (patches === undefined) {
    if (extra <= 0 || extra % n !== 0) {
      throw new InputError(`${where}: ${n} image placeholder(s) ${placeholder} in ${ids.length} ids cannot expand to ${rows} routed tokens`);
    }
    patches = extra / n;
  } else if (extra !== n * patches) {
    throw new InputError(`${where}: ${n} image placeholder(s) x ${patches} patches + ${ids.length - n} other ids = ${ids.length - n + n * patches}, but there are ${rows} routed tokens`);
  }
  const out = new Int32Array(rows);
  const newImage = new Uint8Array(rows);
  let o = 0;
  for (const id of ids) {
    if (id === placeholder) {
      newImage[o] = 1;
      for (let p = 0; p < patches; p++) out[o++] = -1;
    } else out[o++] = id;
  }
  return { ids: out, newImage };
}

/** A modality given as a compact string ("ttiiis"), a list of names, or a 0/1 image mask. */
export function parseModalityValue(where: string, v: unknown): Uint8Array {
  if (typeof v === 'string') {
    const out = new Uint8Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const c = MOD_CHARS[v[i]];
      if (c === undefined) throw new InputError(`${where}: modality character ${JSON.stringify(v[i])} at ${i} is not one of t(ext) i(mage) s(pecial) v(ideo) a(udio)`);
      out[i] = c;
    }
    return out;
  }
  if (Array.isArray(v)) {
    const out = new Uint8Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      const c = typeof x === 'string' ? (MODALITIES as readonly string[]).indexOf(x) : -1;
      if (c < 0) throw new InputError(`${where}: modality[${i}] = ${JSON.stringify(x)} is not one of ${MODALITIES.join(', ')}`);
      out[i] = c;
    }
    return out;
  }
  throw new InputError(`${where}: modality must be a string like "ttiii" or a list of names`);
}

export function parseIntArray(where: string, name: string, v: unknown): Int32Array {
  if (v instanceof IntTensor) {
    if (v.shape.length === 1) return v.data;
    v = v.toNested(); // the checks below name what is wrong
  }
  if (!Array.isArray(v)) throw new InputError(`${where}: ${name} must be a list of integers`);
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x === 'boolean') out[i] = x ? 1 : 0;
    else if (typeof x === 'number' && Number.isInteger(x) && Math.abs(x) <= 2147483647) out[i] = x;
    else throw new InputError(`${where}: ${name}[${i}] = ${JSON.stringify(x)} is not an integer`);
  }
  return out;
}
