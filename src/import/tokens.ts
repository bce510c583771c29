import { readFileSync, statSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../util/errors.js';
import { parseJsonObject } from '../util/json.js';
import { LIMITS } from '../util/limits.js';
import { MOD_SPECIAL, MOD_TEXT } from './modality.js';

/**
 * Names token ids with a Hugging Face tokenizer.json (SPEC §2 samples.tokens), through
 * @huggingface/tokenizers (pure JS, reads the local file; nothing is downloaded). A token string is
 * what `tokenizer.convert_ids_to_tokens` gives in Python (e.g. "Ġthe"); image/video/audio
 * positions get an empty string, an id the vocabulary does not have gets "<id>".
 */
export class TokenNamer {
  private readonly cache = new Map<number, string>();
  private constructor(private readonly tok: Tokenizer) {}

  static async load(path: string): Promise<TokenNamer> {
    let text: string;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new InputError(`${path}: not a regular file`);
      if (st.size > LIMITS.jsonBytes) throw new InputError(`${path}: ${st.size} bytes is more than ${LIMITS.jsonBytes}`);
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    const json = parseJsonObject(path, text);
    if (typeof json.model !== 'object' || json.model === null) throw new InputError(`${path}: not a Hugging Face tokenizer.json (no "model")`);
    try {
      return new TokenNamer(new Tokenizer(json, {}));
    } catch (e) {
      throw new InputError(`${path}: not a tokenizer this library reads (${e instanceof Error ? e.message.split('\n')[0] : e})`);
    }
  }

  private one(id: number): string {
    const hit = this.cache.get(id);
    if (hit !== undefined) return hit;
    const s: string = (id >= 0 ? this.tok.id_to_token(id) : undefined) ?? `<${id}>`;
    if (this.cache.size < 1 << 20) this.cache.set(id, s);
    return s;
  }

  /** Token strings per position: text/special by id, other modalities empty. */
  name(ids: Int32Array, modality: Uint8Array): string[] {
    const out = new Array<string>(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const m = modality[i];
      out[i] = m === MOD_TEXT || m === MOD_SPECIAL ? this.one(ids[i]) : '';
    }
    return out;
  }
}
