import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, clearProgressLine } from '../../src/util/progress.js';

/** A stand-in for a terminal: records what is written. */
function fakeTty(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (s: string) => (writes.push(s), true) } as unknown as NodeJS.WriteStream };
}

test('an error on a terminal starts on a clean line: the unfinished progress line is cleared first', async () => {
  const { writes, stream } = fakeTty(true);
  const p = new Progress('capture', 10, 'samples', stream);
  (p as unknown as { start: number }).start = Date.now() - 5000; // as if it had run for 5 s
  p.update(3);
  assert.equal(writes.length, 1);
  assert.match(writes[0], /^\r\x1b\[Kcapture \[.*\] 3\/10 samples/);
  assert.doesNotMatch(writes[0], /\n$/, 'a terminal progress line stays open');
  clearProgressLine();
  assert.equal(writes[1], '\r\x1b[K', 'the line is cleared before the error is printed');
  clearProgressLine();
  assert.equal(writes.length, 2, 'nothing to clear twice');
});

test('a finished progress line, or one not on a terminal, is left alone', () => {
  const tty = fakeTty(true);
  const p = new Progress('train', 2, 'steps', tty.stream);
  (p as unknown as { start: number }).start = Date.now() - 5000;
  p.update(1);
  p.done();
  const n = tty.writes.length;
  clearProgressLine();
  assert.equal(tty.writes.length, n);

  const pipe = fakeTty(false);
  const q = new Progress('capture', 10, 'samples', pipe.stream);
  (q as unknown as { start: number }).start = Date.now() - 5000;
  q.update(3);
  assert.match(pipe.writes[0], /\n$/);
  clearProgressLine();
  assert.equal(pipe.writes.length, 1);
});
