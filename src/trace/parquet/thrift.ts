import { ByteSink } from './byte-sink.js';

/**
 * Thrift's compact protocol, the encoding of Parquet's footer and page headers
 * (https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md): just the
 * writing side, and just the types parquet.thrift uses here.
 */
export const enum TType {
  TRUE = 1,
  FALSE = 2,
  BYTE = 3,
  I16 = 4,
  I32 = 5,
  I64 = 6,
  BINARY = 8,
  LIST = 9,
  STRUCT = 12,
}

const utf8 = new TextEncoder();

export class ThriftWriter {
  readonly out = new ByteSink(256);
  private last = 0; // id of the previous field of the struct being written
  private readonly stack: number[] = [];

  private field(id: number, type: TType): void {
    const delta = id - this.last;
    if (delta > 0 && delta <= 15) this.out.byte((delta << 4) | type);
    else {
      this.out.byte(type);
      this.out.varint(zigzag(id));
    }
    this.last = id;
  }

  i32(id: number, v: number): this {
    this.field(id, TType.I32);
    this.out.varint(zigzag(v));
    return this;
  }

  /** i64 fields hold byte offsets and counts: non-negative and below 2^53. */
  i64(id: number, v: number): this {
    if (!(Number.isSafeInteger(v) && v >= 0)) throw new Error(`thrift i64: ${v}`);
    this.field(id, TType.I64);
    this.out.varint(2 * v); // zigzag of a non-negative number
    return this;
  }

  byte(id: number, v: number): this {
    this.field(id, TType.BYTE);
    this.out.byte(v & 255);
    return this;
  }

  bool(id: number, v: boolean): this {
    this.field(id, v ? TType.TRUE : TType.FALSE);
    return this;
  }

  binary(id: number, v: Uint8Array | string): this {
    this.field(id, TType.BINARY);
    this.bytes(v);
    return this;
  }

  /** A struct field; `body` writes its fields. */
  struct(id: number, body: (w: this) => void): this {
    this.field(id, TType.STRUCT);
    this.structBody(body);
    return this;
  }

  /** A list field of structs, one per item. */
  structList<T>(id: number, items: readonly T[], body: (w: this, item: T) => void): this {
    this.listHeader(id, TType.STRUCT, items.length);
    for (const it of items) this.structBody((w) => body(w, it));
    return this;
  }

  i32List(id: number, items: readonly number[]): this {
    this.listHeader(id, TType.I32, items.length);
    for (const v of items) this.out.varint(zigzag(v));
    return this;
  }

  binaryList(id: number, items: readonly string[]): this {
    this.listHeader(id, TType.BINARY, items.length);
    for (const v of items) this.bytes(v);
    return this;
  }

  /** The top-level struct. */
  message(body: (w: this) => void): Uint8Array {
    this.structBody(body);
    return this.out.bytes();
  }

  private structBody(body: (w: this) => void): void {
    this.stack.push(this.last);
    this.last = 0;
    body(this);
    this.out.byte(0); // stop
    this.last = this.stack.pop()!;
  }

  private listHeader(id: number, elem: TType, n: number): void {
    this.field(id, TType.LIST);
    if (n < 15) this.out.byte((n << 4) | elem);
    else {
      this.out.byte(0xf0 | elem);
      this.out.varint(n);
    }
  }

  private bytes(v: Uint8Array | string): void {
    const b = typeof v === 'string' ? utf8.encode(v) : v;
    this.out.varint(b.length);
    this.out.append(b);
  }
}

/** zigzag of a 32-bit integer (i32 and i16 fields, field ids). */
function zigzag(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}
