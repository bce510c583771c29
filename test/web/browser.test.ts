import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import type { Browser, Page } from 'playwright-core';
import { loadCheckpoint } from '../../src/io/checkpoint-files.js';
import { encodeSample } from '../../src/data/encode.js';
import { forwardInference } from '../../src/model/efmoe.js';
import { BIN, ROOT, launchBrowser, openPage, screenshot, serve, type Served } from './harness.js';
import { writeSyntheticTrace } from './synthetic-trace.js';

/**
 * The dashboard in real Chromium over a trace captured with the bundled model (like `moescope demo`),
 * compared with a synthetic second trace. One server and one browser for the whole file.
 */
const tmp = mkdtempSync(join(tmpdir(), 'moescope-ui-'));
const traceA = join(tmp, 'demo-trace');
const traceB = join(tmp, 'synthetic');
let server: Served;
let browser: Browser;
let page: Page;
let errors: string[];

async function panelTitles(p: Page): Promise<string[]> {
  return p.$$eval('#figure svg text', (ts) => ts.map((t) => t.textContent ?? '').filter((s) => /^Layer \d+$/.test(s)));
}

async function waitPanels(p: Page, panels: string): Promise<void> {
  await p.waitForFunction((want) => document.getElementById('figure')?.dataset.panels === want && document.querySelectorAll('#figure svg').length > 0, panels, { timeout: 15_000 });
}

before(async () => {
  const cap = spawnSync(process.execPath, [BIN, 'capture', '--data', 'shapes:32', '--out', traceA], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(cap.status, 0, `capture failed: ${cap.stderr}`);
  await writeSyntheticTrace(traceB, { samples: 24, layers: 24, experts: 8, topK: 1, imageSize: 32, patchSize: 8, seed: 11 });
  server = await serve([traceA, '--compare', traceB]);
  browser = await launchBrowser();
  ({ page, errors } = await openPage(browser, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('dashboard in Chromium', () => {
  test('the page loads the trace with the seed panels and no console errors', async () => {
    await waitPanels(page, '0,16,23');
    assert.deepEqual(await panelTitles(page), ['Layer 0', 'Layer 16', 'Layer 23']);
    assert.match(await page.textContent('header') ?? '', /demo-trace · 24 layers · 8 experts · top-1/);
    assert.ok(await page.$('#figure svg text >> text=% of I/T tokens'));
    await screenshot(page, 'figure');
    assert.deepEqual(errors, []);
  });

  test('hovering a bar shows its counts and shares', async () => {
    const bar = await page.$('#figure svg path[aria-roledescription="bar"], #figure svg .mark-rect path');
    assert.ok(bar, 'no bar found');
    await bar.hover();
    await page.waitForSelector('#vg-tooltip-element.visible', { timeout: 5000 });
    const tip = await page.textContent('#vg-tooltip-element');
    assert.match(tip ?? '', /Layer\s*0/);
    assert.match(tip ?? '', /Count/);
    assert.match(tip ?? '', /%/);
  });

  test('changing the layer (keyboard on the slider, or a layer chip) changes the panels', async () => {
    await page.focus('input.layer-slider');
    await page.keyboard.press('ArrowLeft');
    await waitPanels(page, '22');
    assert.deepEqual(await panelTitles(page), ['Layer 22']);
    await page.click('.chips button:text-is("5")');
    await waitPanels(page, '5,22');
    assert.deepEqual(await panelTitles(page), ['Layer 5', 'Layer 22']);
    await page.selectOption('#normalize', 'modality');
    await page.waitForFunction(() => [...document.querySelectorAll('#figure svg text')].some((t) => /^% of .*modality/.test(t.textContent ?? '')));
    await screenshot(page, 'figure-layers-5-22-modality');
    await page.selectOption('#normalize', 'expert');
    // Analyse special tokens too: a third modality in the legend.
    await page.click('#view-figure button.chip:text-is("special")');
    await page.waitForFunction(() => [...document.querySelectorAll('#figure svg text')].some((t) => t.textContent === 'Special'));
    await page.click('#view-figure button.chip:text-is("special")');
    await page.waitForFunction(() => ![...document.querySelectorAll('#figure svg text')].some((t) => t.textContent === 'Special'));
    await page.click('button:text-is("seed layers")');
    await waitPanels(page, '0,16,23');
  });

  test('clicking a bar opens the expert drill-down with example patches', async () => {
    const bar = await page.$('#figure svg path[aria-roledescription="bar"], #figure svg .mark-rect path');
    await bar!.click();
    await page.waitForFunction(() => /^#expert\/0\/\d+$/.test(location.hash));
    const expert = Number(await page.evaluate(() => location.hash.split('/')[2]));
    await page.waitForFunction((e) => document.getElementById('expert-examples')?.dataset.ready?.startsWith(`0/${e}/`), expert);
    assert.match(await page.textContent('.expert-summary h2') ?? '', new RegExp(`expert ${expert}\\s*at layer 0`));
    await page.waitForSelector('#expert-examples canvas', { timeout: 5000 });
    await screenshot(page, 'expert');
    // An example patch opens its sample with that patch selected.
    await page.click('#expert-examples button.patch-thumb');
    await page.waitForFunction(() => /^#sample\/\d+\/\d+$/.test(location.hash));
    const [, sample, pos] = (await page.evaluate(() => location.hash)).split('/').map(Number);
    await page.waitForSelector('.token-info h3');
    assert.match(await page.textContent('.token-info h3') ?? '', new RegExp(`^Position ${pos}: patch \\d+ of image \\d+`));
    assert.match(await page.textContent('.sample-heading h2') ?? '', new RegExp(`Sample ${sample}`));
  });

  test('sample drill-down: patches tinted by the expert at the chosen layer, tokens coloured the same, details per layer', async () => {
    await page.goto(`${server.url}#sample/1`);
    await page.waitForSelector('#sample-detail .sample-detail[data-ready] canvas.patches');
    const layer = Number(await page.textContent('#view-sample .slider-value'));
    const api = await (await fetch(`${server.url}api/samples/1`)).json();
    const li = api.layers.indexOf(layer);
    // Expert colours as the legend shows them.
    const legend: string[] = await page.$$eval('#sample-detail .legend .swatch', (s) => s.map((x) => getComputedStyle(x).backgroundColor));
    const rgb = (css: string) => css.match(/\d+/g)!.slice(0, 3).map(Number);
    const png = decode(new Uint8Array(await (await fetch(`${server.url}api/samples/1/images/0.png`)).arrayBuffer()));
    const canvasInfo = await page.$eval('canvas.patches', (c) => {
      const cv = c as HTMLCanvasElement;
      return { w: cv.width, px: Array.from(cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data) };
    });
    const patches = api.tokens.filter((t: any) => t.image === 0);
    const side = Math.sqrt(patches.length);
    const cell = canvasInfo.w / side, scale = canvasInfo.w / png.width;
    const distinct = new Set<number>();
    for (const t of patches) {
      const e = t.experts[li][0];
      distinct.add(e);
      const x = Math.floor(((t.token % side) + 0.5) * cell) + 2, y = Math.floor((Math.floor(t.token / side) + 0.5) * cell) + 2;
      const sx = Math.floor(x / scale), sy = Math.floor(y / scale);
      const ch = png.channels ?? 3;
      const img = [0, 1, 2].map((k) => png.data[(sy * png.width + sx) * ch + k]);
      void img;
      // The expert map is opaque (the image is beside it): the patch's pixel is its expert's colour, not mixed with the shape's own.
      const tint = rgb(legend[e]);
      const got = [0, 1, 2].map((k) => canvasInfo.px[(y * canvasInfo.w + x) * 4 + k]);
      for (let k = 0; k < 3; k++) assert.ok(Math.abs(got[k] - tint[k]) <= 2, `patch ${t.token}: pixel ${got} is not expert ${e}'s colour ${tint}`);
    }
    // The image itself is drawn beside the map, unmixed.
    assert.ok(await page.$('#sample-detail canvas.photo'), 'the image beside the expert map');
    // Text tokens carry the same colours.
    const tokenColours: [string, string][] = await page.$$eval('#sample-detail button.token:not(.special)', (bs) => bs.map((b) => [(b as HTMLElement).dataset.expert!, getComputedStyle(b).backgroundColor]));
    assert.ok(tokenColours.length > 0);
    for (const [e, col] of tokenColours) assert.equal(col, legend[Number(e)]);
    await screenshot(page, 'sample-tinted');

    // Click a patch: its experts and gates at every layer.
    const box = (await (await page.$('canvas.patches'))!.boundingBox())!;
    await page.mouse.click(box.x + box.width * (1.5 / side), box.y + box.height * (0.5 / side)); // patch 1
    await page.waitForSelector('.token-info table.routing');
    assert.match(await page.textContent('.token-info h3') ?? '', /patch 1 of image 0/);
    const rows: string[] = await page.$$eval('.token-info table.routing tbody tr', (trs) => trs.map((tr) => tr.querySelector('td')!.textContent ?? ''));
    assert.equal(rows.length, 24);
    const p1 = patches.find((t: any) => t.token === 1);
    rows.forEach((txt, i) => assert.match(txt, new RegExp(`^${p1.experts[i][0]} ${Math.round(100 * p1.gates[i][0])}%`)));
    // Keyboard: arrow keys move along the patches.
    await page.focus('canvas.patches');
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => /patch 5 of image 0/.test(document.querySelector('.token-info h3')?.textContent ?? ''));
    // Another layer re-tints.
    await page.focus('#view-sample input.layer-slider');
    await page.keyboard.press('Home');
    await page.waitForFunction(() => (document.querySelector('canvas.patches') as HTMLElement).dataset.layer === '0');
    await screenshot(page, 'sample-layer0-selected');
    assert.ok(distinct.size >= 1);
  });

  test('depth, flow and compare views draw their charts', async () => {
    for (const [hash, sel] of [['depth', '#depth-share canvas'], ['depth', '#depth-metrics svg'], ['flow', '#flow canvas'], ['compare', '#compare-cv svg']] as const) {
      await page.goto(`${server.url}#${hash}`);
      await page.waitForSelector(sel, { timeout: 20_000 });
      await screenshot(page, hash);
    }
    // A captured trace and a synthetic one: different models, so experts are not matched by id, and the page says so.
    assert.match(await page.$eval('#compare-warning', (e) => e.textContent ?? ''), /different model configuration|different number of experts|records no model/);
    assert.deepEqual(errors, []);
  });

  test('a sample or layer that does not exist shows the reason in the page', async () => {
    await page.goto(`${server.url}#sample/99999`);
    await page.waitForSelector('#view-sample .msg.error');
    assert.match(await page.textContent('#view-sample .msg.error') ?? '', /sample 99999 does not exist/);
    await page.goto(`${server.url}#expert/99/0`);
    await page.waitForSelector('#view-expert .msg.error');
    assert.match(await page.textContent('#view-expert .msg.error') ?? '', /layer 99 does not exist/);
    // The only console errors are the browser's own notes about the 404 responses.
    assert.deepEqual(errors.filter((e) => !/status of 404/.test(e)), []);
  });

  test('the playground routes a drawn image in the browser exactly as the Node model does', async () => {
    await page.goto(`${server.url}#playground`);
    // It says which model it runs: the checkpoint this trace was captured with.
    await page.waitForSelector('#playground-model');
    assert.match(await page.textContent('#playground-model') ?? '', /Model: efmoe-shapes .*the model of trace demo-trace\./);
    assert.equal(await page.$('#playground-refusal .msg'), null);
    await page.waitForSelector('#view-playground[data-routed]', { timeout: 30_000 });
    const before = Number(await page.$eval('#view-playground', (e) => (e as HTMLElement).dataset.routed));
    await page.fill('input.caption', 'a red circle left of a blue square');
    const c = (await (await page.$('canvas.draw'))!.boundingBox())!;
    await page.mouse.move(c.x + 20, c.y + 30);
    await page.mouse.down();
    await page.mouse.move(c.x + c.width - 20, c.y + c.height - 30, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction((n) => Number(document.getElementById('view-playground')!.dataset.routed) > n, before, { timeout: 15_000 });
    await page.waitForSelector('#playground-detail canvas.patches');
    await page.waitForSelector('#playground-figure svg');
    const run = await page.$eval('#view-playground', (e) => {
      const r = (e as HTMLElement & { lastRun: { image: { width: number; height: number; data: Uint8Array }; caption: string; detail: { tokens: { experts: number[][]; word: string | null }[] } } }).lastRun;
      return { image: { width: r.image.width, height: r.image.height, data: Array.from(r.image.data) }, caption: r.caption, tokens: r.detail.tokens };
    });
    assert.equal(run.caption, 'a red circle left of a blue square');
    assert.deepEqual(run.tokens.filter((t) => t.word && !t.word.startsWith('<')).map((t) => t.word).join(' '), 'a red circle left of a blue square');
    // The drawn stroke changed the image the model saw (not all white).
    assert.ok(run.image.data.some((v) => v < 200));
    const meta = JSON.parse(readFileSync(join(traceA, 'meta.json'), 'utf8'));
    const ck = loadCheckpoint(meta.model.path);
    const seq = encodeSample({ parts: [{ image: { width: run.image.width, height: run.image.height, data: Uint8Array.from(run.image.data) } }, { text: run.caption }], source: 'test' }, ck.tokenizer, ck.config);
    const res = forwardInference(ck, [seq]);
    const K = ck.config.num_experts_per_tok;
    assert.equal(run.tokens.length, seq.T);
    for (let t = 0; t < seq.T; t++) {
      for (let l = 0; l < res.layers.length; l++) {
        assert.deepEqual(run.tokens[t].experts[l], Array.from(res.layers[l].experts.subarray(t * K, t * K + K)), `token ${t} layer ${l}`);
      }
    }
    await screenshot(page, 'playground');
    // Upload an image file instead (a sample image of the trace).
    const n = Number(await page.$eval('#view-playground', (e) => (e as HTMLElement).dataset.routed));
    const png = new Uint8Array(await (await fetch(`${server.url}api/samples/0/images/0.png`)).arrayBuffer());
    await page.setInputFiles('#view-playground input[type=file]', { name: 'shape.png', mimeType: 'image/png', buffer: Buffer.from(png) });
    await page.waitForFunction((k) => Number(document.getElementById('view-playground')!.dataset.routed) > k, n, { timeout: 15_000 });
    assert.deepEqual(errors.filter((e) => !/status of 404/.test(e)), []);
  });
});
