import { InputError } from '../util/errors.js';
import { readLines } from './lines.js';
import { parseIntArray, parseModalityValue, type ModalityHints } from './modality.js';

export interface SideEntry {
  where: string;
  ids: Int32Array | null;
  hints: ModalityHints;
  domain: string | null; // the sample's data domain (samples.domain)
}

/**
 * The modality side file for formats without token ids (megatron, csv): JSONL, one line per
 * sample in input order (or with a "sample" key). A line is a compact string ("ttiiis": t text,
 * i image, s special, v video, a audio), a list of names, or an object with any of `modality`,
 * `image_mask`, `mm_token_type_ids` and `input_ids` (then the id rules --image-token-id etc. apply),
 * and `domain` (the sample's data domain).
 * Read forward as samples are asked for, so memory holds only the lines not yet used.
 */
export class ModalitySideFile {
  private readonly it: AsyncGenerator<{ n: number; where: string; obj: Record<string, unknown> }>;
  private readonly cache = new Map<number, SideEntry>();
  private next = 0;
  private done = false;

  constructor(readonly path: string) {
    this.it = readWrapped(path);
  }

  async get(sample: number, whereUsed: string): Promise<SideEntry> {
    while (!this.cache.has(sample) && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const { where, obj } = r.value;
      const s = obj.sample === undefined ? this.next : obj.sample;
      if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) throw new InputError(`${where}: "sample" must be a non-negative integer`);
      this.next = s + 1;
      if (this.cache.has(s)) throw new InputError(`${where}: sample ${s} appears twice`);
      this.cache.set(s, parseEntry(where, obj));
    }
    const e = this.cache.get(sample);
    if (!e) throw new InputError(`${this.path}: no modality line for sample ${sample} (${whereUsed})`);
    this.cache.delete(sample);
    return e;
  }

  /** After the last sample: lines left over mean the side file belongs to other inputs. */
  async finish(samples: number): Promise<void> {
    if (this.cache.size > 0) throw new InputError(`${this.path}: has lines for ${this.cache.size} sample(s) the input does not have (the input has ${samples})`);
    const r = await this.it.next();
    if (!r.done) throw new InputError(`${r.value.where}: more modality lines than the input's ${samples} samples`);
  }
}

async function* readWrapped(path: string): AsyncGenerator<{ n: number; where: string; obj: Record<string, unknown> }> {
  // Lines may be bare strings or lists; wrap them as objects for one parser.
  for await (const { n, text } of readLines(path)) {
    if (text.trim() === '') continue;
    const where = `${path}:${n}`;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new InputError(`${where}: not valid JSON (${e instanceof Error ? e.message : e})`);
    }
    if (typeof v === 'string' || Array.isArray(v)) v = { modality: v };
    if (typeof v !== 'object' || v === null) throw new InputError(`${where}: expected a modality string, a list of names or an object`);
    yield { n, where, obj: v as Record<string, unknown> };
  }
}

function parseEntry(where: string, o: Record<string, unknown>): SideEntry {
  const hints: ModalityHints = {};
  if (o.modality !== undefined) hints.modality = parseModalityValue(where, o.modality);
  if (o.image_mask !== undefined) hints.imageMask = parseIntArray(where, 'image_mask', o.image_mask);
  if (o.mm_token_type_ids !== undefined) hints.mmTokenTypeIds = parseIntArray(where, 'mm_token_type_ids', o.mm_token_type_ids);
  const ids = o.input_ids !== undefined ? parseIntArray(where, 'input_ids', o.input_ids) : null;
  if (o.domain !== undefined && typeof o.domain !== 'string') throw new InputError(`${where}: domain must be a string`);
  const domain = typeof o.domain === 'string' ? o.domain : null;
  if (!ids && !hints.modality && !hints.imageMask && !hints.mmTokenTypeIds && domain === null) {
    throw new InputError(`${where}: needs one of modality, image_mask, mm_token_type_ids, input_ids, domain`);
  }
  return { where, ids, hints, domain };
}
