import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/moescope', import.meta.url));
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 300_000 });

interface Layer { layer: number; tokens: Record<string, number>; assignments: number; load: { share: number[] } }

/**
 * Two captures made apart (two "ranks", disjoint --first-sample ranges) merge into one trace whose
 * counts are the sums of the two: checked against each capture's own analysis, not against the
 * merged aggregates' code. Overlapping sample ids are refused with the way out.
 */
test('capture on two ranks with --first-sample, merge, analyze: counts add up', { timeout: 600_000 }, () => {
  const d = mkdtempSync(join(tmpdir(), 'moescope-merge-cli-'));
  try {
    const A = join(d, 'rank0'), B = join(d, 'rank1'), M = join(d, 'merged');
    for (const [out, data, first] of [[A, 'shapes:6:5', '0'], [B, 'shapes:5:6', '6']]) {
      const r = run(['capture', '--data', data, '--first-sample', first, '--out', out]);
      assert.equal(r.status, 0, r.stderr);
    }
    const clash = run(['merge', A, A, '--out', join(d, 'clash')]);
    assert.equal(clash.status, 2);
    assert.match(clash.stderr, /overlap.*--first-sample/);
    const m = run(['merge', A, B, '--out', M]);
    assert.equal(m.status, 0, m.stderr);
    const json = (t: string) => {
      const r = run(['analyze', t, '--layers', 'all', '--json']);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { layers: Layer[] };
    };
    const [a, b, merged] = [json(A), json(B), json(M)];
    for (const lm of merged.layers) {
      const la = a.layers.find((l) => l.layer === lm.layer)!, lb = b.layers.find((l) => l.layer === lm.layer)!;
      for (const g of ['text', 'image']) assert.equal(lm.tokens[g], la.tokens[g] + lb.tokens[g], `layer ${lm.layer} ${g}`);
      assert.equal(lm.assignments, la.assignments + lb.assignments);
      lm.load.share.forEach((s, e) => {
        const want = (la.load.share[e] * la.assignments + lb.load.share[e] * lb.assignments) / (la.assignments + lb.assignments);
        assert.ok(Math.abs(s - want) < 1e-9, `layer ${lm.layer} expert ${e}: ${s} vs ${want}`);
      });
    }
    const again = run(['merge', A, B, '--out', M]); // a merged trace is replaced by a merge
    assert.equal(again.status, 0, again.stderr);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
