import test from 'node:test';
import assert from 'node:assert/strict';
import { readSafetensors, writeSafetensors, halfToFloat } from '../../src/model/safetensors.js';
import { InputError } from '../../src/util/errors.js';

function header(obj: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('round trip keeps names, shapes and every value bit for bit', () => {
  const a = Float32Array.from({ length: 6 }, (_, i) => Math.fround(Math.PI * (i - 2.5)));
  const b = new Float32Array([1e-30, -0, Infinity]);
  const bytes = writeSafetensors([['a', { shape: [2, 3], data: a }], ['b', { shape: [3], data: b }]], { k: 'v' });
  const f = readSafetensors(bytes, 'x.safetensors');
  assert.deepEqual([...f.tensors.keys()], ['a', 'b']);
  assert.deepEqual(f.tensors.get('a')!.shape, [2, 3]);
  assert.deepEqual([...f.tensors.get('a')!.data], [...a]);
  assert.ok(Object.is(f.tensors.get('b')!.data[1], -0));
  assert.equal(f.metadata.k, 'v');
  // header length is a multiple of 8 after the 8-byte prefix, as the reference writer pads it
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
});

test('reads F16 and BF16 by their bit patterns', () => {
  // F16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 0x0001 = 2^-24
  const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]).buffer);
  // BF16: 1.0 = 0x3f80, -0.5 = 0xbf00, 3.140625 = 0x4049
  const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xbf00, 0x4049]).buffer);
  const data = new Uint8Array(f16.length + bf16.length);
  data.set(f16, 0);
  data.set(bf16, f16.length);
  const f = readSafetensors(header({ h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] }, b: { dtype: 'BF16', shape: [3], data_offsets: [8, 14] } }, data), 'm');
  assert.deepEqual([...f.tensors.get('h')!.data], [1, -2, 65504, 2 ** -24]);
  assert.deepEqual([...f.tensors.get('b')!.data], [1, -0.5, 3.140625]);
  assert.equal(halfToFloat(0x7c00), Infinity);
});

test('corrupt files are InputErrors that name the file and the problem', () => {
  const good = writeSafetensors([['w', { shape: [4], data: new Float32Array([1, 2, 3, 4]) }]]);
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, 5), /truncated/],
    [good.subarray(0, good.length - 4), /run past the end|truncated/],
    [header({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 20] } }, new Uint8Array(16)), /run past the end/],
    [header({ w: { dtype: 'F32', shape: [5], data_offsets: [0, 16] } }, new Uint8Array(16)), /needs 20 bytes/],
    [header({ w: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16)), /not supported/],
    [header({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /overlap/],
    [header({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(12)), /after the last tensor/],
  ];
  const bad = new Uint8Array(good);
  bad[9] = 0xff; // break the JSON
  cases.push([bad, /not valid JSON/]);
  for (const [bytes, re] of cases) {
    assert.throws(() => readSafetensors(bytes, 'dir/model.safetensors'), (e: unknown) => {
      assert.ok(e instanceof InputError, String(e));
      assert.match(e.message, /^dir\/model\.safetensors: /);
      assert.match(e.message, re);
      return true;
    });
  }
});
