import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser, openPage, screenshot, serve, type Served } from './harness.js';
import { writeSyntheticTrace } from './synthetic-trace.js';

/**
 * The dashboard on a model like the ones researchers study: 128 experts, 48 layers, top-8, text only,
 * with data domains (OLMoE-like), compared with a second checkpoint-like trace of the same tokens.
 * Every view renders with no console error, large matrices are canvases, cells and bars take
 * keyboard focus. Screenshots go to test-artifacts/many-*.png.
 */
const tmp = mkdtempSync(join(tmpdir(), 'moescope-many-'));
const A = join(tmp, 'olmoe-like-a');
const B = join(tmp, 'olmoe-like-b');
const DOMAINS = ['arxiv', 'github', 'wiki', 'books'];
let server: Served;
let browser: Browser;
let page: Page;
let errors: string[];

before(async () => {
  const o = { samples: 600, layers: 48, experts: 128, topK: 8, imageSize: 32, patchSize: 8, textOnly: true, domains: DOMAINS, tokenStrings: true };
  // The deepest layer is the most specialised by construction, and its router is planted near-uniform.
  await writeSyntheticTrace(A, { ...o, seed: 21, nearUniformLayer: 47 });
  await writeSyntheticTrace(B, { ...o, seed: 22 });
  server = await serve([A, '--compare', B], 120_000);
  browser = await launchBrowser();
  ({ page, errors } = await openPage(browser, server.url));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function show(hash: string, ready: string, timeout = 60_000): Promise<void> {
  await page.goto(`${server.url}#${hash}`);
  await page.waitForSelector(ready, { timeout });
}

/** The page never scrolls sideways: everything fits the window. */
async function fitsWindow(sel: string): Promise<void> {
  const { right, vw } = await page.$eval(sel, (e) => ({ right: e.getBoundingClientRect().right, vw: document.documentElement.clientWidth }));
  assert.ok(right <= vw + 1, `${sel} ends at ${right}px, the window is ${vw}px wide`);
}

describe('dashboard: 128 experts, 48 layers, top-8, text only with domains', () => {
  test('figure: grouped by domain (text-only fallback, said on the page), panels within the window', async () => {
    await page.waitForFunction(() => document.getElementById('figure')?.dataset.drawn !== undefined, undefined, { timeout: 60_000 });
    assert.match(await page.textContent('#view-figure .msg.fallback') ?? '', /only text tokens.*domain/);
    assert.equal(await page.$eval('#group-by', (s) => (s as HTMLSelectElement).value), 'domain');
    const legend = await page.$$eval('#figure svg text', (ts) => ts.map((t) => t.textContent));
    for (const d of ['Arxiv', 'Github', 'Wiki', 'Books']) assert.ok(legend.includes(d), `legend has ${d}`);
    await fitsWindow('#figure svg');
    await screenshot(page, 'many-figure');
    // All 48 layers: panels wrap, the figure and its legend stay within the window.
    await page.click('#view-figure button:text-is("all")', { noWaitAfter: true, timeout: 120_000 });
    await page.waitForFunction(() => document.getElementById('figure')?.dataset.panels?.split(',').length === 48, undefined, { timeout: 120_000 });
    // ~25,000 bars: drawn to a canvas, not one SVG node each.
    assert.equal(await page.$eval('#figure', (e) => (e as HTMLElement).dataset.renderer), 'canvas');
    await fitsWindow('#figure canvas');
    await screenshot(page, 'many-figure-all-layers');
    await page.click('#view-figure button:text-is("seed layers")');
    await page.waitForFunction(() => document.getElementById('figure')?.dataset.panels === '0,32,47');
  });

  test('keyboard: Tab reaches a bar, arrows move between bars, Enter opens the expert', async () => {
    const first = await page.$('#figure svg .focus-bar[tabindex="0"]');
    assert.ok(first, 'a focusable bar');
    await first.focus();
    const label0 = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '');
    await page.keyboard.press('ArrowRight');
    const label1 = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '');
    assert.ok(await page.evaluate(() => document.activeElement?.classList.contains('focus-bar')));
    assert.notEqual(label0, label1);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /^#expert\/\d+\/\d+$/.test(location.hash));
    await page.waitForSelector('#expert-examples[data-ready]');
  });

  test('expert drill-down: words by lift with counts, a word\u2019s contexts by gate', async () => {
    await show('expert/47/5', '#expert-examples[data-ready^="47/5/text"]');
    // its mix over the domains, from the figure's counts
    await page.waitForFunction(() => /^By domain: arxiv/.test(document.querySelector('.group-mix')?.textContent ?? ''));
    const rows = await page.$$eval('.word-lift tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    assert.ok(rows.length > 0);
    const lifts = rows.map((r) => Number(r[1].replace(/[^\d.]/g, '')));
    assert.deepEqual(lifts, [...lifts].sort((a, b) => b - a));
    assert.ok(rows.every((r) => /^\d+$/.test(r[2].replace(/,/g, '')) && /^\d+$/.test(r[3].replace(/,/g, ''))), 'counts beside each lift');
    assert.ok(rows.every((r) => !/^#\d+$/.test(r[0])), 'words from samples `tokens`, not #ids');
    await page.click('.word-lift tbody tr:first-child button.word');
    await page.waitForSelector('#examples-title button');
    await page.waitForFunction(() => document.querySelectorAll('ol.contexts li').length > 0);
    const gates = await page.$$eval('ol.contexts .gate', (gs) => gs.map((g) => Number((g.textContent ?? '').replace(/[^\d.]/g, ''))));
    assert.deepEqual(gates, [...gates].sort((a, b) => b - a));
    await screenshot(page, 'many-expert');
  });

  test('depth: group specialisation and load as canvas heatmaps, S/S0/I by layer', async () => {
    await show('depth', '#view-depth[data-ready] #depth-load-map canvas');
    await page.waitForSelector('#depth-share canvas');
    await page.waitForSelector('#depth-metrics svg');
    // The headline never names a near-uniform layer as the most specialised: 47 scores highest but is a near-tie.
    await page.waitForFunction(() => /Most specialised layer: \d+/.test(document.getElementById('depth-headline')?.textContent ?? ''), undefined, { timeout: 120_000 });
    const headline = await page.textContent('#depth-headline') ?? '';
    assert.doesNotMatch(headline, /Most specialised layer: 47 /);
    assert.match(headline, /Layer 47 scored higher but has a near-uniform router/);
    const deadCells = await page.$$eval('#view-depth table.metrics tbody tr td:nth-child(10)', (tds) => tds.map((t) => t.textContent));
    assert.ok(deadCells.every((t) => /^\d+$/.test(t ?? '')), 'dead is a count');
    await screenshot(page, 'many-depth');
  });

  test('router: confidence, repeat rate and token specialisation by layer; the near-uniform layer is flagged', async () => {
    await show('router', '#view-router[data-ready]', 120_000);
    assert.match(await page.textContent('#router-warning') ?? '', /Near-uniform router at layer 47:/);
    for (const id of ['#router-confidence svg', '#router-repeat svg', '#router-token-spec svg']) assert.ok(await page.$(id), id);
    await screenshot(page, 'many-router');
  });

  test('co-activation: a 128 x 128 canvas; keyboard moves over cells and opens one', async () => {
    await show('coactivation', '#coactivation canvas', 120_000);
    await page.focus('#coactivation canvas');
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => /^experts 0 and 1: /.test(document.getElementById('coactivation-cell')?.textContent ?? ''));
    assert.equal(await page.$eval('#coactivation canvas', (c) => (c as HTMLElement).dataset.cursor), '0,1');
    await screenshot(page, 'many-coactivation');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /^#expert\/\d+\/1$/.test(location.hash));
  });

  test('flow between two layers: one canvas, not thousands of DOM nodes', async () => {
    await show('flow', '#flow canvas', 60_000);
    const nodes = await page.$$eval('#view-flow *', (n) => n.length);
    assert.ok(nodes < 200, `${nodes} DOM nodes in the flow view`);
    const size = await page.$eval('#flow canvas', (c) => [(c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height]);
    assert.ok(size[0] >= 128 * 2 && size[1] >= 128 * 2);
    await screenshot(page, 'many-flow');
  });

  test('compare: S, saturation and load per layer for each trace, with the matching warning', async () => {
    await show('compare', '#view-compare[data-ready]', 120_000);
    assert.match(await page.textContent('#compare-warning') ?? '', /records no model/);
    for (const id of ['#compare-s svg', '#compare-saturation svg', '#compare-cv svg', '#compare-diff-map canvas']) assert.ok(await page.$(id), id);
    await screenshot(page, 'many-compare');
  });

  test('sample: words from samples `tokens`, the domain, a legend of the experts it uses', async () => {
    await show('sample/2', '#sample-detail .sample-detail[data-ready]');
    assert.match(await page.textContent('.sample-heading .source') ?? '', /domain wiki/);
    const words = await page.$$eval('#sample-detail button.token:not(.special)', (bs) => bs.map((b) => b.textContent ?? ''));
    assert.ok(words.length > 0 && words.every((w) => /^[a-z]+$/.test(w)), words.join(' '));
    const legend = await page.$$eval('#sample-detail .legend-item', (b) => b.length);
    assert.ok(legend >= 1 && legend <= words.length + 2, `${legend} legend items`);
    await screenshot(page, 'many-sample');
  });

  test('playground: says which model it runs and refuses to pretend on an imported trace', async () => {
    await show('playground', '#playground-refusal .msg.warning');
    assert.match(await page.textContent('#playground-refusal') ?? '', /names no model/);
    assert.equal(await page.$eval('#view-playground .playground', (e) => (e as HTMLElement).hidden), true);
    assert.match(await page.textContent('#playground-model') ?? '', /not the model of trace olmoe-like-a/);
    await screenshot(page, 'many-playground');
  });

  test('no console errors on any view', () => {
    assert.deepEqual(errors, []);
  });
});

describe('dashboard: text only without domains, and imported images without pixels', () => {
  test('a text-only trace without domains shows load views and says so', async () => {
    const dir = join(tmp, 'text-only');
    await writeSyntheticTrace(dir, { samples: 80, layers: 6, experts: 64, topK: 4, imageSize: 32, patchSize: 8, textOnly: true, seed: 5 });
    const s = await serve([dir]);
    const b = await openPage(browser, s.url);
    try {
      await b.page.waitForFunction(() => document.getElementById('figure')?.dataset.kind === 'load', undefined, { timeout: 60_000 });
      assert.match(await b.page.textContent('#view-figure .msg.fallback') ?? '', /no data domain.*load/);
      await screenshot(b.page, 'many-text-only-load');
      await b.page.goto(`${s.url}#depth`);
      await b.page.waitForSelector('#depth-load-map canvas');
      assert.deepEqual(b.errors, []);
    } finally {
      await b.page.close();
      await s.stop();
    }
  });

  test('a sample whose image was not stored: its patch grid alone, no error', async () => {
    const dir = join(tmp, 'no-pixels');
    await writeSyntheticTrace(dir, { samples: 8, layers: 4, experts: 8, topK: 2, imageSize: 32, patchSize: 8, seed: 6, noStoredImages: true, tokenStrings: true });
    const s = await serve([dir]);
    const b = await openPage(browser, s.url);
    try {
      await b.page.goto(`${s.url}#sample/0`);
      await b.page.waitForSelector('#sample-detail .sample-detail[data-ready] canvas.patches');
      assert.equal(await b.page.$('#sample-detail canvas.photo'), null);
      assert.match(await b.page.textContent('#sample-detail figcaption') ?? '', /4\u00d74 patches · patch grid only/);
      assert.equal(await b.page.$('#sample-detail .msg.error'), null);
      const words = await b.page.$$eval('#sample-detail button.token', (bs) => bs.map((x) => x.textContent ?? ''));
      assert.ok(words.length > 0 && words.every((w) => !/^#\d+$/.test(w)), `words: ${words.join(' ')}`);
      await screenshot(b.page, 'many-sample-no-pixels');
      // The expert drill-down draws such example patches in their grid, without asking for a missing PNG.
      await b.page.goto(`${s.url}#expert/3/0`);
      await b.page.waitForSelector('#expert-examples[data-ready^="3/0/image"] button.patch-thumb canvas');
      assert.deepEqual(b.errors, []);
    } finally {
      await b.page.close();
      await s.stop();
    }
  });
});
