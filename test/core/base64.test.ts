import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { base64ByteLength, decodeBase64Bytes } from '../../src/util/base64.js';

/**
 * src/util/base64.ts decodes base64 text from its bytes (vLLM's routed_experts): where it decodes,
 * it must give Node's Buffer.from(text, 'base64') bytes, canonical text (padded or not) must always
 * decode, and what it refuses is left to Node; its byte count must be Buffer.byteLength's.
 */
test('decodeBase64Bytes: Node\'s bytes wherever it decodes, every canonical text decodes; base64ByteLength = Buffer.byteLength', () => {
  const junk = fc.constantFrom('=', '-', '_', ' ', '\n', '*', 'é', '==', 'A');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), fc.option(fc.tuple(fc.nat(), junk), { freq: 3 }), (raw, unpad, spliced) => {
      let text = Buffer.from(raw).toString('base64');
      if (unpad) text = text.replace(/=+$/, '');
      if (spliced) text = text.slice(0, spliced[0] % (text.length + 1)) + spliced[1] + text.slice(spliced[0] % (text.length + 1));
      const bytes = Buffer.from(text, 'utf8');
      const out = new Uint8Array(bytes.length);
      const n = decodeBase64Bytes(bytes, out);
      if (!spliced) assert.ok(n >= 0, `canonical text refused: ${text}`);
      if (n >= 0) assert.deepEqual(Buffer.from(out.subarray(0, n)), Buffer.from(text, 'base64'), text);
      if (/^[\x00-\x7f]*$/.test(text)) assert.equal(base64ByteLength(bytes), Buffer.byteLength(text, 'base64'), text);
    }),
    { numRuns: 3000 },
  );
  // too little room: refused, nothing claimed
  assert.equal(decodeBase64Bytes(Buffer.from('AAAA'), new Uint8Array(2)), -1);
});
