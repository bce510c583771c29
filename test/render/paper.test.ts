import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { Resvg } from '@resvg/resvg-js';
import { decode } from 'fast-png';
import { PDFDocument, PDFDict, PDFName, PDFRawStream, PDFArray, PDFRef } from 'pdf-lib';
import { figureData } from '../../src/render/spec-data.js';
import { allocationFigure } from '../../src/render/spec.js';
import { fontFileList, renderFigure, specToSvg, svgToPng } from '../../src/render/figure.js';
import { legendLabels, parsePanels } from './svg-parse.js';
import { artifact, darkPixels, makeCounts, svgBox } from './helpers.js';

// three layers of 4 experts; expert e's tokens: text 300 * (e + 1), image 100 * (4 - e) + 50 * li
const SEED = makeCounts([0, 16, 23], 4, ['text', 'image'], (li, e, g) => (g === 0 ? 300 * (e + 1) : 100 * (4 - e) + 50 * li), 2);
const seedSpec = () => allocationFigure(figureData(SEED));

/** The page's content streams, inflated, and its resources. */
async function pdfPage(bytes: Uint8Array) {
  const doc = await PDFDocument.load(bytes);
  assert.equal(doc.getPageCount(), 1);
  const page = doc.getPage(0);
  const ctx = doc.context;
  const contents = page.node.get(PDFName.of('Contents'));
  const refs = contents instanceof PDFArray ? contents.asArray() : [contents];
  let ops = '';
  for (const r of refs) {
    const s = ctx.lookup(r as PDFRef) as PDFRawStream;
    const filter = s.dict.get(PDFName.of('Filter'));
    ops += Buffer.from(filter ? inflateSync(s.contents) : s.contents).toString('latin1');
  }
  const res = page.node.Resources()!;
  return { doc, page, ops, res, ctx };
}

test('PDF: one vector page of the figure\'s size, bars as filled paths in the seed colours, text as embedded-font text, no raster', async () => {
  const svg = await specToSvg(seedSpec());
  const { width, height } = svgBox(svg);
  const pdf = (await renderFigure(seedSpec(), 'pdf')) as Uint8Array;
  writeFileSync(artifact('seed-figure.pdf'), pdf);
  assert.equal(Buffer.from(pdf.subarray(0, 5)).toString(), '%PDF-');
  const { page, ops, res, ctx } = await pdfPage(pdf);
  const { width: w, height: h } = page.getSize();
  assert.ok(Math.abs(w - width * 0.75) < 0.01 && Math.abs(h - height * 0.75) < 0.01, `page ${w}x${h} pt for ${width}x${height} px`);
  // no image XObject at all: the chart is not a raster
  const xobjects = res.get(PDFName.of('XObject'));
  if (xobjects) {
    for (const [, ref] of (ctx.lookup(xobjects) as PDFDict).entries()) {
      const sub = (ctx.lookup(ref) as PDFRawStream).dict.get(PDFName.of('Subtype'));
      assert.notEqual(String(sub), '/Image', 'no image XObject');
    }
  }
  assert.doesNotMatch(ops, /\bBI\b[\s\S]*\bID\b/, 'no inline image');
  // text: BT..ET blocks showing glyphs with an embedded TrueType font (DejaVu Sans subset)
  assert.ok((ops.match(/\bBT\b/g) ?? []).length >= 20, 'text objects for titles, ticks and labels');
  assert.match(ops, /\bT[Jj]\b/);
  const fonts = ctx.lookup(res.get(PDFName.of('Font'))) as PDFDict;
  const names: string[] = [];
  for (const [, ref] of fonts.entries()) {
    const font = ctx.lookup(ref) as PDFDict;
    const desc = ctx.lookup((ctx.lookup((font.get(PDFName.of('DescendantFonts')) as PDFArray).get(0)) as PDFDict).get(PDFName.of('FontDescriptor'))) as PDFDict;
    assert.ok(desc.get(PDFName.of('FontFile2')), 'the TrueType program is embedded');
    names.push(String(font.get(PDFName.of('BaseFont'))));
  }
  assert.ok(names.some((n) => /\+DejaVuSans$/.test(n)) && names.some((n) => /\+DejaVuSans-Bold$/.test(n)), names.join(' '));
  // bars: filled paths in gold (229,161,40) and teal (35,153,142)
  const fills = [...ops.matchAll(/([\d.]+) ([\d.]+) ([\d.]+) scn/g)].map((m) => [1, 2, 3].map((i) => Number(m[i]) * 255));
  const has = (rgb: number[]) => fills.some((f) => f.every((v, i) => Math.abs(v - rgb[i]) < 0.5));
  assert.ok(has([229, 161, 40]), 'text colour');
  assert.ok(has([35, 153, 142]), 'image colour');
  assert.ok((ops.match(/\bf\b/g) ?? []).length >= 24, 'filled paths for 12 bars x 2 segments');
});

test('PDF: the words are real text (pdftotext reads them) and the bytes are the same on every run', async (t) => {
  const a = (await renderFigure(seedSpec(), 'pdf')) as Uint8Array;
  const b = (await renderFigure(seedSpec(), 'pdf')) as Uint8Array;
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), 'deterministic');
  if (!existsSync('/usr/bin/pdftotext')) return t.skip('pdftotext (poppler-utils) not installed');
  const file = artifact('seed-figure-text.pdf');
  writeFileSync(file, a);
  const text = execFileSync('/usr/bin/pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
  for (const w of ['Layer 0', 'Layer 16', 'Layer 23', '% of I/T tokens', 'Experts', 'Text', 'Image', '100']) assert.ok(text.includes(w), `${w} in ${JSON.stringify(text.slice(0, 300))}`);
});

test('PDF rendered by poppler looks like the PNG (same layout)', async (t) => {
  if (!existsSync('/usr/bin/pdftoppm')) return t.skip('pdftoppm (poppler-utils) not installed');
  const spec = seedSpec();
  const file = artifact('seed-figure-page.pdf');
  writeFileSync(file, (await renderFigure(spec, 'pdf')) as Uint8Array);
  // 96 dpi: one PDF point is 4/3 px, so the page is the SVG's size in px
  execFileSync('/usr/bin/pdftoppm', ['-png', '-r', '96', '-singlefile', file, file.replace(/\.pdf$/, '')]);
  const fromPdf = decode(new Uint8Array(execFileSync('cat', [file.replace(/\.pdf$/, '.png')])));
  const fromSvg = decode(svgToPng(await specToSvg(spec), 1));
  assert.ok(Math.abs(fromPdf.width - fromSvg.width) <= 1 && Math.abs(fromPdf.height - fromSvg.height) <= 1, `${fromPdf.width}x${fromPdf.height} vs ${fromSvg.width}x${fromSvg.height}`);
  // most pixels agree (antialiasing differs at edges)
  let same = 0, n = 0;
  for (let y = 0; y < Math.min(fromPdf.height, fromSvg.height); y++)
    for (let x = 0; x < Math.min(fromPdf.width, fromSvg.width); x++) {
      const i = (y * fromPdf.width + x) * fromPdf.channels, j = (y * fromSvg.width + x) * fromSvg.channels;
      n++;
      if (Math.abs(fromPdf.data[i] - fromSvg.data[j]) + Math.abs(fromPdf.data[i + 1] - fromSvg.data[j + 1]) + Math.abs(fromPdf.data[i + 2] - fromSvg.data[j + 2]) < 90) same++;
    }
  assert.ok(same / n > 0.97, `${((100 * same) / n).toFixed(1)}% of pixels agree`);
});

/** resvg with no font at all: what an SVG looks like on a machine without DejaVu (or any font). */
const noFontPng = (svg: string) => new Resvg(svg, { background: 'white', font: { loadSystemFonts: false, fontFiles: [] } }).render().asPng();
const withDejaVu = (svg: string) => new Resvg(svg, { background: 'white', font: { loadSystemFonts: false, fontFiles: fontFileList(), defaultFontFamily: 'DejaVu Sans' } }).render().asPng();

test('SVG: text is drawn as glyph paths of the bundled font, so it looks the same with no font installed', async () => {
  const textSvg = await specToSvg(seedSpec());
  const svg = (await renderFigure(seedSpec(), 'svg')) as string;
  writeFileSync(artifact('seed-figure.svg'), svg);
  assert.doesNotMatch(svg, /<text\b/);
  assert.doesNotMatch(svg, /font-family/);
  for (const w of ['Layer 0', 'Layer 16', 'Layer 23', '% of I/T tokens', 'Experts', 'Text', 'Image']) assert.match(svg, new RegExp(`aria-label="${w.replace(/[%/]/g, '.')}"`), `${w} kept for screen readers`);
  // the same panels, titles, axis labels and legend are read from it as from the <text> version
  const strip = (svg2: string) => parsePanels(svg2).map((p) => ({ ...p, bars: p.bars.length }));
  assert.deepEqual(strip(svg), strip(textSvg));
  assert.deepEqual(legendLabels(svg), ['Text', 'Image']);
  // the test can fail: without a font the <text> version loses its words...
  const lost = darkPixels(noFontPng(textSvg));
  const kept = darkPixels(withDejaVu(textSvg));
  assert.ok(lost < kept * 0.8, `text SVG without fonts: ${lost} dark px vs ${kept} with DejaVu`);
  // ...while the path version without any font matches the <text> version drawn with DejaVu
  const a = decode(noFontPng(svg)), b = decode(withDejaVu(textSvg));
  assert.equal(a.width, b.width);
  let differ = 0;
  for (let i = 0; i < a.data.length; i += a.channels) if (Math.abs(a.data[i] - b.data[i]) + Math.abs(a.data[i + 1] - b.data[i + 1]) > 80) differ++;
  assert.ok(differ / (a.width * a.height) < 0.004, `${differ} of ${a.width * a.height} pixels differ`);
  assert.ok(Math.abs(darkPixels(noFontPng(svg)) - kept) < kept * 0.05);
});

test('--width/--height/--scale: the figure holds the size asked for; scale multiplies PNG pixels and SVG size', async () => {
  const data = figureData(SEED);
  const build = (s: object) => allocationFigure(data, { width: 520, height: 300, ...s });
  const svg = (await renderFigure(build, 'svg', { width: 520, height: 300 })) as string;
  const box = svgBox(svg);
  assert.ok(box.width <= 520 && box.height <= 300 && box.height >= 298, `${box.width}x${box.height}`);
  const png = decode((await renderFigure(build, 'png', { width: 520, height: 300, scale: 3 })) as Uint8Array);
  assert.ok(Math.abs(png.width - 3 * box.width) <= 1 && Math.abs(png.height - 3 * box.height) <= 1, `${png.width}x${png.height}`);
  const big = svgBox((await renderFigure(build, 'svg', { width: 520, height: 300, scale: 2 })) as string);
  assert.ok(Math.abs(big.width - 2 * box.width) < 0.1 && Math.abs(big.height - 2 * box.height) < 0.1);
  assert.match((await renderFigure(build, 'svg', { width: 520, height: 300, scale: 2 })) as string, new RegExp(`viewBox="0 0 ${box.width} ${box.height}"`));
});

test('--labels counts writes each expert\'s token count on its bar; the k/E line is labelled', async () => {
  const svg = await specToSvg(allocationFigure(figureData(SEED), { labels: 'counts' }));
  // totals of layer 0: 300(e+1) + 100(4-e) = 700, 900, 1100, 1300 -> d3 '~s': 700 900 1.1k 1.3k; layer 23: 100 more each
  const marks = (p: ReturnType<typeof parsePanels>[number]) => p.emptyMarks.map((m) => m.text).sort();
  const panels = parsePanels(svg);
  assert.deepEqual(marks(panels[0]), ['700', '900', '1.1k', '1.3k'].sort());
  assert.deepEqual(marks(panels[2]), ['800', '1k', '1.2k', '1.4k'].sort(), 'layer 23: image + 100');
  // each label sits over its own bar
  for (const p of panels) {
    const bars = p.bars.filter((b) => b.label === 'Text');
    for (const m of p.emptyMarks) assert.ok(bars.some((b) => m.x >= b.x && m.x <= b.x + b.w), `${p.title}: ${m.text} over a bar`);
  }
  // group normalisation: the dashed uniform line carries its meaning, at the level k/E = 2/4 = 50%
  const g = await specToSvg(allocationFigure(figureData(SEED, 'group')));
  const gp = parsePanels(g)[0];
  const label = gp.emptyMarks.filter((m) => m.text === 'uniform k/E = 2/4');
  assert.equal(label.length, 2, 'the words and their halo');
  const first = g.slice(g.indexOf('concat_0_group'), g.indexOf('concat_1_group'));
  const rules = [...first.matchAll(/<line aria-label="level: 50; text: uniform k\/E = 2\/4"[^>]*transform="translate\([\d.]+,([\d.]+)\)"[^>]*stroke-dasharray/g)];
  assert.equal(rules.length, 1, 'one dashed rule, described by its label');
  const y = rules[0][1];
  const h = 200, top = Number(gp.yLabels[gp.yLabels.length - 1]);
  assert.ok(Math.abs(Number(y) - h * (1 - 50 / top)) < 1, `rule at y=${y} for 50% of ${top}`);
});

test('the legend sits right of the panels, or below them under a width limit, inside the figure either way', async () => {
  const legendBox = (svg: string) => {
    const m = /role-legend"[^>]*>\s*<g transform="translate\(([-\d.]+),([-\d.]+)\)"><path class="background"[^>]*d="M0,0h([\d.]+)v([\d.]+)/.exec(svg)!;
    const root = /<g fill="none" stroke-miterlimit="4" transform="translate\(([\d.]+),([\d.]+)\)"/.exec(svg)!;
    return { x: Number(m[1]) + Number(root[1]), y: Number(m[2]) + Number(root[2]), w: Number(m[3]), h: Number(m[4]) };
  };
  const right = await specToSvg(allocationFigure(figureData(SEED)));
  const panels = parsePanels(right);
  const lb = legendBox(right);
  assert.ok(lb.x > panels[2].x + 4 * 22, 'right of the last panel');
  assert.ok(lb.x + lb.w <= svgBox(right).width, 'inside');
  const domains = ['arxiv', 'github', 'wikipedia', 'books', 'c4', 'stackexchange', 'pes2o', 'algebraic-stack'];
  const many = figureData(makeCounts([0, 1, 2], 8, domains, (li, e, g) => 1 + ((e + g + li) % 5)), 'expert', 'arxiv', { by: 'domain' });
  const svg = (await renderFigure((s) => allocationFigure(many, { width: 560, ...s }), 'svg', { width: 560 })) as string;
  const textSvg = await specToSvg(allocationFigure(many, { width: 560 }));
  assert.deepEqual(legendLabels(textSvg), domains);
  const b = legendBox(textSvg);
  const bottom = Math.max(...parsePanels(textSvg).map((p) => p.y));
  assert.ok(b.y > bottom + 200, 'below the panels');
  assert.ok(b.x + b.w <= svgBox(textSvg).width && b.y + b.h <= svgBox(textSvg).height, `legend ${JSON.stringify(b)} inside ${JSON.stringify(svgBox(textSvg))}`);
  assert.ok(svgBox(svg).width <= 560);
});

test('--ci: bootstrap intervals become error bars at the planted bounds', async () => {
  const bounds = [0, 1, 2, 3].map((e) => ({ layer: 0, expert: e, group: 'text', lo: 10 + 10 * e, hi: 30 + 10 * e }));
  const data = figureData(makeCounts([0], 4, ['text', 'image'], (_l, e, g) => (g === 0 ? 2 + e : 8 - e)), 'expert', 'id', { bounds, ci: 95 });
  assert.equal(data.ci, 95);
  const svg = await specToSvg(allocationFigure(data, { ci: true }));
  const rules = [...svg.matchAll(/<line aria-label="expert: (\d+)[^"]*"[^>]*transform="translate\(([\d.]+),([\d.]+)\)" x2="0" y2="(-?[\d.]+)" stroke="#111111"/g)]
    .map((m) => ({ expert: Number(m[1]), x: Number(m[2]), top: Math.min(Number(m[3]), Number(m[3]) + Number(m[4])), bottom: Math.max(Number(m[3]), Number(m[3]) + Number(m[4])) }));
  assert.equal(rules.length, 4);
  const bars = parsePanels(svg)[0].bars.filter((b) => b.label === 'Text');
  for (const r of rules) {
    const e = r.expert;
    // y of a share s in a 200 px panel: 200 * (1 - s / 100)
    assert.ok(Math.abs(r.top - 200 * (1 - (30 + 10 * e) / 100)) < 0.5 && Math.abs(r.bottom - 200 * (1 - (10 + 10 * e) / 100)) < 0.5, `expert ${e}: ${r.top}..${r.bottom}`);
    const bar = bars.find((b) => b.expert === e)!;
    assert.ok(r.x > bar.x && r.x < bar.x + bar.w, `expert ${e}: on its own bar`);
  }
  const none = await specToSvg(allocationFigure(data));
  assert.equal([...none.matchAll(/stroke="#111111"/g)].length, 0, 'no bars without --ci');
});
