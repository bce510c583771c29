import { InputError } from '../util/errors.js';


/** Names <-> small integer codes, so that string columns travel as one byte per row. */
export class Dictionary {
  readonly names: string[] = [];
  private readonly codes = new Map<string, number>();
  constructor(initial: readonly string[] = []) {
    for (const n of initial) this.code(n);
  }
  private lastName: string | null = null;
  private lastCode = -1;
  code(name: string): number {
    if (name === this.lastName) return this.lastCode; // values come in runs (a request's phase)
    let c = this.codes.get(name);
    if (c === undefined) {
      c = this.names.length;
      if (c > 65535) throw new InputError(`trace: more than 65536 distinct values in a text column`);
      this.names.push(name);
      this.codes.set(name, c);
    }
    this.lastName = name;
    this.lastCode = c;
    return c;
  }
}

