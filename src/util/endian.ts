/** Typed-array views read the bytes in the machine's order; the files moescope reads and writes are little-endian. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
