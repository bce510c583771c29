import test from 'node:test';
import assert from 'node:assert/strict';
import { decode } from 'fast-png';
import { compile } from 'vega-lite';
import type { Counts } from '../../src/analysis/types.js';
import { figureData } from '../../src/render/spec-data.js';
import { allocationFigure } from '../../src/render/spec.js';
import { specToSvg, svgToPng } from '../../src/render/figure.js';
import { hue, legendLabels, parsePanels } from './svg-parse.js';
import { darkPixels } from './helpers.js';

/** Counts from a table [layer][expert] = [text, image]. */
function counts(layers: number[], table: number[][][], modalities = ['text', 'image']): Counts {
  const E = table[0].length, M = modalities.length;
  const n = new Float64Array(layers.length * E * M);
  table.forEach((rows, li) => rows.forEach((r, e) => r.forEach((v, m) => (n[(li * E + e) * M + m] = v))));
  return { mode: 'all', numExperts: E, topK: 1, layers, modalities, n, tokens: new Float64Array(layers.length * M) };
}

// text shares: layer 0: .9 .75 .5 .75 -> order 0 1 3 2 (1 and 3 tie: lower id first)
//              layer 16: .25, none, .5, 0 -> order 2 0 3, then the empty expert 1
//              layer 23: 0 1 .2 .5 -> order 1 3 2 0
const SEEDLIKE = counts([0, 16, 23], [
  [[9, 1], [3, 1], [1, 1], [6, 2]],
  [[1, 3], [0, 0], [2, 2], [0, 5]],
  [[0, 4], [5, 0], [1, 4], [1, 1]],
]);
const ORDER: Record<string, string[]> = { 'Layer 0': ['0', '1', '3', '2'], 'Layer 16': ['2', '0', '3', '1'], 'Layer 23': ['1', '3', '2', '0'] };
const TEXT_SHARE: Record<string, number[]> = { 'Layer 0': [0.9, 0.75, 0.5, 0.75], 'Layer 16': [0.25, NaN, 0.5, 0], 'Layer 23': [0, 1, 0.2, 0.5] };

test('the default figure has the seed structure: panels, axes, ticks, one label per expert, sort order', async () => {
  const svg = await specToSvg(allocationFigure(figureData(SEEDLIKE)));
  const panels = parsePanels(svg);
  assert.deepEqual(panels.map((p) => p.title), ['Layer 0', 'Layer 16', 'Layer 23']);
  assert.ok(panels[0].x < panels[1].x && panels[1].x < panels[2].x, 'side by side, left to right');
  assert.equal(new Set(panels.map((p) => p.y)).size, 1, 'one row');
  assert.equal(panels[0].yTitle, '% of I/T tokens');
  for (const p of panels) {
    assert.equal(p.xTitle, 'Experts');
    assert.deepEqual(p.yLabels, ['0', '25', '50', '75', '100'], p.title);
    assert.deepEqual(p.xLabels.map((l) => l.text), ORDER[p.title], `${p.title} order`);
    // bars sit over their labels, in the same order
    const barOrder = [...new Set(p.bars.sort((a, b) => a.x - b.x).map((b) => String(b.expert)))];
    assert.deepEqual(barOrder, ORDER[p.title].filter((e) => !Number.isNaN(TEXT_SHARE[p.title][Number(e)])));
  }
  assert.deepEqual(legendLabels(svg), ['Text', 'Image']);
});

test('bars are 100%-stacked, Text (orange/gold) at the bottom, Image (teal) on top, heights = shares', async () => {
  const panels = parsePanels(await specToSvg(allocationFigure(figureData(SEEDLIKE))));
  for (const p of panels) {
    for (let e = 0; e < 4; e++) {
      const share = TEXT_SHARE[p.title][e];
      if (Number.isNaN(share)) continue;
      const text = p.bars.find((b) => b.expert === e && b.label === 'Text')!;
      const image = p.bars.find((b) => b.expert === e && b.label === 'Image')!;
      const total = text.h + image.h;
      assert.ok(Math.abs(total - p.bars[0].h - (p.bars.find((b) => b.expert === p.bars[0].expert && b !== p.bars[0])?.h ?? 0)) < 1e-6, 'every bar is as tall as the others');
      assert.ok(Math.abs(text.h / total - share) < 1e-9, `${p.title} expert ${e}: text ${text.h / total} want ${share}`);
      if (share > 0 && share < 1) assert.ok(text.y >= image.y + image.h - 1e-6, `${p.title} expert ${e}: text below image`);
      const ht = hue(text.fill), hi = hue(image.fill);
      assert.ok(ht >= 25 && ht <= 55, `text colour ${text.fill} (hue ${ht}) is orange/gold`);
      assert.ok(hi >= 160 && hi <= 190, `image colour ${image.fill} (hue ${hi}) is teal`);
    }
  }
});

test('an expert with no tokens is an empty, marked bar in its own band', async () => {
  const panels = parsePanels(await specToSvg(allocationFigure(figureData(SEEDLIKE))));
  const [p0, p16, p23] = panels;
  assert.deepEqual(p16.emptyMarks.map((m) => m.text), ['no tokens']);
  const label1 = p16.xLabels.find((l) => l.text === '1')!;
  assert.ok(Math.abs(p16.emptyMarks[0].x - label1.x) < 1, 'marker is in expert 1\'s band');
  assert.equal(p16.bars.filter((b) => b.expert === 1).length, 0, 'no filled bar for it');
  assert.equal(p16.dashed, 1, 'a dashed outline');
  for (const p of [p0, p23]) {
    assert.equal(p.emptyMarks.length, 0);
    assert.equal(p.dashed, 0);
  }
});

test('options: sort by id / load, titles and axis labels, balanced normalisation', async () => {
  const data = figureData(SEEDLIKE, 'expert', 'id');
  const svg = await specToSvg(allocationFigure(data, { title: 'Routing', xLabel: 'Expert id', yLabel: 'share (%)' }));
  const panels = parsePanels(svg);
  for (const p of panels) assert.deepEqual(p.xLabels.map((l) => l.text), ['0', '1', '2', '3']);
  assert.equal(panels[0].xTitle, 'Expert id');
  assert.equal(panels[0].yTitle, 'share (%)');
  assert.match(svg, />Routing<\/text>/);
  // load: layer 0 totals 10 4 2 8 -> 0 3 1 2
  assert.deepEqual(figureData(SEEDLIKE, 'expert', 'load').order[0], [0, 3, 1, 2]);
  // balanced, layer 0: text total 19, image 5; expert 2: (1/19) / (1/19 + 1/5)
  const bal = figureData(SEEDLIKE, 'balanced');
  const r = bal.rows.find((x) => x.layer === 0 && x.expert === 2 && x.group === 'text')!;
  assert.ok(Math.abs(r.share! - (100 * (1 / 19)) / (1 / 19 + 1 / 5)) < 1e-9);
});

test('more than two modalities get distinct colours and legend entries, stacked in the given order', async () => {
  const c = counts([0], [[[1, 1, 1, 1], [2, 0, 1, 0], [0, 3, 0, 1]]], ['text', 'image', 'video', 'audio']);
  const svg = await specToSvg(allocationFigure(figureData(c)));
  assert.deepEqual(legendLabels(svg), ['Text', 'Image', 'Video', 'Audio']);
  const bars = parsePanels(svg)[0].bars;
  const fills = new Map<string, string>();
  for (const b of bars) fills.set(b.label, b.fill);
  assert.equal(new Set(fills.values()).size, 4, [...fills].join(' '));
  const e0 = ['Text', 'Image', 'Video', 'Audio'].map((l) => bars.find((b) => b.expert === 0 && b.label === l)!);
  for (let i = 1; i < 4; i++) assert.ok(e0[i].y < e0[i - 1].y, 'each modality above the previous');
});

test('--layers all: small multiples in a grid of 6 to 8 columns', async () => {
  const L = 24;
  const table = Array.from({ length: L }, (_, l) => Array.from({ length: 8 }, (_, e) => [1 + ((l + e) % 5), 1 + ((l * e) % 3)]));
  const svg = await specToSvg(allocationFigure(figureData(counts(Array.from({ length: L }, (_, l) => l), table))));
  const panels = parsePanels(svg);
  assert.equal(panels.length, 24);
  assert.deepEqual(panels.map((p) => p.title), Array.from({ length: L }, (_, l) => `Layer ${l}`));
  const cols = new Set(panels.map((p) => p.x)).size, rows = new Set(panels.map((p) => p.y)).size;
  assert.ok(cols >= 6 && cols <= 8, `${cols} columns`);
  assert.equal(rows, Math.ceil(L / cols), 'rows filled in order');
  for (const p of panels) assert.ok(Math.min(...p.bars.map((b) => b.w)) >= 0.7 * 22 * 0.85 - 1e-9, 'bars keep at least 70% of the seed width');
  for (const p of panels) assert.equal(new Set(p.xLabels.map((l) => l.text)).size, 8);
});

test('the Vega-Lite spec compiles, carries its data inline and survives JSON', () => {
  const spec = allocationFigure(figureData(SEEDLIKE));
  const back = JSON.parse(JSON.stringify(spec));
  const out = compile(back);
  assert.ok(out.spec.marks && out.spec.marks.length > 0);
  const values = (back.data as { values: unknown[] }).values;
  assert.equal(values.length, 3 * 4 * 2 - 2 + 1, 'two rows per expert, one for the empty expert');
  assert.equal(back.config.font, 'DejaVu Sans');
});


test('the PNG shows its text with the bundled font (titles and axis titles are not blank)', async () => {
  const svg = await specToSvg(allocationFigure(figureData(SEEDLIKE)));
  const png = svgToPng(svg);
  const noText = svgToPng(svg.replace(/<text[^>]*>[^<]*<\/text>/g, ''));
  const top = (_x: number, y: number, _w: number, h: number) => y < h * 0.09; // panel titles
  const left = (x: number, y: number, w: number, h: number) => x < w * 0.035 && y > h * 0.2 && y < h * 0.8; // rotated y title
  const bottom = (_x: number, y: number, _w: number, h: number) => y > h * 0.9; // 'Experts'
  for (const [name, region] of [['titles', top], ['y title', left], ['x titles', bottom]] as const) {
    const withText = darkPixels(png, region);
    const without = darkPixels(noText, region);
    assert.ok(withText > 150, `${name}: only ${withText} dark pixels`);
    assert.ok(without < withText / 10, `${name}: dark pixels come from the text (${without} without text vs ${withText})`);
  }
  const img = decode(png);
  assert.ok(img.width > 700 && img.height > 400, `2x scale: ${img.width}x${img.height}`);
});

test('modality normalisation: bars are the share of each modality\'s tokens, with the uniform level k/E', async () => {
  // top-2, E = 4, counts under `all`: text 6 tokens -> 12 choices, image 2 tokens -> 4 choices
  const c: Counts = { ...counts([0], [[[6, 0], [3, 2], [3, 1], [0, 1]]]), topK: 2 };
  const d = figureData(c, 'modality');
  assert.equal(d.uniform, (100 * 2) / 4);
  const share = (e: number, m: string) => d.rows.find((r) => r.expert === e && r.group === m)!.share!;
  assert.ok(Math.abs(share(0, 'text') - (100 * 6) / 6) < 1e-9, 'expert 0 gets every text token (6 of 6)');
  assert.ok(Math.abs(share(1, 'image') - (100 * 2) / 2) < 1e-9);
  assert.ok(Math.abs(share(3, 'image') - (100 * 1) / 2) < 1e-9);
  const top1 = figureData({ ...c, mode: 'top1' }, 'modality');
  assert.equal(top1.uniform, 100 / 4, 'one choice per token under top1');
  const svg = await specToSvg(allocationFigure(d));
  const p = parsePanels(svg)[0];
  assert.equal(p.yTitle, '% of modality tokens');
  assert.equal(p.bars.length, 8, 'one bar per expert and modality, side by side');
  const e1 = p.bars.filter((b) => b.expert === 1);
  assert.ok(e1[0].x !== e1[1].x && Math.abs(e1[0].y + e1[0].h - (e1[1].y + e1[1].h)) < 1e-6, 'side by side on the same baseline, not stacked');
});
