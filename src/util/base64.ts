/** The bytes of a base64 string (the generated *-wasm.ts modules); atob, so the browser runs it too. */
export function bytesOfBase64(base64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
/** Each byte's 6-bit value in the standard alphabet, -1 for any other byte. */
const SEXTET = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) SEXTET[ALPHABET.charCodeAt(i)] = i;
/** Two bytes' 12 bits (first << 8 | second), -1 unless both are in the alphabet: made on first use (128 KB). */
let PAIRS: Int16Array | null = null;

function pairs(): Int16Array {
  if (PAIRS) return PAIRS;
  const t = new Int16Array(65536).fill(-1);
  for (let a = 0; a < 64; a++) for (let b = 0; b < 64; b++) t[(ALPHABET.charCodeAt(a) << 8) | ALPHABET.charCodeAt(b)] = (a << 6) | b;
  return (PAIRS = t);
}

/**
 * The bytes of base64 text given as its bytes, into out from 0; their count, or -1 when the text
 * is not canonical (a byte outside the alphabet, padding other than one or two '=' at the end, a
 * lone last character) or out is too short: the caller then decodes the text as a string, with
 * Node's rules for such input. Hand-written because Node 20 decodes base64 only from strings, and
 * making a string of a request's ~700 KB of text cost more than decoding it (two characters per
 * table lookup: 1 ms a request here).
 */
export function decodeBase64Bytes(src: Uint8Array, out: Uint8Array): number {
  let n = src.length;
  if (n > 0 && src[n - 1] === 61) n -= n > 1 && src[n - 2] === 61 ? 2 : 1; // '='
  if ((src.length - n > 0 && src.length % 4 !== 0) || n % 4 === 1) return -1;
  const whole = n - (n % 4);
  const size = (whole / 4) * 3 + (n % 4 === 0 ? 0 : (n % 4) - 1);
  if (size > out.length) return -1;
  const o = decodeQuads(src, whole, out, pairs());
  if (o < 0) return -1;
  if (n % 4 === 0) return o;
  const a = SEXTET[src[whole]], b = SEXTET[src[whole + 1]], c = n % 4 === 3 ? SEXTET[src[whole + 2]] : 0;
  if ((a | b | c) < 0) return -1;
  const v = (a << 18) | (b << 12) | (c << 6);
  out[o] = v >> 16;
  if (n % 4 === 3) out[o + 1] = v >> 8;
  return o + (n % 4) - 1;
}

/** The first `whole` characters (a multiple of 4) into 3 bytes each; -1 at a byte outside the alphabet. */
function decodeQuads(src: Uint8Array, whole: number, out: Uint8Array, t: Int16Array): number {
  let o = 0;
  for (let i = 0; i < whole; i += 4) {
    const hi = t[(src[i] << 8) | src[i + 1]], lo = t[(src[i + 2] << 8) | src[i + 3]];
    if ((hi | lo) < 0) return -1;
    const v = (hi << 12) | lo;
    out[o] = v >> 16;
    out[o + 1] = v >> 8;
    out[o + 2] = v;
    o += 3;
  }
  return o;
}

/** What Buffer.byteLength(text, 'base64') says of base64 text given as its bytes (Node's rule: padding off, then 3/4). */
export function base64ByteLength(src: Uint8Array): number {
  let n = src.length;
  if (n > 0 && src[n - 1] === 61) n--;
  if (n > 1 && src[n - 1] === 61) n--;
  return (n * 3) >>> 2;
}
