/**
 * The ArrayBuffer behind a typed array that spans all of it, else null. Only such a buffer may be
 * moved to another thread (postMessage's transfer list): moving it cannot take away bytes some
 * other view still needs, and posting a view of part of a buffer would copy the whole buffer.
 */
export function wholeBuffer(v: unknown): ArrayBuffer | null {
  return ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? v.buffer : null;
}
