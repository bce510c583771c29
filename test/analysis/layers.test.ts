import test from 'node:test';
import assert from 'node:assert/strict';
import { figureLayers, resolveLayers } from '../../src/analysis/layers.js';
import { expertOrder } from '../../src/analysis/allocation.js';
import type { Counts } from '../../src/analysis/types.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test('default figure layers: first, round(2L/3), last', () => {
  assert.deepEqual(figureLayers(24), [0, 16, 23]);
  assert.deepEqual(figureLayers(12), [0, 8, 11]);
  assert.deepEqual(figureLayers(2), [0, 1]);
  assert.deepEqual(resolveLayers(undefined, range(24), 24, 'figure', 't'), [0, 16, 23]);
  // only odd layers are MoE: the nearest routed layers (ties to the lower)
  assert.deepEqual(resolveLayers(undefined, [1, 3, 5, 7, 9, 11], 12, 'figure', 't'), [1, 7, 11]);
  assert.deepEqual(resolveLayers('all', [1, 3], 4, 'figure', 't'), [1, 3]);
  assert.deepEqual(resolveLayers('3, 0-2', range(4), 4, 'figure', 't'), [3, 0, 1, 2]);
  assert.throws(() => resolveLayers('5', range(4), 4, 'figure', 'x.parquet'), /x\.parquet: layer 5 is not in the trace/);
  assert.throws(() => resolveLayers('a', range(4), 4, 'figure', 't'), /--layers/);
});

test('expert order: by descending text share, ties by id, empty experts last; by load; by id', () => {
  // E = 5, [text, image]: e0 1:1, e1 3:1, e2 none, e3 1:1 (tie with e0), e4 0:5
  const n = new Float64Array([1, 1, 3, 1, 0, 0, 2, 2, 0, 5]);
  const c: Counts = { mode: 'all', numExperts: 5, topK: 1, layers: [0], modalities: ['text', 'image'], n, tokens: new Float64Array(2) };
  assert.deepEqual(expertOrder(c, 0, 'text'), [1, 0, 3, 4, 2]);
  assert.deepEqual(expertOrder(c, 0, 'image'), [4, 0, 3, 1, 2]);
  assert.deepEqual(expertOrder(c, 0, 'load'), [4, 1, 3, 0, 2]);
  assert.deepEqual(expertOrder(c, 0, 'id'), [0, 1, 2, 3, 4]);
});
