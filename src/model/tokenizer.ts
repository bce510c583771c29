import { InputError } from '../util/errors.js';
import { LIMITS } from '../util/limits.js';

/** tokenizer.json: a word-level vocabulary; a token's id is its index (SPEC §1). */
export interface TokenizerJson {
  type: 'word';
  vocab: string[];
}

export const SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<unk>'] as const;
const PIECE = /[a-z0-9]+|[^\sa-z0-9]/g;

export class WordTokenizer {
  private readonly ids = new Map<string, number>();
  constructor(readonly vocab: readonly string[]) {
    vocab.forEach((w, i) => {
      if (!this.ids.has(w)) this.ids.set(w, i);
    });
  }

  get unkId(): number {
    return this.ids.get('<unk>') ?? 3;
  }

  static split(text: string): string[] {
    return text.toLowerCase().match(PIECE) ?? [];
  }

  encode(text: string): number[] {
    const unk = this.unkId;
    return WordTokenizer.split(text).map((w) => this.ids.get(w) ?? unk);
  }

  id(word: string): number | undefined {
    return this.ids.get(word);
  }

  decode(id: number): string {
    return this.vocab[id] ?? '<unk>';
  }

  toJSON(): TokenizerJson {
    return { type: 'word', vocab: [...this.vocab] };
  }

  static parse(raw: unknown, where: string): WordTokenizer {
    const o = raw as Partial<TokenizerJson> | null;
    if (typeof o !== 'object' || o === null || o.type !== 'word' || !Array.isArray(o.vocab)) {
      throw new InputError(`${where}: expected {"type": "word", "vocab": [...]}`);
    }
    if (o.vocab.length > LIMITS.vocab) throw new InputError(`${where}: ${o.vocab.length} words is above the limit ${LIMITS.vocab}`);
    if (!o.vocab.every((w) => typeof w === 'string')) throw new InputError(`${where}: vocab must be a list of strings`);
    for (let i = 0; i < SPECIAL_TOKENS.length; i++) {
      if (o.vocab[i] !== SPECIAL_TOKENS[i]) throw new InputError(`${where}: vocab[${i}] must be ${SPECIAL_TOKENS[i]}`);
    }
    return new WordTokenizer(o.vocab);
  }
}
