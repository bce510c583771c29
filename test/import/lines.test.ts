import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLines } from '../../src/import/lines.js';

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
