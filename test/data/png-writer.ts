import { deflateSync } from 'node:zlib';

/**
 * A minimal PNG writer for tests, independent of fast-png: filter 0 on every row, one IDAT.
 * colorType 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA; `samples` are row-major, channel
 * values at the given bit depth (packed high bit first for depths below 8).
 */
export function writeTestPng(opts: {
  width: number; height: number; colorType: 0 | 2 | 3 | 4 | 6; depth: 1 | 2 | 4 | 8 | 16; samples: number[];
  palette?: [number, number, number][];
  /** Adam7 interlacing (PNG spec 8.2): the 7 passes' sub-images one after another. */
  interlace?: boolean;
  /** Filter type 0-4 of every row (the "up" / "Paeth" predictors exercise the decoder's unfiltering). */
  filter?: 0 | 1 | 2 | 3 | 4;
  /** Skip the PLTE chunk even for a palette image (a broken file). */
  omitPalette?: boolean;
}): Uint8Array {
  const { width, height, colorType, depth, samples, palette } = opts;
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType];
  const passes = opts.interlace
    ? [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]]
    : [[0, 0, 1, 1]];
  const parts: number[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const rowBytes = Math.ceil((pw * channels * depth) / 8);
    const bpp = Math.max(1, Math.ceil((channels * depth) / 8));
    let prev = new Uint8Array(rowBytes);
    for (let y = 0; y < ph; y++) {
      const row = new Uint8Array(rowBytes);
      for (let x = 0; x < pw; x++) {
        for (let c = 0; c < channels; c++) {
          const i = x * channels + c;
          const v = samples[((y0 + y * dy) * width + x0 + x * dx) * channels + c];
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
      const f = opts.filter ?? 0;
      parts.push(f);
      for (let i = 0; i < rowBytes; i++) {
        const a = i >= bpp ? row[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
        parts.push((row[i] - pred) & 255);
      }
      prev = row;
    }
  }
  const raw = Uint8Array.from(parts);
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([depth, colorType, 0, 0, opts.interlace ? 1 : 0], 8);
  const chunks = [chunk('IHDR', ihdr)];
  if (palette && !opts.omitPalette) chunks.push(chunk('PLTE', Uint8Array.from(palette.flat())));
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

export function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
