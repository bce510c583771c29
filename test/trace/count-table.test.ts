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

// addAll loads each block's slots before adding (so cache misses overlap): the same counts as one
// add per pair, including growth in the middle of a block and a range that starts past 0.
test('CountTable.addAll: the counts of add() over the same pairs, through growth', () => {
  let seed = 5;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);
  const n = 20_000;
  const a = Int32Array.from({ length: n }, () => Math.floor(rnd() * 40) * 32768 + Math.floor(rnd() * 8));
  const b = Int32Array.from({ length: n }, () => Math.floor(rnd() * rnd() * 3000) - 10);
  const bulk = new CountTable(4), one = new CountTable(4);
  bulk.addAll(a, b, 3, 11); // less than a block
  bulk.addAll(a, b, 11, n - 5);
  for (let i = 3; i < n - 5; i++) one.add(a[i], b[i]);
  const entries = (t: CountTable) => {
    const m: [number, number, number][] = [];
    t.forEach((x, y, c) => m.push([x, y, c]));
    return m.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  };
  assert.equal(bulk.size, one.size);
  assert.deepEqual(entries(bulk), entries(one));
});
