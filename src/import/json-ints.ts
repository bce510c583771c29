/**
 * One JSONL line read from its bytes when it is what routing dumps hold: an object whose values
 * are integer lists nested to a regular shape (OLMoE's exp_ids [T][K][L], input ids), plain
 * ASCII strings, integers, true/false/null. The integer lists come out as IntTensors, without a JS array
 * per innermost list: JSON.parse of an OLMoE window made ~18k arrays and took most of the import's
 * reading time. Anything else (escapes, fractions, nested objects, ragged lists, integers past
 * 32 bits, invalid JSON) gives null, and the caller parses the line with JSON.parse, which also
 * names what is wrong; so a line means what JSON.parse says it means, whichever reads it.
 */

/** A JSON list of integers nested to a regular shape (row-major data). */
export class IntTensor {
  constructor(readonly shape: number[], readonly data: Int32Array) {}

  /** The nested JS lists JSON.parse would have made (for the checks that name a wrong shape). */
  toNested(): unknown[] {
    let at = 0;
    const build = (d: number): unknown[] => {
      const out: unknown[] = new Array(this.shape[d]);
      for (let i = 0; i < this.shape[d]; i++) out[i] = d === this.shape.length - 1 ? this.data[at++] : build(d + 1);
      return out;
    };
    return build(0);
  }
}

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a, MINUS = 0x2d;
const LBRACKET = 0x5b, RBRACKET = 0x5d, LBRACE = 0x7b, RBRACE = 0x7d, ZERO = 0x30, NINE = 0x39;
const MAX_DEPTH = 8;

/** Integers of the list being read, grown as needed and reused from line to line. */
let scratch = new Int32Array(1 << 16);

class Reader {
  i: number;
  constructor(readonly b: Uint8Array, from: number, readonly end: number) {
    this.i = from;
  }

  ws(): void {
    const b = this.b;
    let i = this.i;
    while (i < this.end) {
      const c = b[i];
      if (c !== SPACE && c !== TAB && c !== LF && c !== CR) break;
      i++;
    }
    this.i = i;
  }

  /** A string of printable ASCII without escapes; null otherwise (JSON.parse decodes the rest). */
  str(): string | null {
    const b = this.b;
    const start = ++this.i;
    for (let i = start; i < this.end; i++) {
      const c = b[i];
      if (c === QUOTE) {
        this.i = i + 1;
        return latin1(b, start, i);
      }
      if (c === BACKSLASH || c < 0x20 || c >= 0x80) return null;
    }
    return null;
  }

  /**
   * An integer in JSON's grammar within 32 bits; null otherwise (a fraction or exponent after it
   * fails the caller's next token). readInts has the same checks inline: a shared function cost its
   * loop 15-20%.
   */
  int(): number | null {
    const b = this.b;
    let i = this.i;
    const neg = b[i] === MINUS;
    if (neg) i++;
    const first = i;
    let v = 0;
    while (i < this.end) {
      const c = b[i];
      if (c < ZERO || c > NINE) break;
      v = v * 10 + (c - ZERO);
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 10 || (digits > 1 && b[first] === ZERO)) return null;
    if (v > 2147483647) return null; // as the JSON path's checks: |x| <= 2^31 - 1
    this.i = i;
    return neg ? -v : v;
  }

  /** A list of integers nested to a regular shape (readInts); null for anything else. */
  ints(): IntTensor | null {
    const state = new Int32Array(1);
    const t = readInts(this.b, this.i, this.end, state);
    if (t) this.i = state[0];
    return t;
  }
}

/**
 * The list of integers at b[i] nested to a regular shape; null for anything else. The first list
 * to close at each depth sets that axis's length, every other one must match; integers sit at one
 * depth only (an empty list counts as one of that depth). end[0] = the index after it. One function
 * with its position in a local: as methods over a shared position it ran at a fifth of the speed.
 */
function readInts(b: Uint8Array, i: number, end: number, out: Int32Array): IntTensor | null {
  const shape = new Array<number>(MAX_DEPTH).fill(-1);
  const count = new Array<number>(MAX_DEPTH).fill(0); // per open list, entries so far
  let depth = 0; // lists open
  let leafDepth = -1; // depth of the lists that hold integers, once known
  let n = 0;
  let buf = scratch;
  for (;;) {
    // a value starts here
    let c = b[i];
    while (c === SPACE || c === TAB || c === LF || c === CR) c = b[++i];
    let closing = false;
    if (c === LBRACKET) {
      if (depth === MAX_DEPTH || (leafDepth >= 0 && depth >= leafDepth)) return null;
      count[depth++] = 0;
      c = b[++i];
      while (c === SPACE || c === TAB || c === LF || c === CR) c = b[++i];
      if (c !== RBRACKET) continue;
      closing = true; // an empty list
    } else {
      if (depth !== leafDepth) {
        if (depth === 0 || leafDepth >= 0) return null;
        leafDepth = depth;
      }
      // an integer in JSON's grammar within 32 bits (a fraction or exponent fails the next token)
      const neg = c === MINUS;
      if (neg) c = b[++i];
      const first = i;
      let v = 0;
      while (c >= ZERO && c <= NINE) {
        v = v * 10 + (c - ZERO);
        c = b[++i];
      }
      const digits = i - first;
      if (digits === 0 || digits > 10 || (digits > 1 && b[first] === ZERO) || v > 2147483647) return null;
      if (n === buf.length) {
        const grown = new Int32Array(buf.length * 2);
        grown.set(buf);
        scratch = buf = grown;
      }
      buf[n++] = neg ? -v : v;
      count[depth - 1]++;
    }
    // after a value: ',' and the next one, or ']' closing lists
    for (;;) {
      if (!closing) {
        while (c === SPACE || c === TAB || c === LF || c === CR) c = b[++i];
        if (c === COMMA) {
          i++;
          break;
        }
        if (c !== RBRACKET) return null;
      }
      closing = false;
      const len = count[depth - 1];
      if (len === 0) {
        if (leafDepth < 0) leafDepth = depth;
        else if (depth !== leafDepth) return null;
      }
      if (shape[depth - 1] < 0) shape[depth - 1] = len;
      else if (shape[depth - 1] !== len) return null;
      c = b[++i];
      if (--depth === 0) {
        if (i > end) return null;
        const dims = shape.slice(0, leafDepth);
        if (dims.reduce((a, x) => a * x, 1) !== n) return null;
        out[0] = i;
        return new IntTensor(dims, buf.slice(0, n));
      }
      count[depth - 1]++;
    }
  }
}

/** ASCII bytes as a string (short keys and values: a loop beats a decoder call). */
function latin1(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]);
  return s;
}

/**
 * The object on bytes [from, to) of b, its integer lists as IntTensors; null when the line is not
 * of the kind described above (the caller then uses JSON.parse).
 */
export function parseIntObject(b: Uint8Array, from: number, to: number): Record<string, unknown> | null {
  const r = new Reader(b, from, to);
  r.ws();
  if (b[r.i] !== LBRACE) return null;
  r.i++;
  const obj: Record<string, unknown> = {};
  r.ws();
  if (b[r.i] === RBRACE) r.i++;
  else {
    for (;;) {
      r.ws();
      if (b[r.i] !== QUOTE) return null;
      const key = r.str();
      if (key === null || key === '__proto__') return null;
      r.ws();
      if (b[r.i] !== COLON) return null;
      r.i++;
      r.ws();
      const c = b[r.i];
      let v: unknown;
      if (c === LBRACKET) v = r.ints();
      else if (c === QUOTE) v = r.str();
      else if (c === MINUS || (c >= ZERO && c <= NINE)) v = r.int();
      else v = literal(b, r);
      // the readers give null when they cannot read the value: a null value is the literal's
      if (v === undefined || (v === null && c !== 0x6e)) return null;
      obj[key] = v;
      r.ws();
      if (b[r.i] === COMMA) {
        r.i++;
        continue;
      }
      if (b[r.i] !== RBRACE) return null;
      r.i++;
      break;
    }
  }
  r.ws();
  return r.i === to ? obj : null;
}

/** true, false or null at r.i (advancing past it); undefined when there is none. */
function literal(b: Uint8Array, r: Reader): boolean | null | undefined {
  const word = (w: string) => {
    if (r.i + w.length > r.end) return false;
    for (let k = 0; k < w.length; k++) if (b[r.i + k] !== w.charCodeAt(k)) return false;
    r.i += w.length;
    return true;
  };
  if (word('true')) return true;
  if (word('false')) return false;
  return word('null') ? null : undefined;
}
