import test from 'node:test';
import assert from 'node:assert/strict';
import { CountTable } from '../../src/trace/count-table.js';

// The writer's per-token counts: the table must give what a Map of the same adds gives, through
// growth from a small capacity, counts past 2^32 (two words), and clear.
test('CountTable: the counts of a Map over the same adds, through growth, counts past 2^32 and clear', () => {
  let seed = 11;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);
  const table = new CountTable(4);
  const ref = new Map<string, number>();
  const add = (a: number, b: number, by = 1) => {
    table.add(a, b, by);
    ref.set(`${a},${b}`, (ref.get(`${a},${b}`) ?? 0) + by);
  };
  for (let i = 0; i < 50_000; i++) {
    // a few hot keys (as frequent tokens are) and many rare ones; b may be negative or large
    const hot = rnd() < 0.5;
    const a = hot ? Math.floor(rnd() * 3) : Math.floor(rnd() * 655_360_000);
    const b = hot ? 7 : Math.floor(rnd() * 2 ** 32) - 2 ** 31;
    add(a, b);
  }
  add(5, -1, 0xffffffff); // low word full, then carried
  add(5, -1, 2);
  add(6, 9, 3 * 2 ** 32 + 5);
  add(6, 9, 2 ** 32 - 1);
  const got = new Map<string, number>();
  table.forEach((a, b, n) => {
    assert.ok(!got.has(`${a},${b}`), `entry ${a},${b} twice`);
    got.set(`${a},${b}`, n);
  });
  assert.equal(table.size, ref.size);
  assert.deepEqual(new Map([...got].sort()), new Map([...ref].sort()));
  assert.equal(got.get('5,-1'), 0xffffffff + 2);
  assert.equal(got.get('6,9'), 4 * 2 ** 32 + 4);
  table.clear();
  assert.equal(table.size, 0);
  let n = 0;
  table.forEach(() => n++);
  assert.equal(n, 0);
  table.add(1, 2);
  table.forEach((a, b, c) => assert.deepEqual([a, b, c], [1, 2, 1]));
});
