import { decode, hasPngSignature } from 'fast-png';
import { Unzlib } from 'fflate';
import { InputError } from '../util/errors.js';
import { LIMITS } from '../util/limits.js';
import type { RGBImage } from './sample.js';

interface PngHeader {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace: number;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** The IHDR fields, checked against the image limits before anything is inflated or allocated. */
function readHeader(bytes: Uint8Array, where: string): PngHeader {
  const fail = (what: string): never => {
    throw new InputError(`${where}: ${what}`);
  };
  if (bytes.length < 33) fail('truncated PNG (no complete IHDR chunk)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(8) !== 13 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') fail('corrupt PNG: the first chunk is not IHDR');
  const h = { width: dv.getUint32(16), height: dv.getUint32(20), depth: bytes[24], colorType: bytes[25], interlace: bytes[28] };
  if (h.width < 1 || h.height < 1) fail(`PNG of ${h.width}x${h.height} pixels is empty`);
  if (h.width > LIMITS.imageSide || h.height > LIMITS.imageSide || h.width * h.height > LIMITS.imagePixels) {
    fail(`PNG of ${h.width}x${h.height} pixels is above the limit (${LIMITS.imageSide} per side, ${LIMITS.imagePixels} pixels)`);
  }
  if (!(h.colorType in CHANNELS) || !DEPTHS[h.colorType].includes(h.depth)) fail(`PNG colour type ${h.colorType} with bit depth ${h.depth} is not valid`);
  if (h.interlace > 1) fail(`PNG interlace method ${h.interlace} is not valid`);
  return h;
}

/** Adam7 passes: start x, start y, step x, step y. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

/** Bytes of filtered image data the header implies (each row: a filter byte + packed samples). */
function rawSize(h: PngHeader): number {
  const bitsPerPixel = CHANNELS[h.colorType] * h.depth;
  const rows = (w: number, n: number) => (w > 0 && n > 0 ? n * (1 + Math.ceil((w * bitsPerPixel) / 8)) : 0);
  if (h.interlace === 0) return rows(h.width, h.height);
  return ADAM7.reduce((s, [x0, y0, dx, dy]) => s + rows(Math.ceil((h.width - x0) / dx), Math.ceil((h.height - y0) / dy)), 0);
}

/** The PNG's chunks (type, data), CRCs not checked (fast-png does). */
function chunks(bytes: Uint8Array, where: string): { type: string; data: Uint8Array }[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: { type: string; data: Uint8Array }[] = [];
  for (let o = 8; o + 8 <= bytes.length; ) {
    const len = dv.getUint32(o);
    const type = String.fromCharCode(...bytes.subarray(o + 4, o + 8));
    if (o + 12 + len > bytes.length) throw new InputError(`${where}: truncated PNG (chunk ${JSON.stringify(type)} runs past the end)`);
    out.push({ type, data: bytes.subarray(o + 8, o + 8 + len) });
    o += 12 + len;
    if (type === 'IEND') break;
  }
  return out;
}

/**
 * Inflate the IDAT stream, at most `limit` bytes: the input is fed in small pieces, so a
 * deflate bomb stops at the limit instead of filling memory.
 */
function inflateBounded(idat: Uint8Array[], limit: number, where: string): Uint8Array {
  const out = new Uint8Array(limit);
  let n = 0;
  const z = new Unzlib((chunk) => {
    if (n + chunk.length > limit) throw new InputError(`${where}: PNG data inflates to more than its ${limit} bytes of pixels`);
    out.set(chunk, n);
    n += chunk.length;
  });
  try {
    for (let i = 0; i < idat.length; i++) {
      const d = idat[i];
      for (let o = 0; o < d.length; o += 16384) z.push(d.subarray(o, Math.min(o + 16384, d.length)), i === idat.length - 1 && o + 16384 >= d.length);
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${where}: cannot decode PNG (corrupt image data: ${e instanceof Error ? e.message : e})`);
  }
  return out.subarray(0, n);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Adam7-interlaced images of 1, 2 or 4 bits per sample (grayscale or palette, one channel),
 * which fast-png mis-sizes: each pass is unfiltered with its own packed row length, and its
 * samples are placed on the full grid. Returns one sample per pixel.
 */
function decodeAdam7LowDepth(raw: Uint8Array, h: PngHeader, where: string): Uint8Array {
  const { width, height, depth } = h;
  const out = new Uint8Array(width * height);
  const mask = (1 << depth) - 1;
  let o = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const rowBytes = Math.ceil((pw * depth) / 8);
    let prev = new Uint8Array(rowBytes);
    for (let y = 0; y < ph; y++) {
      if (o + 1 + rowBytes > raw.length) throw new InputError(`${where}: PNG data is shorter than its ${width}x${height} size`);
      const filter = raw[o++];
      const cur = raw.slice(o, o + rowBytes);
      o += rowBytes;
      // bytes per pixel is 1 for sub-byte depths (PNG spec, filter algorithms)
      for (let i = 0; i < rowBytes; i++) {
        const a = i > 0 ? cur[i - 1] : 0, b = prev[i], c = i > 0 ? prev[i - 1] : 0;
        if (filter === 1) cur[i] = (cur[i] + a) & 255;
        else if (filter === 2) cur[i] = (cur[i] + b) & 255;
        else if (filter === 3) cur[i] = (cur[i] + ((a + b) >> 1)) & 255;
        else if (filter === 4) cur[i] = (cur[i] + paeth(a, b, c)) & 255;
        else if (filter !== 0) throw new InputError(`${where}: cannot decode PNG (unknown filter type ${filter})`);
      }
      for (let x = 0; x < pw; x++) {
        const bit = x * depth;
        out[(y0 + y * dy) * width + x0 + x * dx] = (cur[bit >> 3] >> (8 - depth - (bit & 7))) & mask;
      }
      prev = cur;
    }
  }
  return out;
}

/**
 * Decode a PNG to RGB8 (SPEC §1: drop alpha). Handles grayscale (1/2/4/8/16 bits), gray+alpha,
 * RGB, RGBA (8/16 bits) and palette images. `where` names the file in errors.
 */
export function decodePngRgb(bytes: Uint8Array, where: string): RGBImage {
  if (!hasPngSignature(bytes)) throw new InputError(`${where}: not a PNG image`);
  const h = readHeader(bytes, where);
  const parts = chunks(bytes, where);
  const idat = parts.filter((c) => c.type === 'IDAT').map((c) => c.data);
  if (!idat.length) throw new InputError(`${where}: PNG has no image data (IDAT)`);
  if (h.colorType === 3 && !parts.some((c) => c.type === 'PLTE')) throw new InputError(`${where}: palette PNG without a PLTE chunk (no colours to decode)`);
  const raw = inflateBounded(idat, rawSize(h), where);
  let png: { width: number; height: number; depth: number; channels: number; palette?: number[][]; data: Uint8Array | Uint16Array };
  let lowDepth: Uint8Array | null = null; // one sample per pixel, for 1/2/4-bit images
  try {
    png = decode(bytes) as typeof png;
    if (h.interlace === 1 && h.depth < 8) lowDepth = decodeAdam7LowDepth(raw, h, where);
    else if (h.depth < 8) lowDepth = unpackSamples(png.data as Uint8Array, h.width, h.height, h.depth);
  } catch (e) {
    if (e instanceof InputError) throw e;
    // fast-png rejects sub-byte interlaced images that are valid; those are decoded above without it
    if (!(h.interlace === 1 && h.depth < 8)) throw new InputError(`${where}: cannot decode PNG (${e instanceof Error ? e.message : e})`);
    lowDepth = decodeAdam7LowDepth(raw, h, where);
    png = { width: h.width, height: h.height, depth: h.depth, channels: 1, palette: h.colorType === 3 ? readPalette(parts, where) : undefined, data: lowDepth };
  }
  const { width, height, depth, channels, palette } = png;
  if (width !== h.width || height !== h.height) throw new InputError(`${where}: cannot decode PNG (size differs from its header)`);
  const n = width * height;
  const out = new Uint8Array(n * 3);
  if (h.colorType === 3) {
    if (!palette || palette.length === 0) throw new InputError(`${where}: palette PNG without a PLTE chunk (no colours to decode)`);
    const idx = lowDepth ?? (png.data as Uint8Array);
    for (let i = 0; i < n; i++) {
      const c = palette[idx[i]];
      if (!c) throw new InputError(`${where}: palette index ${idx[i]} outside the palette of ${palette.length} colours`);
      out[i * 3] = c[0];
      out[i * 3 + 1] = c[1];
      out[i * 3 + 2] = c[2];
    }
    return { width, height, data: out };
  }
  let v: Uint8Array;
  if (depth === 16) {
    const d16 = png.data as Uint16Array;
    v = new Uint8Array(d16.length);
    for (let i = 0; i < d16.length; i++) v[i] = Math.round(d16[i] / 257);
  } else if (depth === 8) {
    v = png.data as Uint8Array;
  } else {
    // 1/2/4-bit grayscale: unpacked above, stretched to 0..255
    const raw = lowDepth!;
    const scale = 255 / ((1 << depth) - 1);
    v = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) v[i] = Math.round(raw[i] * scale);
  }
  if (v.length < n * channels) throw new InputError(`${where}: PNG data is shorter than its ${width}x${height} size`);
  for (let i = 0; i < n; i++) {
    if (channels >= 3) {
      out[i * 3] = v[i * channels];
      out[i * 3 + 1] = v[i * channels + 1];
      out[i * 3 + 2] = v[i * channels + 2];
    } else {
      const g = v[i * channels];
      out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = g;
    }
  }
  return { width, height, data: out };
}

function readPalette(parts: { type: string; data: Uint8Array }[], where: string): number[][] {
  const p = parts.find((c) => c.type === 'PLTE');
  if (!p || p.data.length % 3 !== 0 || p.data.length === 0) throw new InputError(`${where}: palette PNG without a valid PLTE chunk`);
  const out: number[][] = [];
  for (let i = 0; i < p.data.length; i += 3) out.push([p.data[i], p.data[i + 1], p.data[i + 2]]);
  return out;
}

/** Samples of less than 8 bits are packed high bit first, each row starting on a byte. */
function unpackSamples(data: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  if (depth === 8) return data;
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)];
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}
