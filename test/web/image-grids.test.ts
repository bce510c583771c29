import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, launchBrowser, openPage, serve } from './harness.js';

/**
 * Qwen3-VL-style captures record each image's grid of merged patches ([t, h, w], not square): the
 * sample API hands the grid of every image to the page, and the page draws the expert map with
 * that many rows and columns, so patches are tinted in place (issue 10).
 */
test('per-image patch grids of an imported VLM trace reach the sample view', { timeout: 180_000 }, async () => {
  const capture = join(ROOT, 'test/fixtures/families/qwen3_vl_moe-4x/capture');
  const manifest = JSON.parse(readFileSync(join(capture, 'moescope_routing.json'), 'utf8')) as { batches: { image_grids?: number[][][] }[] };
  // the grids as the helper wrote them, batch by batch, sample by sample (independent of the importer)
  const want = manifest.batches.flatMap((b) => b.image_grids ?? []);
  assert.ok(want.some((g) => g.some(([, h, w]) => h !== w)), 'the fixture has a non-square grid');
  const tmp = mkdtempSync(join(tmpdir(), 'moescope-grids-'));
  const trace = join(tmp, 'trace');
  const r = spawnSync(process.execPath, [BIN, 'import', 'hf', capture, '--out', trace], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const server = await serve([trace]);
  const browser = await launchBrowser();
  try {
    for (let s = 0; s < want.length; s++) {
      const detail = await (await fetch(`${server.url}api/samples/${s}`)).json() as { imageGrids: number[][] | null };
      assert.deepEqual(detail.imageGrids, want[s], `sample ${s}`);
    }
    const s = want.findIndex((g) => g.length > 0 && g[0][1] !== g[0][2]);
    const [t, h, w] = want[s][0];
    const { page, errors } = await openPage(browser, `${server.url}#sample/${s}`);
    await page.waitForSelector('canvas.patches', { timeout: 30_000 });
    const caption = await page.textContent('figure:has(canvas.patches) figcaption');
    assert.match(caption ?? '', new RegExp(`${t * h}\\u00d7${w} patches`));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
});
