import { InputError } from '../util/errors.js';
import { LIMITS } from '../util/limits.js';
import { LITTLE_ENDIAN } from '../util/endian.js';

/**
 * safetensors: u64 little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the data.
 * F32 is written; F32, F16 and BF16 are read (converted to Float32Array).
 */
export type Dtype = 'F32' | 'F16' | 'BF16';
const BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** One tensor as the header describes it; begin/end are offsets in the data after the header. */
export interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * The JSON header length from a file's first 8 bytes (u64 little-endian), checked against the
 * limit and the file size before any allocation. One header parser for the model and the importers.
 */
export function safetensorsHeaderLength(first8: Uint8Array, fileSize: number, where: string, maxHeaderBytes: number = LIMITS.headerBytes): number {
  if (fileSize < 8 || first8.length < 8) throw new InputError(`${where}: truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
  const n64 = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(maxHeaderBytes)) throw new InputError(`${where}: header length ${n64} is above the limit of ${maxHeaderBytes} bytes`);
  const n = Number(n64);
  if (n > fileSize - 8) throw new InputError(`${where}: truncated or corrupt: header says ${n} bytes of JSON but the file has ${fileSize - 8} after the length`);
  return n;
}

/**
 * The header's tensors and metadata, each checked: a dtype of `dtypeBytes`, a shape of safe
 * non-negative integers, data_offsets inside the `dataLen` bytes of data and exactly the bytes the
 * shape needs.
 */
export function parseSafetensorsHeader(json: Uint8Array, dataLen: number, where: string, dtypeBytes: Readonly<Record<string, number>>): { entries: HeaderEntry[]; metadata: Record<string, string> } {
  const fail = (what: string): never => {
    throw new InputError(`${where}: ${what}`);
  };
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch {
    return fail('corrupt header: not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('corrupt header: not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (info && typeof info === 'object') for (const [k, v] of Object.entries(info)) metadata[k] = String(v);
      continue;
    }
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!t || typeof t !== 'object') fail(`tensor ${name}: entry is not an object`);
    if (typeof t.dtype !== 'string' || !Object.hasOwn(dtypeBytes, t.dtype)) fail(`tensor ${name}: dtype ${JSON.stringify(t.dtype)} is not supported (${Object.keys(dtypeBytes).join(', ')})`);
    const dtype = t.dtype as string;
    if (!Array.isArray(t.shape) || t.shape.length > 8 || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${name}: bad shape ${JSON.stringify(t.shape)}`);
    const shape = t.shape as number[];
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0)) fail(`tensor ${name}: bad data_offsets ${JSON.stringify(off)}`);
    const [begin, end] = off as number[];
    if (end < begin) fail(`tensor ${name}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLen) fail(`tensor ${name}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes; file truncated or header wrong)`);
    // a product of huge dims is no longer exact, so compare with the bytes there are before trusting it
    const need = shape.reduce((a, b) => a * b, 1) * dtypeBytes[dtype];
    if (!Number.isSafeInteger(need) || need !== end - begin) fail(`tensor ${name}: shape [${shape.join(', ')}] ${dtype} needs ${need} bytes but data_offsets give ${end - begin}`);
    entries.push({ name, dtype, shape, begin, end });
  }
  return { entries, metadata };
}

export function readSafetensors(bytes: Uint8Array, where: string, maxHeaderBytes: number = LIMITS.headerBytes): SafetensorsFile {
  const n = safetensorsHeaderLength(bytes.subarray(0, 8), bytes.length, where, maxHeaderBytes);
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const { entries, metadata } = parseSafetensorsHeader(bytes.subarray(8, dataStart), dataLen, where, BYTES);
  // a checkpoint's header describes the whole file: tensors back to back, no holes, nothing after
  entries.sort((a, b) => a.begin - b.begin);
  let cursor = 0;
  for (const e of entries) {
    if (e.begin < cursor) throw new InputError(`${where}: tensor ${e.name}: data_offsets overlap the previous tensor`);
    if (e.begin > cursor) throw new InputError(`${where}: tensor ${e.name}: hole in the data before offset ${e.begin}`);
    cursor = e.end;
  }
  if (cursor !== dataLen) throw new InputError(`${where}: ${dataLen - cursor} bytes of data after the last tensor (header does not describe the file)`);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    tensors.set(e.name, { shape: e.shape, data: decode(bytes, dataStart + e.begin, e.end - e.begin, e.dtype as Dtype) });
  }
  return { tensors, metadata };
}

/** Typed arrays use the host's byte order; safetensors is little-endian. */

/** F32/F16/BF16 little-endian bytes -> Float32Array (also the importers' one half-float decoder). */
export function decode(bytes: Uint8Array, offset: number, length: number, dtype: Dtype): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, length);
  const n = length / BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32' && LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + 4 * n)); // the bytes as they are (memcpy)
  } else if (dtype === 'F32') {
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  } else if (dtype === 'BF16') {
    const u = new Uint32Array(1);
    const f = new Float32Array(u.buffer);
    for (let i = 0; i < n; i++) {
      u[0] = dv.getUint16(2 * i, true) << 16;
      out[i] = f[0];
    }
  } else {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
  }
  return out;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Serialize tensors as F32, in the given order, 8-byte-aligned header as the reference writer does. */
export function writeSafetensors(tensors: [string, Tensor][], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${name}: shape [${t.shape.join(', ')}] does not match ${t.data.length} values`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const [, t] of tensors) {
    for (let i = 0; i < t.data.length; i++, p += 4) dv.setFloat32(p, t.data[i], true);
  }
  return out;
}
