import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJsonlSamples, countJsonlSamples } from '../../src/data/jsonl.js';
import type { Sample } from '../../src/data/sample.js';
import { writeTestPng } from './png-writer.js';

async function all(path: string): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const s of readJsonlSamples(path)) out.push(s);
  return out;
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-jsonl-'));
  mkdirSync(join(dir, 'img'));
  // 2x1 RGBA: alpha is dropped
  writeFileSync(join(dir, 'img', 'a.png'), writeTestPng({ width: 2, height: 1, colorType: 6, depth: 8, samples: [1, 2, 3, 0, 4, 5, 6, 255] }));
  writeFileSync(join(dir, 'img', 'g.png'), writeTestPng({ width: 1, height: 1, colorType: 0, depth: 8, samples: [9] }));
  writeFileSync(join(dir, 'img', 'fake.png'), 'this is not a png');
  return dir;
}

test('JSONL: {text, image} puts the image first; {parts} keeps order; blank lines skipped; paths relative to the file', async () => {
  const dir = setup();
  try {
    const f = join(dir, 'data.jsonl');
    writeFileSync(f, [
      JSON.stringify({ text: 'a red circle', image: 'img/a.png' }),
      '',
      JSON.stringify({ parts: [{ text: 'look:' }, { image: 'img/g.png' }, { text: 'done' }, { image: join(dir, 'img', 'a.png') }] }),
      JSON.stringify({ text: 'only text' }),
      '   ',
      JSON.stringify({ image: 'img/g.png' }),
    ].join('\n') + '\n');
    const s = await all(f);
    assert.equal(s.length, 4);
    assert.equal(await countJsonlSamples(f), 4);
    assert.deepEqual(s[0].parts, [{ image: { width: 2, height: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) } }, { text: 'a red circle' }]);
    assert.equal(s[0].source, `${f}:1`);
    assert.deepEqual(s[1].parts.map((p) => ('text' in p ? p.text : p.image.width)), ['look:', 1, 'done', 2]);
    assert.deepEqual(s[1].parts[1], { image: { width: 1, height: 1, data: Uint8Array.from([9, 9, 9]) } });
    assert.equal(s[1].source, `${f}:3`);
    assert.deepEqual(s[2].parts, [{ text: 'only text' }]);
    assert.equal(s[3].source, `${f}:6`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('JSONL errors name the file and line: malformed JSON, missing image, non-PNG, no parts, bad parts', async () => {
  const dir = setup();
  try {
    const cases: [string, RegExp][] = [
      ['{"text": "a red', /:2: not valid JSON/],
      ['{"image": "img/missing.png"}', /:2: image .*missing\.png: no such file$/],
      ['{"image": "img/fake.png", "text": "x"}', /:2: image .*fake\.png: not a PNG image$/],
      ['{}', /:2: no parts/],
      ['{"parts": []}', /:2: no parts$/],
      ['{"parts": {"text": "x"}}', /:2: "parts" must be a list$/],
      ['{"parts": [{"text": "x", "image": "img/g.png"}]}', /:2: parts\[0\] must have exactly one key/],
      ['{"parts": [{"video": "x"}]}', /:2: parts\[0\] must have exactly one key/],
      ['{"text": 5}', /:2: "text" must be a string$/],
      ['[1, 2]', /:2: expected a JSON object$/],
    ];
    for (const [line, re] of cases) {
      const f = join(dir, 'bad.jsonl');
      writeFileSync(f, `{"text": "fine"}\n${line}\n{"text": "never read"}\n`);
      await assert.rejects(all(f), (e: Error) => e.name === 'InputError' && e.message.startsWith(`${f}:2: `) && re.test(e.message), line);
    }
    await assert.rejects(all(join(dir, 'nope.jsonl')), (e: Error) => e.name === 'InputError' && /nope\.jsonl: no such file/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readLines: CRLF, no final newline, multi-byte characters across the 1 MB read boundary', async () => {
  const { readLines } = await import('../../src/data/jsonl.js');
  const dir = mkdtempSync(join(tmpdir(), 'moescope-lines-'));
  try {
    const long = 'x' + 'é'.repeat(700_000); // 1.4 MB: 'é' is 2 bytes, so some split across a chunk boundary
    const f = join(dir, 'l.jsonl');
    writeFileSync(f, `a\r\n\r\n${long}\nlast`);
    const got: string[] = [];
    for await (const l of readLines(f)) got.push(l);
    assert.equal(got.length, 4);
    assert.deepEqual([got[0], got[1], got[3]], ['a', '', 'last']);
    assert.ok(got[2] === long, 'long line intact');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
