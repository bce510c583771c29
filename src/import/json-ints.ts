/**
 * One JSONL line read from its bytes when it is what routing dumps hold: objects and lists of
 * plain values, with integer lists nested to a regular shape (OLMoE's exp_ids [T][K][L], token
 * ids) read as IntTensors, without a JS array per innermost list (JSON.parse of an OLMoE window
 * made ~18k arrays and took most of the import's reading time), and, when the caller asks, the
 * long strings of given keys as the bytes they are (vLLM's base64 routed_experts.data: decoding
 * the line to a string and JSON.parse copied and scanned ~700 KB a request). Anything this reader
 * is not sure of (invalid JSON, a key `__proto__`, nesting past MAX_NEST) gives null, and the
 * caller parses the line with JSON.parse, which also names what is wrong; every other value is
 * what JSON.parse gives (escaped and non-ASCII strings are decoded by JSON.parse and the UTF-8
 * decoder themselves, numbers other than short integers by Number(), which JSON.parse's grammar
 * and rounding share). So a line means what JSON.parse says it means, whichever reads it.
 */

/** A JSON list of integers nested to a regular shape (row-major data); never empty. */
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

/**
 * A JSON string without escapes, as its UTF-8 bytes (valid while the line's buffer is: until the
 * next line). Not checked for control characters, which JSON forbids in strings: text() is its
 * value as JSON.parse gives it, or null when it holds one (the line is not JSON).
 */
export class StringBytes {
  constructor(readonly bytes: Uint8Array) {}

  text(): string | null {
    const b = this.bytes;
    for (let i = 0; i < b.length; i++) if (b[i] < 0x20) return null;
    return utf8.decode(b);
  }
}

/** What the caller asks of the reader. */
export interface ByteParseOptions {
  /** strings without escapes under these keys, of at least BYTE_STRING_MIN bytes, come as StringBytes */
  byteStringKeys?: readonly string[];
}

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a, MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e;
const LBRACKET = 0x5b, RBRACKET = 0x5d, LBRACE = 0x7b, RBRACE = 0x7d, ZERO = 0x30, NINE = 0x39;
const LOWER_E = 0x65, UPPER_E = 0x45;
const MAX_DEPTH = 8; // of an IntTensor
const MAX_NEST = 64; // objects and lists in one another
const BYTE_STRING_MIN = 4096;
/** "could not read": the line goes to JSON.parse */
const FAIL: unique symbol = Symbol('fail');
type Value = unknown;

/** Integers of the list being read, grown as needed and reused from line to line. */
let scratch = new Int32Array(1 << 16);
const utf8 = new TextDecoder('utf-8');

class Reader {
  i: number;
  constructor(readonly b: Uint8Array, from: number, readonly end: number, private readonly byteKeys: ReadonlySet<string> | null) {
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

  /** The value at i (past leading whitespace); FAIL when it is not one this reader reads. */
  value(nest: number, key: string | null): Value | typeof FAIL {
    this.ws();
    const c = this.b[this.i];
    if (c === LBRACE) return nest >= MAX_NEST ? FAIL : this.object(nest + 1);
    if (c === LBRACKET) {
      const at = this.i;
      const t = this.ints();
      if (t) return t;
      this.i = at;
      return nest >= MAX_NEST ? FAIL : this.list(nest + 1);
    }
    if (c === QUOTE) return this.str(key !== null && this.byteKeys !== null && this.byteKeys.has(key));
    if (c === MINUS || (c >= ZERO && c <= NINE)) return this.num();
    return this.literal();
  }

  /** An object at i: its keys in order, a repeated key's last value (as JSON.parse). */
  object(nest: number): Record<string, unknown> | typeof FAIL {
    const b = this.b;
    this.i++;
    const obj: Record<string, unknown> = {};
    this.ws();
    if (b[this.i] === RBRACE) {
      this.i++;
      return obj;
    }
    for (;;) {
      this.ws();
      if (b[this.i] !== QUOTE) return FAIL;
      const key = this.str(false);
      // a key __proto__ would set the prototype here, where JSON.parse makes a property
      if (typeof key !== 'string' || key === '__proto__') return FAIL;
      this.ws();
      if (b[this.i] !== COLON) return FAIL;
      this.i++;
      const v = this.value(nest, key);
      if (v === FAIL) return FAIL;
      obj[key] = v;
      this.ws();
      if (b[this.i] === COMMA) {
        this.i++;
        continue;
      }
      if (b[this.i] !== RBRACE) return FAIL;
      this.i++;
      return obj;
    }
  }

  /** A list at i that is not an IntTensor: its values as a JS array. */
  list(nest: number): unknown[] | typeof FAIL {
    const b = this.b;
    this.i++;
    const out: unknown[] = [];
    this.ws();
    if (b[this.i] === RBRACKET) {
      this.i++;
      return out;
    }
    for (;;) {
      const v = this.value(nest, null);
      if (v === FAIL) return FAIL;
      out.push(v);
      this.ws();
      if (b[this.i] === COMMA) {
        this.i++;
        continue;
      }
      if (b[this.i] !== RBRACKET) return FAIL;
      this.i++;
      return out;
    }
  }

  /**
   * A string at i: printable ASCII without escapes read here; escapes decoded by JSON.parse, other
   * UTF-8 by the decoder; a raw control character (invalid JSON) FAILs. When asked, a long one
   * without escapes comes as StringBytes, found by the buffer's own search (a JS loop over the
   * bytes of vLLM's base64 cost more than JSON.parse).
   */
  str(asBytes: boolean): string | StringBytes | typeof FAIL {
    const b = this.b;
    const start = this.i + 1;
    if (asBytes && b instanceof Buffer) {
      const q = b.indexOf(QUOTE, start);
      if (q >= 0 && q < this.end && q - start >= BYTE_STRING_MIN) {
        const bs = b.indexOf(BACKSLASH, start);
        if (bs < 0 || bs > q) {
          this.i = q + 1;
          return new StringBytes(b.subarray(start, q));
        }
      }
    }
    let escaped = false, ascii = true;
    let i = start;
    for (; i < this.end; i++) {
      const c = b[i];
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        escaped = true;
        i++; // the escaped character (a quote or a backslash among them)
      } else if (c < 0x20) return FAIL;
      else if (c >= 0x80) ascii = false;
    }
    if (i >= this.end) return FAIL;
    this.i = i + 1;
    if (escaped) {
      try {
        return JSON.parse(utf8.decode(b.subarray(start - 1, i + 1))) as string;
      } catch {
        return FAIL;
      }
    }
    if (!ascii) return utf8.decode(b.subarray(start, i));
    return latin1(b, start, i);
  }

  /** A number in JSON's grammar: short integers summed here, any other by Number() (JSON.parse's value). */
  num(): number | typeof FAIL {
    const b = this.b;
    const start = this.i;
    let i = start;
    const neg = b[i] === MINUS;
    if (neg) i++;
    const first = i;
    let v = 0;
    while (i < this.end && b[i] >= ZERO && b[i] <= NINE) v = v * 10 + (b[i++] - ZERO);
    const digits = i - first;
    if (digits === 0 || (digits > 1 && b[first] === ZERO)) return FAIL;
    let plain = digits <= 15; // exact in a double
    if (b[i] === DOT) {
      plain = false;
      const f = ++i;
      while (i < this.end && b[i] >= ZERO && b[i] <= NINE) i++;
      if (i === f) return FAIL;
    }
    if (b[i] === LOWER_E || b[i] === UPPER_E) {
      plain = false;
      i++;
      if (b[i] === PLUS || b[i] === MINUS) i++;
      const f = i;
      while (i < this.end && b[i] >= ZERO && b[i] <= NINE) i++;
      if (i === f) return FAIL;
    }
    this.i = i;
    if (plain) return neg ? -v : v;
    return Number(latin1(b, start, i));
  }

  /** true, false or null at i. */
  literal(): boolean | null | typeof FAIL {
    const b = this.b;
    const word = (w: string) => {
      if (this.i + w.length > this.end) return false;
      for (let k = 0; k < w.length; k++) if (b[this.i + k] !== w.charCodeAt(k)) return false;
      this.i += w.length;
      return true;
    };
    if (word('true')) return true;
    if (word('false')) return false;
    return word('null') ? null : FAIL;
  }

  /** A list of integers nested to a regular shape, at least one integer (readInts); null for anything else. */
  ints(): IntTensor | null {
    const state = new Int32Array(1);
    const t = readInts(this.b, this.i, this.end, state);
    if (!t || t.data.length === 0) return null; // a list of no integers is an empty JS list, as JSON.parse's
    this.i = state[0];
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
      // the list's integers, one after another up to the first thing that is not ', integer': each
      // in JSON's grammar within 32 bits (a fraction or exponent fails the next token)
      const n0 = n;
      for (;;) {
        let v: number;
        // one or two digits (expert ids, most token ids' first digits) without a loop: the branch on
        // the number's length was the reader's largest cost; then any more digits, checked
        let d = c - ZERO;
        if (d >>> 0 <= 9) {
          v = d;
          c = b[++i];
          d = c - ZERO;
          if (d >>> 0 <= 9) {
            if (v === 0) return null; // a leading zero
            v = v * 10 + d;
            c = b[++i];
            d = c - ZERO;
            if (d >>> 0 <= 9) {
              let digits = 2;
              do {
                v = v * 10 + d;
                digits++;
                c = b[++i];
                d = c - ZERO;
              } while (d >>> 0 <= 9);
              if (digits > 10 || v > 2147483647) return null;
            }
          }
        } else {
          if (c !== MINUS) return null;
          c = b[++i];
          const first = i;
          v = 0;
          while (c >= ZERO && c <= NINE) {
            v = v * 10 + (c - ZERO);
            c = b[++i];
          }
          const digits = i - first;
          // (-0 is a double, not an int32: such a list is left to the plain reader)
          if (digits === 0 || digits > 10 || (digits > 1 && b[first] === ZERO) || v > 2147483647 || v === 0) return null;
          v = -v;
        }
        if (n === buf.length) {
          const grown = new Int32Array(buf.length * 2);
          grown.set(buf);
          scratch = buf = grown;
        }
        buf[n++] = v;
        // ', ' (the usual separator) at once, other whitespace the long way
        if (c === COMMA) {
          c = b[++i];
          if (c === SPACE) c = b[++i];
          while (c === SPACE || c === TAB || c === LF || c === CR) c = b[++i];
          continue;
        }
        while (c === SPACE || c === TAB || c === LF || c === CR) c = b[++i];
        if (c !== COMMA) break;
        c = b[++i];
        while (c === SPACE || c === TAB || c === LF || c === CR) c = b[++i];
      }
      count[depth - 1] += n - n0;
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
  if (to - from > 64) return utf8.decode(b.subarray(from, to)); // ASCII: the same characters
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]);
  return s;
}

/**
 * The object on bytes [from, to) of b, its integer lists as IntTensors (and the long strings of
 * opts.byteStringKeys as StringBytes); null when this reader cannot say what JSON.parse would
 * (the caller then uses JSON.parse).
 */
export function parseIntObject(b: Uint8Array, from: number, to: number, opts: ByteParseOptions = {}): Record<string, unknown> | null {
  const r = new Reader(b, from, to, opts.byteStringKeys ? new Set(opts.byteStringKeys) : null);
  r.ws();
  if (b[r.i] !== LBRACE) return null;
  const obj = r.object(1);
  if (obj === FAIL) return null;
  r.ws();
  return r.i === to ? obj : null;
}
