import { test } from 'node:test';
import assert from 'node:assert/strict';
import { patchify, resizeBilinear } from '../../src/data/image.js';
import { decodePngRgb } from '../../src/data/png.js';
import { encodePngRgb } from '../../src/data/png-encoder.js';
import type { RGBImage } from '../../src/data/sample.js';
import { writeTestPng } from './png-writer.js';

/** A gray image (all three channels equal) from rows of values. */
function gray(rows: number[][]): RGBImage {
  const h = rows.length, w = rows[0].length;
  return { width: w, height: h, data: Uint8Array.from(rows.flat().flatMap((v) => [v, v, v])) };
}
function channel0(img: RGBImage): number[][] {
  return Array.from({ length: img.height }, (_, y) => Array.from({ length: img.width }, (_, x) => img.data[(y * img.width + x) * 3]));
}

test('bilinear upscale 2x2 -> 4x4 matches values worked out by hand (half-pixel centres)', () => {
  // sample points: x = (i + 0.5) / 2 - 0.5 -> 0 (clamped), 0.25, 0.75, 1 (clamped); same for y
  // top row 0..100 at those x: 0, 25, 75, 100; bottom row 200..40: 200, 160, 80, 40
  // y = 0.25: 0.75 top + 0.25 bottom = 50, 58.75, 76.25, 85; y = 0.75: 150, 126.25, 78.75, 55
  const out = resizeBilinear(gray([[0, 100], [200, 40]]), 4, 4);
  assert.deepEqual(channel0(out), [
    [0, 25, 75, 100],
    [50, 59, 76, 85],
    [150, 126, 79, 55],
    [200, 160, 80, 40],
  ]);
});

test('bilinear downscale by 2 averages each 2x2 block; non-square sizes; same size is unchanged', () => {
  const rows = [
    [0, 10, 20, 30],
    [40, 50, 60, 70],
    [80, 90, 100, 110],
    [120, 130, 140, 255],
  ];
  // sample points (i + 0.5) * 2 - 0.5 = 0.5, 2.5: halfway between two pixels on both axes
  // e.g. bottom right (100 + 110 + 140 + 255) / 4 = 151.25 -> 151
  assert.deepEqual(channel0(resizeBilinear(gray(rows), 2, 2)), [[25, 45], [105, 151]]);
  // 4x1 -> 2x2: x as above, y clamps to the only row
  assert.deepEqual(channel0(resizeBilinear(gray([[0, 10, 20, 30]]), 2, 2)), [[5, 25], [5, 25]]);
  const same = gray(rows);
  assert.equal(resizeBilinear(same, 4, 4), same);
});

test('patches: row-major over the grid, each patch flattened (y, x, channel), values (v/255-0.5)/0.5', () => {
  const W = 16, P = 8;
  const img: RGBImage = { width: W, height: W, data: new Uint8Array(W * W * 3) };
  for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) img.data[(y * W + x) * 3 + c] = (y * 16 + x * 3 + c * 70) % 256;
  const out = new Float32Array(4 * P * P * 3 + 5);
  patchify(img, P, out, 5);
  for (let p = 0; p < 4; p++) {
    const py = Math.floor(p / 2), px = p % 2; // patch 1 is the top right one
    for (let y = 0; y < P; y++) for (let x = 0; x < P; x++) for (let c = 0; c < 3; c++) {
      const v = img.data[((py * P + y) * W + px * P + x) * 3 + c];
      assert.equal(out[5 + p * P * P * 3 + (y * P + x) * 3 + c], Math.fround((v / 255 - 0.5) / 0.5));
    }
  }
  const ends = new Float32Array(P * P * 3);
  patchify({ width: P, height: P, data: new Uint8Array(P * P * 3).fill(255).fill(0, 0, 3) }, P, ends);
  assert.deepEqual([ends[0], ends[3]], [-1, 1]);
});

test('PNG decoding to RGB8: RGBA drops alpha, gray, gray+alpha, 16-bit, palette, 1-bit gray', () => {
  const W = 3, H = 2;
  const rgb = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 255, 0, 7];
  const px = (i: number) => rgb.slice(i * 3, i * 3 + 3);
  const rgba = Array.from({ length: W * H }, (_, i) => [...px(i), i * 40]).flat();
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 6, depth: 8, samples: rgba }), 'x').data], rgb);
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 2, depth: 8, samples: rgb }), 'x').data], rgb);
  const g = [0, 17, 34, 200, 254, 255];
  const g3 = g.flatMap((v) => [v, v, v]);
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 0, depth: 8, samples: g }), 'x').data], g3);
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 4, depth: 8, samples: g.flatMap((v) => [v, 99]) }), 'x').data], g3);
  // 16 bits: v16 = v8 * 257 decodes back to v8; 0x1234 -> round(4660/257) = 18
  const rgb16 = rgb.map((v) => v * 257);
  rgb16[0] = 0x1234;
  const want16 = [...rgb];
  want16[0] = 18;
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 2, depth: 16, samples: rgb16 }), 'x').data], want16);
  const palette: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [1, 2, 3]];
  const idx = [2, 0, 1, 1, 0, 2];
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 3, depth: 8, samples: idx, palette }), 'x').data], idx.flatMap((i) => palette[i]));
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 3, depth: 2, samples: idx, palette }), 'x').data], idx.flatMap((i) => palette[i]));
  const bits = [1, 0, 1, 0, 0, 1];
  assert.deepEqual([...decodePngRgb(writeTestPng({ width: W, height: H, colorType: 0, depth: 1, samples: bits }), 'x').data], bits.flatMap((b) => [b * 255, b * 255, b * 255]));
});

test('PNG errors: not a PNG, corrupt data; encode round-trips', () => {
  assert.throws(() => decodePngRgb(new TextEncoder().encode('GIF89a....'), 'a.png'), (e: Error) => e.name === 'InputError' && e.message === 'a.png: not a PNG image');
  const good = writeTestPng({ width: 2, height: 2, colorType: 2, depth: 8, samples: new Array(12).fill(7) });
  assert.throws(() => decodePngRgb(good.subarray(0, 40), 'b.png'), (e: Error) => e.name === 'InputError' && e.message.startsWith('b.png: '));
  const img: RGBImage = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => (i * 37) % 256) };
  assert.deepEqual(decodePngRgb(encodePngRgb(img), 'c'), img);
});

test('bilinear resize matches PyTorch interpolate(bilinear, align_corners=False) (fixture), up and down', async () => {
  const { readFileSync } = await import('node:fs');
  const fixture = JSON.parse(readFileSync(new URL('../../../test/fixtures/resize-bilinear.json', import.meta.url), 'utf8')) as {
    cases: { width: number; height: number; outWidth: number; outHeight: number; rgb: number[]; out: number[] }[];
  };
  assert.equal(fixture.cases.length, 4);
  for (const c of fixture.cases) {
    const got = resizeBilinear({ width: c.width, height: c.height, data: Uint8Array.from(c.rgb) }, c.outWidth, c.outHeight);
    assert.equal(got.data.length, c.out.length);
    for (let i = 0; i < c.out.length; i++) {
      // ours is rounded to 8 bits; ties (x.5) may go either way after float error
      assert.ok(Math.abs(got.data[i] - c.out[i]) <= 0.5 + 1e-4, `case ${c.width}x${c.height}->${c.outWidth}x${c.outHeight} value ${i}: ${got.data[i]} vs ${c.out[i]}`);
    }
  }
});
