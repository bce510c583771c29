import { InputError } from '../util/errors.js';
import { MOD_SPECIAL, MOD_TEXT } from './modality.js';

/** Names token ids with a tokenizer.json (SPEC §2 samples.tokens). */
export class TokenNamer {
  private constructor(private readonly vocab: Map<number, string>) {}

  static async load(path: string): Promise<TokenNamer> {
    throw new InputError(`${path}: --tokenizer is not available yet`);
  }

  /** Token strings per position: text/special by id, other modalities as their modality. */
  name(ids: Int32Array, modality: Uint8Array): string[] {
    const out = new Array<string>(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const m = modality[i];
      out[i] = m === MOD_TEXT || m === MOD_SPECIAL ? this.vocab.get(ids[i]) ?? `<${ids[i]}>` : '';
    }
    return out;
  }
}
