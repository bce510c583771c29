import { decode as decodeHalf, parseSafetensorsHeader, safetensorsHeaderLength } from '../model/safetensors.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { InputError } from '../util/errors.js';
import { checkBigInt } from '../util/limits.js';
import { LITTLE_ENDIAN } from '../util/endian.js';

/**
 * Tensors in safetensors files and NumPy .npy files, read by row ranges so that a large tensor
 * never has to be in memory at once. Any numeric dtype an HF model or NumPy writes is accepted:
 * floats come back as Float32Array, integers and booleans as Int32Array (int64 values must fit).
 */
export type TensorDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL';

const BYTES: Record<TensorDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1 };

export function isFloatDtype(d: TensorDtype): boolean {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';
}

export interface TensorInfo {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  offset: number; // absolute byte offset of the data in the file
  where: string; // "<file>: tensor <name>" for messages
}

/** An open tensor file: its tensors by name and a positioned reader. Close when done. */
export class TensorFile {
  private constructor(
    readonly path: string,
    private fd: number,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  static safetensors(path: string): TensorFile {
    const fd = openOrFail(path);
    try {
      const size = fstatSync(fd).size;
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, Math.min(8, size), 0);
      const n = safetensorsHeaderLength(lenBuf, size, path);
      const head = Buffer.alloc(n);
      readSync(fd, head, 0, n, 8);
      const dataStart = 8 + n;
      const parsed = parseSafetensorsHeader(head, size - dataStart, path, BYTES);
      const tensors = new Map<string, TensorInfo>();
      for (const e of parsed.entries) {
        tensors.set(e.name, { name: e.name, dtype: e.dtype as TensorDtype, shape: e.shape, offset: dataStart + e.begin, where: `${path}: tensor ${e.name}` });
      }
      const metadata = parsed.metadata;
      return new TensorFile(path, fd, tensors, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** A NumPy .npy file (format 1.0-3.0, C order, little-endian or byte-sized dtypes), one tensor named `name`. */
  static npy(path: string, name: string): TensorFile {
    const fd = openOrFail(path);
    try {
      const size = fstatSync(fd).size;
      const fail = (what: string): never => {
        throw new InputError(`${path}: ${what}`);
      };
      const pre = Buffer.alloc(12);
      const got = readSync(fd, pre, 0, 12, 0);
      if (got < 10 || pre.toString('latin1', 0, 6) !== '\x93NUMPY') fail('not a .npy file (bad magic)');
      const major = pre[6];
      const hlen = major === 1 ? pre.readUInt16LE(8) : pre.readUInt32LE(8);
      const hstart = major === 1 ? 10 : 12;
      if (hstart + hlen > size) fail('truncated header');
      const hb = Buffer.alloc(hlen);
      readSync(fd, hb, 0, hlen, hstart);
      const h = hb.toString('latin1');
      const descr = /'descr'\s*:\s*'([^']+)'/.exec(h)?.[1];
      const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(h)?.[1];
      const shapeStr = /'shape'\s*:\s*\(([^)]*)\)/.exec(h)?.[1];
      if (!descr || !fortran || shapeStr === undefined) fail(`unreadable header ${JSON.stringify(h.trim())}`);
      if (fortran === 'True') fail('fortran_order arrays are not supported (save with np.ascontiguousarray)');
      const shape = shapeStr!.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
      if (!shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`bad shape (${shapeStr})`);
      const dtype = NPY_DTYPES[descr!];
      if (!dtype) fail(`dtype ${descr} is not supported (little-endian numbers or bool; no objects/pickles)`);
      const offset = hstart + hlen;
      const need = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
      if (offset + need > size) fail(`truncated: shape (${shape.join(', ')}) ${descr} needs ${need} bytes of data, the file has ${size - offset}`);
      const info: TensorInfo = { name, dtype, shape, offset, where: `${path}` };
      return new TensorFile(path, fd, new Map([[name, info]]), {});
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get(name: string): TensorInfo | undefined {
    return this.tensors.get(name);
  }

  /**
   * Elements of rows [r0, r1) along the first axis (all of a 0-d/1-d tensor's leading axis).
   * `into` may lend the memory for float32 data, which is then read in place (see ReaderContext.scoreBuffer).
   */
  readRows(t: TensorInfo, r0: number, r1: number, into?: (bytes: number) => ArrayBuffer | null): Float32Array | Int32Array {
    const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
    const n = (r1 - r0) * row;
    const bytes = BYTES[t.dtype];
    const lent = t.dtype === 'F32' ? into?.(n * bytes) : null;
    // own ArrayBuffer at offset 0, filled below
    const buf = lent ? Buffer.from(lent, 0, n * bytes) : Buffer.allocUnsafeSlow(n * bytes);
    let done = 0;
    const pos = t.offset + r0 * row * bytes;
    while (done < buf.length) {
      const k = readSync(this.fd, buf, done, buf.length - done, pos + done);
      if (k <= 0) throw new InputError(`${t.where}: file ended while reading (truncated?)`);
      done += k;
    }
    return decode(buf, t.dtype, n, t.where);
  }

  readAll(t: TensorInfo): Float32Array | Int32Array {
    return this.readRows(t, 0, t.shape.length === 0 ? 1 : t.shape[0]);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

const NPY_DTYPES: Record<string, TensorDtype> = {
  '<f8': 'F64', '<f4': 'F32', '<f2': 'F16', '<i8': 'I64', '<i4': 'I32', '<i2': 'I16', '|i1': 'I8', '|u1': 'U8',
  '<u2': 'U16', '<u4': 'U32', '<u8': 'U64', '|b1': 'BOOL',
};

function openOrFail(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new InputError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}


function decode(buf: Buffer, dtype: TensorDtype, n: number, where: string): Float32Array | Int32Array {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // on little-endian machines 4-byte types are the file's bytes as they are: view them, no copy
  const aligned = LITTLE_ENDIAN && buf.byteOffset % 8 === 0;
  if (aligned && dtype === 'F32') return new Float32Array(buf.buffer, buf.byteOffset, n);
  if (aligned && dtype === 'I32') return new Int32Array(buf.buffer, buf.byteOffset, n);
  if (aligned && dtype === 'I64') {
    // fits in 32 bits iff the high word is the sign extension of the low word
    const w = new Int32Array(buf.buffer, buf.byteOffset, 2 * n);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const lo = w[2 * i];
      if (w[2 * i + 1] !== lo >> 31) checkBigInt(`${where}: element ${i}`, dv.getBigInt64(8 * i, true), -2147483648, 2147483647);
      out[i] = lo;
    }
    return out;
  }
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    case 'BF16':
    case 'F16':
      return decodeHalf(buf, 0, n * 2, dtype);
    case 'I64':
    case 'U64': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dtype === 'I64' ? dv.getBigInt64(8 * i, true) : dv.getBigUint64(8 * i, true);
        out[i] = checkBigInt(`${where}: element ${i}`, v, -2147483648, 2147483647);
      }
      return out;
    }
    case 'I32':
      return Int32Array.from({ length: n }, (_, i) => dv.getInt32(4 * i, true));
    case 'U32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dv.getUint32(4 * i, true);
        if (v > 2147483647) throw new InputError(`${where}: value ${v} at element ${i} does not fit in 32 bits`);
        out[i] = v;
      }
      return out;
    }
    case 'I16':
      return Int32Array.from({ length: n }, (_, i) => dv.getInt16(2 * i, true));
    case 'U16':
      return Int32Array.from({ length: n }, (_, i) => dv.getUint16(2 * i, true));
    case 'I8':
      return Int32Array.from({ length: n }, (_, i) => dv.getInt8(i));
    case 'U8':
    case 'BOOL':
      return Int32Array.from({ length: n }, (_, i) => dv.getUint8(i));
  }
}
