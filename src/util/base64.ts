/** The bytes of a base64 string (the generated *-wasm.ts modules); atob, so the browser runs it too. */
export function bytesOfBase64(base64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}
