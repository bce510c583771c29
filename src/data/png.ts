import { decode, encode, hasPngSignature } from 'fast-png';
import { InputError } from '../util/errors.js';
import type { RGBImage } from './sample.js';

/**
 * Decode a PNG to RGB8 (SPEC §1: drop alpha). Handles grayscale (1/2/4/8/16 bits), gray+alpha,
 * RGB, RGBA (8/16 bits) and palette images. `where` names the file in errors.
 */
export function decodePngRgb(bytes: Uint8Array, where: string): RGBImage {
  if (!hasPngSignature(bytes)) throw new InputError(`${where}: not a PNG image`);
  let png;
  try {
    png = decode(bytes);
  } catch (e) {
    throw new InputError(`${where}: cannot decode PNG (${e instanceof Error ? e.message : e})`);
  }
  const { width, height, depth, channels, palette } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  if (palette) {
    const idx = unpackSamples(png.data as Uint8Array, width, height, depth);
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
    // 1/2/4-bit grayscale: unpack and stretch to 0..255
    const raw = unpackSamples(png.data as Uint8Array, width, height, depth);
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

/** Encode an RGB8 image as PNG (what a trace stores for each image part). */
export function encodePngRgb(img: RGBImage): Uint8Array {
  return encode({ width: img.width, height: img.height, data: img.data, depth: 8, channels: 3 });
}
