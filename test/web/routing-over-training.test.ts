import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastLoggedStep } from '../../scripts/routing-over-training.js';

test('routing-over-training labels model/ with the last step the run logged, not the planned step count', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-rot-'));
  try {
    const log = join(dir, 'train-log.jsonl');
    // a run planned for 1000 steps, stopped at 340 (its config says 1000)
    writeFileSync(log, [{ kind: 'eval', step: 0 }, { kind: 'train', step: 100 }, { kind: 'train', step: 340 }, { kind: 'eval', step: 200 }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    assert.equal(lastLoggedStep(log), 340);
    writeFileSync(log, '\n');
    assert.throws(() => lastLoggedStep(log), /no step recorded/);
    assert.throws(() => lastLoggedStep(join(dir, 'nope.jsonl')), /no training log/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
