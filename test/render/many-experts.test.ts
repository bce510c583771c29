import test from 'node:test';
import assert from 'node:assert/strict';
import { compile } from 'vega-lite';
import { figureData } from '../../src/render/spec-data.js';
import { allocationFigure, defaultYLabel } from '../../src/render/spec.js';
import { renderFigure, specToSvg } from '../../src/render/figure.js';
import { GROUP_PALETTE, groupColors, MODALITY_COLORS } from '../../src/render/spec-palette.js';
import { legendLabels, parsePanels, type Panel } from './svg-parse.js';
import { makeCounts, svgBox } from './helpers.js';

/**
 * Planted text shares: expert e gets (1 + (e * 37) % E) text and E - (e * 37) % E image tokens in
 * every layer, so the expected order (descending text share, ties by id) is computed here by a sort.
 * Expert `dead` receives nothing in layer index 1.
 */
function planted(E: number, layers = [0, 16, 23], dead = 5) {
  const t = (e: number) => 1 + ((e * 37) % E);
  const im = (e: number) => E - ((e * 37) % E);
  const counts = makeCounts(layers, E, ['text', 'image'], (li, e, g) => (li === 1 && e === dead ? 0 : g === 0 ? t(e) : im(e)));
  const live = (li: number) => Array.from({ length: E }, (_, e) => e).filter((e) => !(li === 1 && e === dead));
  const order = (li: number) => [...live(li).sort((a, b) => t(b) / (t(b) + im(b)) - t(a) / (t(a) + im(a)) || a - b), ...(li === 1 ? [dead] : [])];
  return { counts, order, dead };
}

/** Labels are every k-th band of the panel's order for one k, starting at the first, and do not collide. */
function assertThinned(p: Panel, order: number[], fontSize: number) {
  const texts = p.xLabels.map((l) => Number(l.text));
  const idx = texts.map((id) => order.indexOf(id));
  assert.ok(idx.every((i) => i >= 0), `${p.title}: every label is an expert of the panel`);
  assert.equal(idx[0], 0, `${p.title}: the first band is labelled`);
  const step = idx[1] - idx[0];
  assert.ok(step > 1, `${p.title}: labels are thinned (step ${step})`);
  for (let i = 1; i < idx.length; i++) assert.equal(idx[i] - idx[i - 1], step, `${p.title}: one label every ${step} bands`);
  assert.ok(idx.length >= Math.floor((order.length - 1) / step), `${p.title}: all the way along (${idx.length} labels)`);
  for (let i = 1; i < p.xLabels.length; i++) {
    assert.ok(p.xLabels[i].x - p.xLabels[i - 1].x >= fontSize, `${p.title}: labels ${p.xLabels[i - 1].text} and ${p.xLabels[i].text} are ${p.xLabels[i].x - p.xLabels[i - 1].x} px apart`);
  }
}

/** The rotations of the x-axis labels (vega writes rotate(A) in their transform when A is not 0). */
function xLabelAngles(svg: string): string[] {
  const angles = new Set<string>();
  for (const m of svg.matchAll(/aria-label="X-axis[^"]*">[\s\S]*?role-axis-label[^>]*>([\s\S]*?)<\/g>/g)) {
    for (const t of m[1].matchAll(/<text[^>]*transform="([^"]*)"/g)) angles.add(/rotate\(([-\d.]+)\)/.exec(t[1])?.[1] ?? '0');
  }
  return [...angles];
}

function assertEveryExpertOnce(p: Panel, E: number, dead: number | null) {
  const ids = new Set(p.bars.map((b) => b.expert));
  assert.equal(ids.size, dead === null ? E : E - 1, `${p.title}: one bar per expert with tokens`);
  if (dead !== null) assert.ok(!ids.has(dead));
}

test('8 experts: the seed layout, every expert labelled, horizontal labels, one row', async () => {
  const { counts, order } = planted(8);
  const svg = await specToSvg(allocationFigure(figureData(counts)));
  const panels = parsePanels(svg);
  assert.equal(new Set(panels.map((p) => p.y)).size, 1);
  panels.forEach((p, li) => assert.deepEqual(p.xLabels.map((l) => Number(l.text)), order(li)));
  assert.deepEqual(xLabelAngles(svg), ['0'], 'x labels are horizontal');
});

test('128 experts: panels wrap at the natural size, bars stay at least 4 px, labels thin out without colliding', async () => {
  const E = 128;
  const { counts, order, dead } = planted(E);
  const svg = await specToSvg(allocationFigure(figureData(counts)));
  const { width } = svgBox(svg);
  assert.ok(width <= 1700, `natural width ${width} px (was 8,960 px at 2x before)`);
  const panels = parsePanels(svg);
  assert.deepEqual(panels.map((p) => p.title), ['Layer 0', 'Layer 16', 'Layer 23']);
  assert.ok(new Set(panels.map((p) => p.y)).size >= 2, 'wrapped into rows');
  panels.forEach((p, li) => {
    assertEveryExpertOnce(p, E, li === 1 ? dead : null);
    assert.ok(Math.min(...p.bars.map((b) => b.w)) >= 3.5, `${p.title}: bars ${Math.min(...p.bars.map((b) => b.w))} px`);
    assertThinned(p, order(li), 9);
    assert.deepEqual(xLabelAngles(svg), ['270'], 'x labels are vertical');
    // bars are in the panel's order left to right
    const xs = [...new Set(p.bars.sort((a, b) => a.x - b.x).map((b) => b.expert))];
    assert.deepEqual(xs, order(li).filter((e) => !(li === 1 && e === dead)));
  });
  assert.equal(panels[1].dashed, 1, 'the dead expert is a dashed outline');
});

test('256 experts under --width 1000: the whole figure fits, every expert is still drawn, the dead one is marked', async () => {
  const E = 256;
  const { counts, order, dead } = planted(E);
  const data = figureData(counts);
  const svg = (await renderFigure((slack) => allocationFigure(data, { width: 1000, ...slack }), 'svg', { width: 1000 })) as string;
  assert.ok(svgBox(svg).width <= 1000, `width ${svgBox(svg).width}`);
  // the same figure with <text> kept, for the parser
  const textSvg = await specToSvg(allocationFigure(data, { width: 1000 }));
  const panels = parsePanels(textSvg);
  assert.equal(new Set(panels.map((p) => p.y)).size, 3, 'one panel per row');
  panels.forEach((p, li) => {
    assertEveryExpertOnce(p, E, li === 1 ? dead : null);
    assertThinned(p, order(li), 9);
  });
  // bands are too narrow for the words 'no tokens': a cross marks the dead expert under its band
  const cross = /<path aria-label="expert: (\d+)" role="graphics-symbol" aria-roledescription="point"/g;
  assert.deepEqual([...textSvg.matchAll(cross)].map((m) => Number(m[1])), [dead]);
  assert.equal(panels[1].dashed, 1);
});

test('a width no bar can fit in is refused, not squeezed', () => {
  const { counts } = planted(256);
  assert.throws(() => allocationFigure(figureData(counts), { width: 200 }), /need.* at least \d+ px/);
});

test('groups by domain: the y label and the legend name the groups; colours come from the palette by name', async () => {
  const domains = ['arxiv', 'github', 'wikipedia', 'books', 'c4', 'stackexchange', 'pes2o'];
  const counts = makeCounts([0, 3], 16, domains, (li, e, g) => 1 + ((e + g * 3 + li) % 7));
  const data = figureData(counts, 'expert', 'arxiv', { by: 'domain' });
  assert.equal(defaultYLabel(data), '% of tokens by domain');
  const svg = await specToSvg(allocationFigure(data));
  assert.deepEqual(legendLabels(svg), domains, 'legend lists the domains in order, as written');
  assert.match(svg, />domain<\/text>/, 'legend title names the grouping');
  const bars = parsePanels(svg)[0].bars;
  const fill = (label: string) => bars.find((b) => b.label === label)!.fill;
  const fills = domains.map(fill);
  assert.equal(new Set(fills).size, domains.length, 'distinct colours');
  for (const f of fills) assert.ok(GROUP_PALETTE.includes(f), `${f} from the palette`);
  // keyed by name: the order of the groups does not change anyone's colour
  const reversed = groupColors([...domains].reverse()).reverse();
  assert.deepEqual(reversed, fills);
  // a name alone gets its own colour; in a set, the names that clash with none keep it
  const alone = domains.map((d) => groupColors([d])[0]);
  const clashFree = domains.filter((d, i) => alone.filter((c) => c === alone[i]).length === 1 && fill(d) === alone[i]);
  assert.ok(clashFree.length >= 3, `most names keep their own colour (${clashFree.join(', ')})`);
  assert.deepEqual(groupColors(['image', 'text']), [MODALITY_COLORS.image, MODALITY_COLORS.text]);
  // few groups are named in the y label
  const two = figureData(makeCounts([0], 4, ['arxiv', 'github'], () => 1), 'expert', 'arxiv', { by: 'domain' });
  assert.equal(defaultYLabel(two), '% of arxiv/github tokens');
  assert.equal(defaultYLabel({ ...two, normalize: 'group' }), '% of domain tokens');
});

test('the spec of a 256-expert figure compiles and keeps one band per expert in every panel', () => {
  const { counts } = planted(256);
  const spec = allocationFigure(figureData(counts)) as { concat: { layer: { encoding?: { x?: { scale: { domain: number[] } } } }[] }[] };
  for (const panel of spec.concat) assert.equal(new Set(panel.layer[0].encoding!.x!.scale.domain).size, 256);
  assert.ok(compile(JSON.parse(JSON.stringify(spec))).spec.marks!.length > 0);
});
