import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { decode } from 'fast-png';
import { figureData } from '../../src/render/spec-data.js';
import { allocationFigure } from '../../src/render/spec.js';
import { renderFigure, specToSvg, svgToPng } from '../../src/render/figure.js';
import { artifact, darkPixels, makeCounts, svgBox } from './helpers.js';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/**
 * Chromium on a machine without DejaVu (or any font): fontconfig pointed at an empty font folder.
 * The <text> SVG loses its words there; the SVG that `plot` writes (text as glyph paths) must not.
 */
test('the SVG that plot writes shows its words in Chromium with no font installed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-nofont-'));
  const conf = join(dir, 'fonts.conf');
  writeFileSync(conf, `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig><dir>${join(dir, 'no-fonts')}</dir><cachedir>${join(dir, 'cache')}</cachedir></fontconfig>\n`);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS, headless: true, env: { ...process.env, FONTCONFIG_FILE: conf, HOME: dir } });
  t.after(async () => {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const counts = makeCounts([0, 16, 23], 8, ['text', 'image'], (li, e, g) => (g === 0 ? 10 + ((e * 5 + li) % 8) * 10 : 100 - ((e * 5 + li) % 8) * 10));
  const spec = allocationFigure(figureData(counts));
  const textSvg = await specToSvg(spec);
  const pathSvg = (await renderFigure(spec, 'svg')) as string;
  const { width, height } = svgBox(pathSvg);
  const page = await browser.newPage({ viewport: { width: Math.ceil(width), height: Math.ceil(height) }, deviceScaleFactor: 1 });
  const shot = async (svg: string) => {
    await page.setContent(`<html><body style="margin:0;background:white">${svg}</body></html>`);
    return new Uint8Array(await page.screenshot({ clip: { x: 0, y: 0, width: Math.ceil(width), height: Math.ceil(height) } }));
  };
  const withPaths = await shot(pathSvg);
  const withText = await shot(textSvg);
  writeFileSync(artifact('chromium-no-fonts-plot-svg.png'), withPaths);
  writeFileSync(artifact('chromium-no-fonts-text-svg.png'), withText);
  const reference = svgToPng(textSvg, 1); // resvg with the bundled DejaVu Sans
  const titles = (_x: number, y: number) => y < 28;
  const yTitle = (x: number, y: number, _w: number, h: number) => x < 28 && y > 40 && y < h - 40;
  for (const [name, region] of [['panel titles', titles], ['y title', yTitle]] as const) {
    const ref = darkPixels(reference, region);
    const paths = darkPixels(withPaths, region);
    const text = darkPixels(withText, region);
    assert.ok(ref > 100, `${name}: reference has words (${ref} dark px)`);
    assert.ok(text < ref * 0.3, `${name}: fonts really are missing in this Chromium (<text> SVG shows ${text} dark px vs ${ref})`);
    assert.ok(Math.abs(paths - ref) < ref * 0.15, `${name}: plot's SVG shows the words as with DejaVu (${paths} vs ${ref} dark px)`);
  }
  const img = decode(withPaths);
  assert.equal(img.width, Math.ceil(width));
});
