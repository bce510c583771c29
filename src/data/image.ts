import { InputError } from '../util/errors.js';
import type { RGBImage } from './sample.js';

/**
 * Bilinear resize of an RGB8 image with half-pixel centres (as PIL and torch `interpolate(...,
 * align_corners=False)` without antialiasing): output pixel x samples the input at
 * `(x + 0.5) * inW / outW - 0.5`, clamped to the edge. Values are rounded back to 8 bits so that
 * the image fed to the model is exactly the one a trace stores as PNG.
 */
export function resizeBilinear(img: RGBImage, outW: number, outH: number): RGBImage {
  const { width: inW, height: inH, data: src } = img;
  if (inW === outW && inH === outH) return img;
  const out = new Uint8Array(outW * outH * 3);
  const sx = inW / outW, sy = inH / outH;
  for (let y = 0; y < outH; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), inH - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, inH - 1), wy = fy - y0;
    for (let x = 0; x < outW; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), inW - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, inW - 1), wx = fx - x0;
      const a = (y0 * inW + x0) * 3, b = (y0 * inW + x1) * 3, c = (y1 * inW + x0) * 3, d = (y1 * inW + x1) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const top = src[a + ch] * (1 - wx) + src[b + ch] * wx;
        const bottom = src[c + ch] * (1 - wx) + src[d + ch] * wx;
        out[(y * outW + x) * 3 + ch] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return { width: outW, height: outH, data: out };
}

/** The image the model sees: resized to image_size x image_size when it differs. */
export function fitImage(img: RGBImage, imageSize: number): RGBImage {
  return resizeBilinear(img, imageSize, imageSize);
}

/**
 * SPEC §1 patches of an image already at image_size: each value v -> (v/255 - 0.5)/0.5, patches in
 * row-major order of the patch grid, each patch its P x P x C block flattened in (y, x, channel)
 * order. Writes `(image_size/P)^2` rows of `P*P*3` values into `out` at `offset` (values).
 */
export function patchify(img: RGBImage, patchSize: number, out: Float32Array, offset = 0): void {
  const { width: W, height: Hgt, data } = img;
  const P = patchSize;
  if (W % P !== 0 || Hgt % P !== 0) throw new Error(`image ${W}x${Hgt} is not a multiple of patch size ${P}`);
  const gx = W / P, gy = Hgt / P;
  let o = offset;
  for (let py = 0; py < gy; py++) {
    for (let px = 0; px < gx; px++) {
      for (let y = 0; y < P; y++) {
        let i = ((py * P + y) * W + px * P) * 3;
        for (let k = 0; k < P * 3; k++) out[o++] = (data[i++] / 255 - 0.5) / 0.5;
      }
    }
  }
}

/** Check an image's buffer against its size (a malformed image is bad input). */
export function checkImage(img: RGBImage, where: string): void {
  if (!(img.width > 0 && img.height > 0) || img.data.length !== img.width * img.height * 3) {
    throw new InputError(`${where}: image of ${img.width}x${img.height} pixels has ${img.data.length} bytes, expected ${img.width * img.height * 3}`);
  }
}
