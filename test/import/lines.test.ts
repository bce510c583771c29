import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { readLines } from '../../src/import/lines.js';
import { IntTensor, StringBytes, parseIntObject } from '../../src/import/json-ints.js';

function lcg(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
}

/** What readline makes of the whole file decoded at once: \n, \r\n or a lone \r end a line. */
function reference(path: string): string[] {
  const lines = readFileSync(path, 'utf8').split(/\r\n|\n|\r/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

test('readLines: byte splitting over 1 MB reads matches splitting the decoded file (CR, CRLF, lone CR, UTF-8, bad UTF-8)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-lines-'));
  try {
    const rnd = lcg(7);
    const pieces = [Buffer.from('a'), Buffer.from('{"x": 1}'), Buffer.from('é€😀'), Buffer.from([0xe2, 0x82]), Buffer.from([0xff]), Buffer.from(' ')];
    const ends = [Buffer.from('\n'), Buffer.from('\r\n'), Buffer.from('\r')];
    for (const [name, onlyLf, tail] of [['lf', true, '\n'], ['mixed', false, '\r'], ['open', false, 'x']] as const) {
      const parts: Buffer[] = [];
      let size = 0;
      while (size < 3.3e6) {
        // lines of a few bytes up to beyond the 1 MB chunk, so ends and characters straddle reads
        const long = rnd() < 0.01;
        const n = long ? Math.floor(rnd() * 1.5e6) : Math.floor(rnd() * 40);
        const line = long ? Buffer.alloc(n, 'b') : Buffer.concat(Array.from({ length: n }, () => pieces[Math.floor(rnd() * pieces.length)]));
        const end = onlyLf ? ends[0] : ends[Math.floor(rnd() * ends.length)];
        parts.push(line, end);
        size += line.length + end.length;
      }
      parts.push(Buffer.from(tail));
      const f = join(dir, `${name}.txt`);
      writeFileSync(f, Buffer.concat(parts));
      const got: string[] = [];
      for await (const { n, text } of readLines(f)) {
        assert.equal(n, got.length + 1);
        got.push(text);
      }
      const want = reference(f);
      assert.equal(got.length, want.length, name);
      for (let i = 0; i < want.length; i++) assert.equal(got[i], want[i], `${name} line ${i + 1}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** What the line means to JSON.parse, with parseIntObject's IntTensors turned back into lists and its StringBytes into strings. */
function plain(v: unknown): unknown {
  if (v instanceof IntTensor) return v.toNested();
  if (v instanceof StringBytes) return v.text();
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

test('parseIntObject: a line it reads means what JSON.parse says; routing dumps take the fast path', () => {
  const int32 = fc.integer({ min: -2147483647, max: 2147483647 });
  // regular nested lists of integers, as dumps write them (numpy .tolist())
  const tensor = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 3, maxLength: 3 })).chain(([rank, dims]) => {
    const build = (d: number): fc.Arbitrary<unknown> => (d === rank ? int32 : fc.array(build(d + 1), { minLength: dims[d], maxLength: dims[d] }));
    return build(0);
  });
  const asciiKey = fc.stringMatching(/^[a-z_]{1,12}$/).filter((k) => k !== '__proto__'); // which is left to JSON.parse
  const common = fc.dictionary(asciiKey, fc.oneof(tensor, fc.stringMatching(/^[ -!#-[\]-~]{0,20}$/), int32, fc.constantFrom(true, false, null)));
  // spacing JSON allows between tokens
  const spaced = (o: unknown) => fc.constantFrom(0, 1, 2).map((style) => (style === 0 ? JSON.stringify(o) : style === 1 ? JSON.stringify(o, null, 1) : JSON.stringify(o).replace(/,/g, ', ').replace(/:/g, ' : ')));
  fc.assert(
    fc.property(common.chain(spaced), (line) => {
      const b = Buffer.from(line.replace(/\n/g, ' '));
      const got = parseIntObject(b, 0, b.length);
      assert.ok(got !== null, `not read: ${line.slice(0, 200)}`);
      assert.deepEqual(plain(got), JSON.parse(b.toString()));
    }),
    { numRuns: 300 },
  );
  // anything JSON: where parseIntObject reads the line, it agrees with JSON.parse; where JSON.parse refuses it, it gives null
  const anything = fc.oneof(fc.json(), common.map((o) => JSON.stringify(o)), tensor.map((t) => JSON.stringify({ x: t })));
  const mangle = fc.tuple(anything, fc.nat(), fc.constantFrom('', ']', '[', ',', '-', '0', '.5', 'e3', '"', '\\', '}', ' ', '01', '2147483648', '1e2', 'nul', '[]', '[[1],[1,2]]'));
  fc.assert(
    fc.property(mangle, ([text, at, insert]) => {
      const k = text.length === 0 ? 0 : at % (text.length + 1);
      for (const line of [text, text.slice(0, k) + insert + text.slice(k)]) {
        const b = Buffer.from(line);
        let want: unknown;
        try {
          want = JSON.parse(line);
        } catch {
          want = undefined;
        }
        const got = parseIntObject(b, 0, b.length);
        if (got === null) continue;
        assert.ok(want !== undefined && typeof want === 'object' && want !== null && !Array.isArray(want), `read what JSON.parse refuses: ${line.slice(0, 200)}`);
        assert.deepEqual(plain(got), want, line.slice(0, 200));
      }
    }),
    { numRuns: 3000 },
  );
  // any JSON object (nested objects and lists, fractions, escapes, any Unicode) is read, and means what JSON.parse says
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })), fc.boolean(), (o, pretty) => {
      const line = pretty ? JSON.stringify(o, null, 1).replace(/\n/g, ' ') : JSON.stringify(o);
      const b = Buffer.from(line);
      const got = parseIntObject(b, 0, b.length, { byteStringKeys: ['data'] });
      if (line.includes('"__proto__"')) return; // a key __proto__ at any depth is left to JSON.parse
      assert.ok(got !== null, `not read: ${line.slice(0, 200)}`);
      assert.deepEqual(plain(got), JSON.parse(line));
    }),
    { numRuns: 2000 },
  );
  // ragged and irregular lists are plain lists, as JSON.parse's
  for (const line of ['{"a": [[1, 2], [3]]}', '{"a": [1, [2]]}', '{"a": [[1], 2]}', '{"a": [[], [1]]}', '{"a": [2147483648]}', '{"a": [-2147483648]}', '{"a": [1.0]}', '{"a": [-0]}', '{"a": []}', '{"a": [[]]}', '{"a": "\\u0041\\n"}', '{"a": "é"}', '{"a": 1e400, "b": -0, "c": 12345678901234567890}']) {
    const b = Buffer.from(line);
    assert.deepEqual(plain(parseIntObject(b, 0, b.length)), JSON.parse(line), line);
  }
  // what it leaves to JSON.parse: a key __proto__ (a property to JSON.parse, the prototype to an assignment), nesting past 64, invalid JSON
  const deep = '{"a": ' + '['.repeat(70) + ']'.repeat(70) + '}';
  for (const line of ['{"a": 1} x', '{"__proto__": [1]}', '{"a": {"__proto__": 1}}', deep, '{"a": "x\ty"}'.replace('\\t', '\t'), '{"a": [1,]}', '{"a": 01}', '{"a": .5}', '{"a": 1.}', '{"a": "\\x"}']) {
    const b = Buffer.from(line);
    assert.equal(parseIntObject(b, 0, b.length), null, line);
  }
  // vLLM's request lines: the long base64 of routed_experts.data comes as bytes, only under the key asked for
  const data = Buffer.alloc(6000, 7).toString('base64');
  const vllm = JSON.stringify({ request_id: 'r0', prompt_token_ids: [1, 2], prompt: data, outputs: [{ index: 0, token_ids: [3], routed_experts: { dtype: 'int16', shape: [3, 2, 1], data } }] });
  const vb = Buffer.from(vllm);
  const read = parseIntObject(vb, 0, vb.length, { byteStringKeys: ['data'] }) as { prompt: unknown; outputs: { routed_experts: { data: unknown } }[] };
  assert.ok(read.outputs[0].routed_experts.data instanceof StringBytes);
  assert.equal(read.prompt, data);
  assert.deepEqual(plain(read), JSON.parse(vllm));
  // a line is read within its bytes: a list cut short does not run on into what follows
  const two = Buffer.from('{"a": [[1, 2], [3\n, 4]]}');
  assert.equal(parseIntObject(two, 0, two.indexOf(10)), null);
});
