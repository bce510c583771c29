import fc from 'fast-check';

/**
 * Mutations of valid inputs, as fast-check arbitraries: byte-level edits for binary and text
 * files, value-level edits for JSON. Positions are drawn mostly near the start of the file,
 * where headers (safetensors length + JSON, PNG IHDR, Parquet footer pointers at the end) live.
 */
export type ByteEdit =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: number[] }
  | { op: 'remove'; at: number; len: number }
  | { op: 'repeat'; at: number; len: number; times: number };

/** A position: a fraction of the file (anywhere), near its start, or near its end. */
const position = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }).map((n) => ({ from: 'start' as const, n })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 63 }).map((n) => ({ from: 'end' as const, n })) },
  { weight: 3, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ from: 'any' as const, f })) },
);
type Pos = { from: 'start'; n: number } | { from: 'end'; n: number } | { from: 'any'; f: number };

function at(p: Pos, len: number): number {
  if (len === 0) return 0;
  const i = p.from === 'start' ? p.n : p.from === 'end' ? len - 1 - p.n : Math.floor(p.f * len);
  return Math.max(0, Math.min(len - 1, i));
}

const interestingByte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 0xff, 0x7f, 0x80, 0x22, 0x2c, 0x7b, 0x7d, 0x5b, 0x5d, 0x0a, 0x30, 0x39, 0x2d));

const edit = fc.oneof(
  { weight: 4, arbitrary: fc.record({ p: position, bit: fc.integer({ min: 0, max: 7 }) }).map(({ p, bit }) => ({ kind: 'flip' as const, p, bit })) },
  { weight: 3, arbitrary: fc.record({ p: position, value: interestingByte }).map(({ p, value }) => ({ kind: 'set' as const, p, value })) },
  { weight: 1, arbitrary: position.map((p) => ({ kind: 'truncate' as const, p })) },
  { weight: 1, arbitrary: fc.record({ p: position, bytes: fc.array(interestingByte, { minLength: 1, maxLength: 16 }) }).map(({ p, bytes }) => ({ kind: 'insert' as const, p, bytes })) },
  { weight: 1, arbitrary: fc.record({ p: position, len: fc.integer({ min: 1, max: 64 }) }).map(({ p, len }) => ({ kind: 'remove' as const, p, len })) },
  { weight: 1, arbitrary: fc.record({ p: position, len: fc.integer({ min: 1, max: 32 }), times: fc.integer({ min: 2, max: 64 }) }).map(({ p, len, times }) => ({ kind: 'repeat' as const, p, len, times })) },
);
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

function apply(bytes: Uint8Array, e: Edit): Uint8Array {
  const i = at(e.p, bytes.length);
  switch (e.kind) {
    case 'flip': {
      const out = Uint8Array.from(bytes);
      if (out.length) out[i] ^= 1 << e.bit;
      return out;
    }
    case 'set': {
      const out = Uint8Array.from(bytes);
      if (out.length) out[i] = e.value;
      return out;
    }
    case 'truncate':
      return bytes.slice(0, i);
    case 'insert':
      return Uint8Array.from([...bytes.subarray(0, i), ...e.bytes, ...bytes.subarray(i)]);
    case 'remove':
      return Uint8Array.from([...bytes.subarray(0, i), ...bytes.subarray(i + e.len)]);
    case 'repeat': {
      const part = bytes.subarray(i, i + e.len);
      const rep: number[] = [];
      for (let k = 0; k < e.times; k++) rep.push(...part);
      return Uint8Array.from([...bytes.subarray(0, i), ...rep, ...bytes.subarray(i)]);
    }
  }
}

/** 1-4 byte edits of `base`. */
export function mutateBytes(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => edits.reduce(apply, base));
}

/** Values that break readers: huge, negative, fractional, wrong types, 64-bit, empty. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(0, -1, 1, 2, 0.5, -0.5, 1e9, -1e9, 1e300, 2 ** 31, 2 ** 32 + 3, 2 ** 53, 2 ** 64, 65536, 1_000_000, 100_000, 1e-300),
  fc.constantFrom('x', '', '1', '1e9', '-1', 'NaN', 'Infinity', '../../etc/passwd', '/dev/zero', '*'),
  fc.constantFrom(true, false, null),
  fc.constantFrom([], {}, [1e9], [null], { a: 1 }, [[]]),
  fc.integer(),
  fc.string({ maxLength: 8 }),
);

type Json = unknown;

/** The paths (key lists) of every value in a JSON document, up to a few levels deep. */
function paths(v: Json, prefix: (string | number)[] = [], out: (string | number)[][] = [], depth = 0): (string | number)[][] {
  out.push(prefix);
  if (depth > 4 || out.length > 2000) return out;
  if (Array.isArray(v)) v.slice(0, 50).forEach((x, i) => paths(x, [...prefix, i], out, depth + 1));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out, depth + 1);
  return out;
}

function setPath(v: Json, path: (string | number)[], value: unknown, del: boolean): Json {
  if (path.length === 0) return value;
  const [k, ...rest] = path;
  const into = v && typeof v === 'object' ? v : typeof k === 'number' ? [] : {}; // an earlier edit may have replaced it
  if (Array.isArray(into) && typeof k !== 'number') return into; // no named keys on arrays
  const copy: any = Array.isArray(into) ? Array.from({ length: into.length }, (_, i) => into[i]) : Object.assign({}, into);
  if (rest.length === 0 && del) {
    if (Array.isArray(copy)) copy.splice(k as number, 1);
    else delete copy[k];
  } else copy[k] = setPath(copy[k], rest, value, del);
  return copy;
}

/** Replace, delete or add 1-3 values of a JSON document; sometimes also a byte edit of the text. */
export function mutateJson(base: Json, opts: { pretty?: boolean } = {}): fc.Arbitrary<Uint8Array> {
  const ps = paths(base);
  const one = fc.record({ path: fc.constantFrom(...ps), value: hostileValue, del: fc.integer({ min: 0, max: 5 }).map((n) => n === 0), addKey: fc.oneof({ weight: 7, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('extra', 'files', 'layers', 'type') }) });
  // a nudge keeps a number near its valid value (x+1, 2x, ...), so that mutations also reach past the first check
  const nudge = fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('+1', '-1', '*2', '/2', '*1000', 'neg', 'frac') });
  const nudged = (v: unknown, how: string): unknown => {
    if (typeof v !== 'number') return v;
    return { '+1': v + 1, '-1': v - 1, '*2': v * 2, '/2': Math.floor(v / 2), '*1000': v * 1000, neg: -v, frac: v + 0.5 }[how];
  };
  const doc = fc.array(fc.tuple(one, nudge), { minLength: 1, maxLength: 3 }).map((ms) =>
    ms.reduce((d, [m, n]) => {
      if (m.addKey) return setPath(d, [...m.path.slice(0, -1), m.addKey], m.value, false);
      const old = m.path.reduce((x: any, k) => (x && typeof x === 'object' ? x[k] : undefined), d as any);
      if (n !== null && typeof old === 'number') return setPath(d, m.path, nudged(old, n), false);
      return setPath(d, m.path, m.value, m.del && m.path.length > 0);
    }, base as Json),
  );
  const text = doc.map((d) => new TextEncoder().encode(JSON.stringify(d, null, opts.pretty ? 2 : undefined) ?? 'null'));
  return fc.oneof({ weight: 4, arbitrary: text }, { weight: 1, arbitrary: text.chain((t) => mutateBytes(t)) });
}

/** Mutate one line of a JSONL file (as JSON), or its bytes. */
export function mutateJsonl(text: string): fc.Arbitrary<Uint8Array> {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const parsed = lines.map((l) => JSON.parse(l));
  const byLine = fc.integer({ min: 0, max: lines.length - 1 }).chain((i) =>
    mutateJson(parsed[i]).map((m) => {
      const out = [...lines];
      out[i] = new TextDecoder().decode(m);
      return new TextEncoder().encode(out.join('\n') + '\n');
    }),
  );
  return fc.oneof({ weight: 3, arbitrary: byLine }, { weight: 1, arbitrary: mutateBytes(new TextEncoder().encode(text)) });
}
