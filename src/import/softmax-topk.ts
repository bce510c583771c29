import { softmaxTopKWasmBase64 } from './softmax-topk-wasm.js';
import { bytesOfBase64 } from '../util/base64.js';

/**
 * The softmax top-k of router logits over many rows in WebAssembly (softmax-topk.wat): routing.ts's
 * SoftmaxTopK.row with its exps four at a time, the same bits (the .wat says how). The largest cost
 * of importing router logits was that row loop in JS, ~2.5 µs a row at 64 experts; SIMD is not
 * reachable from JS, and a scalar loop cannot drop V8's per-element checks.
 *
 * One instance per thread, made on first use. Rows go through its memory in chunks of about 1 MB
 * of scores (copies at memcpy speed); rows the kernel leaves (NaNs, extreme logits, ties) go to
 * the caller's plain loop.
 */
interface Exports {
  memory: WebAssembly.Memory;
  softmax_topk(scores: number, T: number, E: number, K: number, norm: number, experts: number, gates: number, fb: number): number;
}

const BASE = 65536; // the .wat's scratch is below
const MAX_E = 2048; // its ex[] scratch
const MAX_K = 11; // the K + 1 best are held in twelve lanes
const CHUNK_BYTES = 1 << 20;

let instance: Exports | null | undefined;

/** The kernel, once per thread; null without WebAssembly SIMD. */
function kernel(): Exports | null {
  if (instance !== undefined) return instance;
  instance = null;
  try {
    const bytes = bytesOfBase64(softmaxTopKWasmBase64);
    if (!WebAssembly.validate(bytes)) return null;
    instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as Exports;
  } catch {
    instance = null;
  }
  return instance;
}

/**
 * Rows t < T of scores [T][E]: experts and gates [T][K] by descending gate (renormalised over the
 * K when normTopk), as SoftmaxTopK.row writes them; `rest(t)` is called for each row the kernel
 * left. False (nothing written) when the kernel cannot take this shape (E not a multiple of 4 or
 * over 2048, K >= E or over 11) or WebAssembly SIMD is missing.
 */
export function softmaxTopKRows(scores: Float32Array, T: number, E: number, K: number, normTopk: boolean, experts: Int32Array, gates: Float32Array, rest: (t: number) => void): boolean {
  if (E % 4 !== 0 || E > MAX_E || K >= E || K > MAX_K || K < 1) return false;
  const k = kernel();
  if (!k) return false;
  const rowsPer = Math.max(1, Math.floor(CHUNK_BYTES / (E * 4)));
  const need = BASE + rowsPer * (E * 4 + K * 8 + 4);
  if (k.memory.buffer.byteLength < need) k.memory.grow(Math.ceil((need - k.memory.buffer.byteLength) / 65536));
  const mem = k.memory.buffer;
  for (let t0 = 0; t0 < T; t0 += rowsPer) {
    const n = Math.min(rowsPer, T - t0);
    const at = BASE, xAt = at + n * E * 4, gAt = xAt + n * K * 4, fAt = gAt + n * K * 4;
    new Float32Array(mem, at, n * E).set(scores.subarray(t0 * E, (t0 + n) * E));
    const left = k.softmax_topk(at, n, E, K, normTopk ? 1 : 0, xAt, gAt, fAt);
    experts.set(new Int32Array(mem, xAt, n * K), t0 * K);
    gates.set(new Float32Array(mem, gAt, n * K), t0 * K);
    const fb = new Int32Array(mem, fAt, left);
    for (let i = 0; i < left; i++) rest(t0 + fb[i]);
  }
  return true;
}

/**
 * Tests: the exps (float32) and their sum of the last row the kernel computed them for, read from
 * its scratch, to be checked bit for bit against softmax-exps.ts (the gates alone rarely show a
 * difference in the last bits of a float64 sum).
 */
export function lastRowExps(E: number): { ex: Float32Array; sum: number } | null {
  const k = kernel();
  if (!k) return null;
  return { ex: new Float32Array(k.memory.buffer, 16384, E).slice(), sum: new Float64Array(k.memory.buffer, 44032, 1)[0] };
}
