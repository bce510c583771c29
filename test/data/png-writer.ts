import { deflateSync } from 'node:zlib';

/**
 * A minimal PNG writer for tests, independent of fast-png: filter 0 on every row, one IDAT.
 * colorType 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA; `samples` are row-major, channel
 * values at the given bit depth (packed high bit first for depths below 8).
 */
export function writeTestPng(opts: { width: number; height: number; colorType: 0 | 2 | 3 | 4 | 6; depth: 1 | 2 | 4 | 8 | 16; samples: number[]; palette?: [number, number, number][] }): Uint8Array {
  const { width, height, colorType, depth, samples, palette } = opts;
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType];
  const rowBytes = Math.ceil((width * channels * depth) / 8);
  const raw = new Uint8Array(height * (rowBytes + 1));
  for (let y = 0; y < height; y++) {
    const row = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    for (let i = 0; i < width * channels; i++) {
      const v = samples[y * width * channels + i];
      if (depth === 16) {
        row[i * 2] = v >> 8;
        row[i * 2 + 1] = v & 255;
      } else if (depth === 8) row[i] = v;
      else {
        const bit = i * depth;
        row[bit >> 3] |= v << (8 - depth - (bit & 7));
      }
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([depth, colorType, 0, 0, 0], 8);
  const chunks = [chunk('IHDR', ihdr)];
  if (palette) chunks.push(chunk('PLTE', Uint8Array.from(palette.flat())));
  chunks.push(chunk('IDAT', new Uint8Array(deflateSync(raw))), chunk('IEND', new Uint8Array(0)));
  const sig = Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10);
  const total = sig.length + chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of [sig, ...chunks]) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
