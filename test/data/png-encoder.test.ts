import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, inflateSync } from 'node:zlib';
import { decode } from 'fast-png';
import { PngEncoder } from '../../src/data/png-encoder.js';
import type { RGBImage } from '../../src/data/sample.js';

function image(width: number, height: number, seed: number): RGBImage {
  const data = new Uint8Array(width * height * 3);
  let x = seed;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = i % 7 < 4 ? (x >>> 16) & 255 : 40; // some noise, some runs
  }
  return { width, height, data };
}

/** The PNG's chunks, read by hand: type, data and the CRC stored after them. */
function chunks(png: Uint8Array): { type: string; data: Uint8Array; crc: number; crcOver: Uint8Array }[] {
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out = [];
  for (let o = 8; o < png.length; ) {
    const len = dv.getUint32(o);
    out.push({ type: String.fromCharCode(...png.subarray(o + 4, o + 8)), data: png.subarray(o + 8, o + 8 + len), crc: dv.getUint32(o + 8 + len), crcOver: png.subarray(o + 4, o + 8 + len) });
    o += 12 + len;
  }
  return out;
}

test('PNG encoder: a PNG that fast-png decodes (CRCs checked) to the same pixels; chunks, CRCs and the zlib stream checked with node:zlib', () => {
  const enc = new PngEncoder();
  for (const [w, h, seed] of [[1, 1, 1], [5, 3, 2], [64, 64, 3], [33, 17, 4], [300, 2, 5]] as const) {
    const img = image(w, h, seed);
    const png = enc.encode(img);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const d = decode(png, { checkCrc: true });
    assert.deepEqual([d.width, d.height, d.depth, d.channels], [w, h, 8, 3]);
    assert.deepEqual([...d.data], [...img.data]);
    const cs = chunks(png);
    assert.deepEqual(cs.map((c) => c.type), ['IHDR', 'IDAT', 'IEND']);
    for (const c of cs) assert.equal(c.crc, crc32(c.crcOver), `${c.type} CRC`);
    assert.deepEqual([...cs[0].data.subarray(8)], [8, 2, 0, 0, 0]);
    // the stream inflates (node's zlib checks its adler-32) to each row after a filter byte 0
    const raw = inflateSync(cs[1].data);
    const want = new Uint8Array(h * (1 + 3 * w));
    for (let y = 0; y < h; y++) for (let i = 0; i < 3 * w; i++) want[y * (1 + 3 * w) + 1 + i] = img.data[y * 3 * w + i];
    assert.deepEqual(raw, Buffer.from(want));
  }
});

test('PNG encoder: one encoder gives the bytes a fresh one gives, whatever it encoded before, in arrays of their own', () => {
  const shared = new PngEncoder();
  const imgs = [image(64, 64, 7), image(3, 2, 8), image(64, 64, 7), image(40, 90, 9)];
  const outs = imgs.map((img) => shared.encode(img));
  imgs.forEach((img, i) => assert.deepEqual(outs[i], new PngEncoder().encode(img), `image ${i}`));
  assert.deepEqual(outs[0], outs[2]);
  assert.notEqual(outs[0].buffer, outs[2].buffer);
  assert.equal(outs[1].byteLength, outs[1].buffer.byteLength);
});

test('PNG encoder: pixels that do not match the size are refused', () => {
  assert.throws(() => new PngEncoder().encode({ width: 2, height: 2, data: new Uint8Array(11) }), /2x2 RGB needs 12 bytes, got 11/);
});
