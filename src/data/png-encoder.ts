import { ZStream, Z_DEFAULT_STRATEGY, Z_FINISH, Z_OK, Z_STREAM_END, zlibDeflate, zlibDeflateInit2, zlibDeflateReset } from 'pako';
import type { RGBImage } from './sample.js';

/**
 * PNG encoding of RGB8 images (what a trace stores for each image part) that makes no garbage
 * buffers: one zlib stream (pako's zlib API) and its scanline and output buffers are kept from
 * image to image, and only the finished PNG is a new array. Capture encodes every image the model
 * sees, and fast-png over fflate made ~200 KB of typed arrays per image; V8 frees those only at
 * its next collection, so each forward thread carried tens of megabytes of dead buffers, and a
 * capture's memory rose and wandered with them (40,960 samples: 270-300 MB, against 225 MB with no
 * images encoded). The container is the few chunks PNG requires (signature, IHDR, IDAT, IEND),
 * rows unfiltered as fast-png wrote them; zlib at level 3 as fast-png used, with zlib's own hash
 * (legacyHash), so that the stream is the one any zlib gives.
 */
const LEVEL = 3;
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export class PngEncoder {
  private readonly strm = new ZStream();
  private raw = new Uint8Array(0);
  private out = new Uint8Array(0);

  constructor() {
    const status = zlibDeflateInit2(this.strm, LEVEL, 8 /* Z_DEFLATED */, 15, 8, Z_DEFAULT_STRATEGY, true);
    if (status !== Z_OK) throw new Error(`png: zlib init failed (${status})`);
  }

  /** The PNG of an RGB8 image, in an array of its own size. */
  encode(img: RGBImage): Uint8Array {
    const { width: W, height: H, data } = img;
    if (data.length !== W * H * 3) throw new Error(`png: ${W}x${H} RGB needs ${W * H * 3} bytes, got ${data.length}`);
    // the scanlines: a filter byte (0, none) before each row
    const rowBytes = 3 * W, n = H * (1 + rowBytes);
    if (this.raw.length < n) this.raw = new Uint8Array(n);
    for (let y = 0; y < H; y++) {
      this.raw[y * (1 + rowBytes)] = 0;
      this.raw.set(data.subarray(y * rowBytes, (y + 1) * rowBytes), y * (1 + rowBytes) + 1);
    }
    // room for the whole stream in one call: zlib's deflateBound, plus the chunks around it
    const bound = n + (n >> 12) + (n >> 14) + (n >> 25) + 13 + 6;
    const head = SIGNATURE.length + 25 + 8, tail = 4 + 12; // signature, IHDR, IDAT's length and type; IDAT's CRC, IEND
    if (this.out.length < head + bound + tail) this.out = new Uint8Array(head + bound + tail);
    const out = this.out;
    out.set(SIGNATURE, 0);
    // each chunk's data is written at o + 8, then chunk() puts its length, type and CRC around it
    let o = 8;
    u32(out, o + 8, W);
    u32(out, o + 12, H);
    out.set([8, 2, 0, 0, 0], o + 16); // depth 8, colour type 2 (RGB), deflate, no filter method, no interlace
    o = chunk(out, o, 'IHDR', 13);
    o = chunk(out, o, 'IDAT', this.deflate(n, out, o + 8, out.length - tail));
    return out.slice(0, chunk(out, o, 'IEND', 0));
  }

  /** The first n scanline bytes as one zlib stream into out[at..end); returns its length. */
  private deflate(n: number, out: Uint8Array<ArrayBuffer>, at: number, end: number): number {
    const s = this.strm;
    s.input = this.raw.subarray(0, n);
    s.next_in = 0;
    s.avail_in = n;
    s.output = out;
    s.next_out = at;
    s.avail_out = end - at;
    const status = zlibDeflate(s, Z_FINISH);
    if (status !== Z_STREAM_END) throw new Error(`png: zlib did not finish (${status})`);
    zlibDeflateReset(s);
    return s.next_out - at;
  }
}

/** Around the `len` bytes of data at o + 8: its length and type before, CRC-32 of type and data after. Returns the offset after it. */
function chunk(out: Uint8Array, o: number, type: string, len: number): number {
  u32(out, o, len);
  for (let i = 0; i < 4; i++) out[o + 4 + i] = type.charCodeAt(i);
  u32(out, o + 8 + len, crc32(out, o + 4, o + 8 + len));
  return o + 12 + len;
}

function u32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}

/** PNG's CRC-32 (ISO 3309, as zlib's crc32) of b[from..to): by table; pako does not export its own. */
function crc32(b: Uint8Array, from: number, to: number): number {
  let c = -1;
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ b[i]) & 255] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** This thread's encoder (capture's forward threads each encode their batches' images). */
let shared: PngEncoder | null = null;

/** Encode an RGB8 image as PNG with this thread's encoder. */
export function encodePngRgb(img: RGBImage): Uint8Array {
  return (shared ??= new PngEncoder()).encode(img);
}
