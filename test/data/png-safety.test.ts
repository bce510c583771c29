import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { decodePngRgb } from '../../src/data/png.js';
import { chunk, writeTestPng } from './png-writer.js';

/** A deterministic pattern of sample values at a bit depth (not symmetric, so misplaced pixels show). */
function pattern(n: number, depth: number, seed: number): number[] {
  const max = (1 << depth) - 1;
  return Array.from({ length: n }, (_, i) => ((i * 7 + seed * 13 + ((i * i) >> 3)) % (max + 1)));
}

test('interlaced (Adam7) 1/2/4-bit grayscale and palette PNGs decode to the same pixels as the non-interlaced file', () => {
  for (const depth of [1, 2, 4] as const) {
    for (const [w, h] of [[1, 1], [3, 5], [8, 8], [13, 7], [17, 9]]) {
      for (const filter of [0, 2, 4] as const) {
        const samples = pattern(w * h, depth, w + h);
        const flat = decodePngRgb(writeTestPng({ width: w, height: h, colorType: 0, depth, samples }), 'flat');
        const inter = decodePngRgb(writeTestPng({ width: w, height: h, colorType: 0, depth, samples, interlace: true, filter }), 'interlaced');
        assert.deepEqual(inter, flat, `gray depth ${depth} ${w}x${h} filter ${filter}`);
        // independent expectation: each sample stretched to 0..255 on all three channels
        const scale = 255 / ((1 << depth) - 1);
        assert.deepEqual([...inter.data], samples.flatMap((v) => [Math.round(v * scale), Math.round(v * scale), Math.round(v * scale)]));

        const palette = Array.from({ length: 1 << depth }, (_, i): [number, number, number] => [i * 3, 255 - i, (i * 37) & 255]);
        const pflat = decodePngRgb(writeTestPng({ width: w, height: h, colorType: 3, depth, samples, palette }), 'flat');
        const pint = decodePngRgb(writeTestPng({ width: w, height: h, colorType: 3, depth, samples, palette, interlace: true, filter }), 'interlaced');
        assert.deepEqual(pint, pflat, `palette depth ${depth} ${w}x${h}`);
        assert.deepEqual([...pint.data], samples.flatMap((v) => palette[v]));
      }
    }
  }
});

test('interlaced 8-bit RGB still decodes (through fast-png) like the non-interlaced file', () => {
  const samples = pattern(11 * 6 * 3, 8, 3);
  const a = decodePngRgb(writeTestPng({ width: 11, height: 6, colorType: 2, depth: 8, samples }), 'a');
  const b = decodePngRgb(writeTestPng({ width: 11, height: 6, colorType: 2, depth: 8, samples, interlace: true, filter: 4 }), 'b');
  assert.deepEqual(b, a);
  assert.deepEqual([...a.data], samples);
});

test('a palette PNG without PLTE is an error, not a gray image', () => {
  const png = writeTestPng({ width: 4, height: 4, colorType: 3, depth: 8, samples: new Array(16).fill(1), palette: [[1, 2, 3], [4, 5, 6]], omitPalette: true });
  assert.throws(() => decodePngRgb(png, 'p.png'), (e: Error) => e.name === 'InputError' && /^p\.png: palette PNG without a PLTE chunk/.test(e.message));
});

/** A PNG whose IHDR claims `w` x `h` pixels, with a small IDAT (never enough for that size). */
function claimedSize(w: number, h: number, idat: Uint8Array = new Uint8Array(deflateSync(Buffer.alloc(1000)))): Uint8Array {
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, w);
  new DataView(ihdr.buffer).setUint32(4, h);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))];
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

test('image size is checked from IHDR before anything is inflated: 40000x40000 is refused at once', () => {
  const before = process.memoryUsage().arrayBuffers;
  assert.throws(() => decodePngRgb(claimedSize(40000, 40000), 'big.png'), /big\.png: PNG of 40000x40000 pixels is above the limit/);
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, 'no large buffer was allocated');
  assert.throws(() => decodePngRgb(claimedSize(0, 5), 'zero.png'), /zero\.png: PNG of 0x5 pixels is empty/);
});

test('a deflate bomb stops at the size the header allows', () => {
  // 64 MB of zeros deflate to ~64 KB; a 4x4 RGB image has 4 * (1 + 12) bytes of data
  const bomb = new Uint8Array(deflateSync(Buffer.alloc(64 * 1024 * 1024)));
  assert.throws(() => decodePngRgb(claimedSize(4, 4, bomb), 'bomb.png'), /bomb\.png: PNG data inflates to more than its 52 bytes/);
});
