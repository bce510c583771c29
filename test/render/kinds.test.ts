import test from 'node:test';
import assert from 'node:assert/strict';
import { compile } from 'vega-lite';
import { specToSvg } from '../../src/render/figure.js';
import { loadFigure, loadHeatmap, type LoadRow } from '../../src/render/spec-load.js';
import { coactivationFigure } from '../../src/render/spec-coactivation.js';
import { repeatFigure, routerEntropyFigure, routerFigure, specialisationDepthFigure, tokenSpecialisationFigure, type DepthMetrics } from '../../src/render/spec-depth.js';
import type { Vl } from '../../src/render/spec.js';
import { legendLabels, parsePanels } from './svg-parse.js';

/** Every figure kind is a Vega-Lite spec that survives JSON and compiles. */
function compiles(spec: Vl): void {
  const out = compile(JSON.parse(JSON.stringify(spec)));
  assert.ok(out.spec.marks && out.spec.marks.length > 0);
}

interface Mark { label: Record<string, string>; role: string; x: number; y: number; d: string; fill: string }

/** Marks with their aria-label fields (what vega writes for each datum) and positions. */
function marks(svg: string): Mark[] {
  const out: Mark[] = [];
  for (const m of svg.matchAll(/<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="([^"]*)"([^>]*)>/g)) {
    const label: Record<string, string> = {};
    for (const kv of m[1].split('; ')) {
      const i = kv.indexOf(': ');
      if (i > 0) label[kv.slice(0, i)] = kv.slice(i + 2);
    }
    const t = /transform="translate\(([-\d.e]+),([-\d.e]+)\)"/.exec(m[3]);
    out.push({ label, role: m[2], x: Number(t?.[1] ?? NaN), y: Number(t?.[2] ?? NaN), d: /d="([^"]*)"/.exec(m[3])?.[1] ?? '', fill: /fill="([^"]*)"/.exec(m[3])?.[1] ?? '' });
  }
  return out;
}

test('load: bars per expert sorted by load, heights = planted shares, uniform 1/E line, dead expert marked', async () => {
  const shares = [40, 5, 20, 0, 10, 15, 5, 5];
  const rows: LoadRow[] = shares.map((share, expert) => ({ layer: 7, expert, share, count: share * 3 }));
  const spec = loadFigure(rows, { numExperts: 8 });
  compiles(spec);
  const svg = await specToSvg(spec);
  const [p] = parsePanels(svg);
  assert.equal(p.title, 'Layer 7 (1 dead)');
  // order by descending share, ties by id: 0 (40), 2 (20), 5 (15), 4 (10), 1, 6, 7 (5), 3 (0)
  assert.deepEqual(p.xLabels.map((l) => l.text), ['0', '2', '5', '4', '1', '6', '7', '3']);
  const bars = marks(svg).filter((m) => m.role === 'bar');
  const height = (m: Mark) => Number(/v([-\d.e]+)h/.exec(m.d)![1]);
  const h40 = height(bars.find((b) => b.label.expert === '0')!);
  for (const b of bars) assert.ok(Math.abs(height(b) / h40 - Number(b.label.share) / 40) < 1e-6, `expert ${b.label.expert}`);
  assert.deepEqual(bars.map((b) => [Number(b.label.expert), Number(b.label.share)]).sort((a, b) => a[0] - b[0]), shares.map((s, e) => [e, s]));
  assert.match(svg, /level: 12.5; text: uniform 1\/E = 1\/8/);
  const cross = marks(svg).filter((m) => m.role === 'point');
  assert.deepEqual(cross.map((m) => m.label['Dead expert']), ['3']);
});

test('load-map: a cell per (layer, expert) coloured by load x E, white at the fair share, dead cells outlined', async () => {
  const E = 4;
  const rows: LoadRow[] = [
    ...[25, 25, 25, 25].map((share, expert) => ({ layer: 0, expert, share, count: 10 })),
    ...[70, 30, 0, 0].map((share, expert) => ({ layer: 1, expert, share, count: share })),
  ];
  const spec = loadHeatmap(rows, { numExperts: E });
  compiles(spec);
  const svg = await specToSvg(spec);
  const cells = marks(svg).filter((m) => m.role === 'rect mark' && m.fill.startsWith('rgb'));
  assert.equal(cells.length, 8);
  const cell = (layer: number, expert: number) => cells.find((c) => c.label.Layer === String(layer) && c.label.Expert === String(expert))!;
  const rgb = (c: Mark) => c.fill.match(/\d+/g)!.map(Number);
  for (let e = 0; e < E; e++) {
    assert.equal(Number(cell(0, e).label['load x E']), 1);
    assert.ok(rgb(cell(0, e)).every((v) => v > 220), `fair share is near white: ${cell(0, e).fill}`);
  }
  assert.equal(Number(cell(1, 0).label['load x E']), 2.8);
  const [r0, , b0] = rgb(cell(1, 0));
  assert.ok(b0 > r0 + 60, `overloaded is blue: ${cell(1, 0).fill}`);
  const [r2, , b2] = rgb(cell(1, 2));
  assert.ok(r2 > b2 + 60, `dead is red: ${cell(1, 2).fill}`);
  assert.equal((svg.match(/stroke="#C0392B"/g) ?? []).length, 2, 'two dead cells outlined');
});

test('coactivation: an E x E heatmap per layer with the planted pair brightest and no diagonal', async () => {
  const E = 6;
  const matrix = Array.from({ length: E }, (_, i) => Array.from({ length: E }, (_, j) => (i === j ? 1 : i === 2 && j === 5 ? 0.9 : 0.1)));
  const spec = coactivationFigure([{ layer: 4, matrix }, { layer: 9, matrix }]);
  compiles(spec);
  const svg = await specToSvg(spec);
  assert.deepEqual(parsePanels(svg).map((p) => p.title), ['Layer 4', 'Layer 9']);
  const cells = marks(svg).filter((m) => m.role === 'rect mark');
  assert.equal(cells.length, 2 * (E * E - E));
  assert.ok(cells.every((c) => c.label['Expert i'] !== c.label['Expert j']), 'no diagonal');
  const hot = cells.filter((c) => c.label['P(j | i)'] === '0.900');
  assert.deepEqual(hot.map((c) => [c.label['Expert i'], c.label['Expert j'], c.label.Layer]), [['2', '5', '4'], ['2', '5', '9']]);
  const others = new Set(cells.filter((c) => !hot.includes(c)).map((c) => c.fill));
  assert.equal(others.size, 1, 'every other pair has one colour');
  assert.ok(!others.has(hot[0].fill));
});

/** Point marks of a depth chart: series -> [layer, value, y px]. */
function points(svg: string): Map<string, [number, number, number][]> {
  const out = new Map<string, [number, number, number][]>();
  for (const m of marks(svg).filter((x) => x.role === 'point')) {
    const list = out.get(m.label.Metric) ?? [];
    list.push([Number(m.label.Layer), Number(m.label.Value), m.y]);
    out.set(m.label.Metric, list);
  }
  return out;
}

const DEPTH: DepthMetrics[] = [0, 1, 2, 3].map((layer) => ({
  layer,
  S: 0.1 + 0.2 * layer,
  S0: 0.05,
  mi: 0.3,
  mi_norm: 0.05 * layer,
  jsd: null, // one group: undefined, must not be drawn as 0
  router: { gate_top1_mean: 0.2 + 0.1 * layer, margin_mean: layer === 0 ? null : 0.05 * layer, entropy_mean: 2.5 - 0.5 * layer, near_uniform: layer === 0 },
  repeat_rate: 0.3 + 0.1 * layer,
  repeat_rate_chance: 0.125,
  token_specialisation: { value: 0.4 + 0.1 * layer, chance: 0.25 },
}));

test('depth kinds: each line carries the planted values at the right height, missing metrics are left out', async () => {
  const cases: [string, Vl, Record<string, (m: DepthMetrics) => number | null | undefined>, [number, number] | null][] = [
    ['depth', specialisationDepthFigure(DEPTH), { 'S (specialisation)': (m) => m.S, 'S0 (no specialisation)': (m) => m.S0, 'I(G;E)/H(G)': (m) => m.mi_norm }, null],
    ['specialisation', tokenSpecialisationFigure(DEPTH), { 'token specialisation': (m) => (m.token_specialisation as { value: number }).value, chance: () => 0.25 }, [0, 1]],
    ['router', routerFigure(DEPTH, 8), { 'top-1 gate (mean)': (m) => m.router!.gate_top1_mean, 'top-1 - top-2 margin': (m) => m.router!.margin_mean, 'uniform 1/E = 1/8': () => 1 / 8 }, [0, 1]],
    ['router-entropy', routerEntropyFigure(DEPTH, 8), { 'router entropy': (m) => m.router!.entropy_mean, 'uniform log2 E = 3.00': () => 3 }, [0, 3]],
    ['repeat', repeatFigure(DEPTH), { 'repeat rate': (m) => m.repeat_rate, chance: () => 0.125 }, [0, 1]],
  ];
  for (const [kind, spec, want, domain] of cases) {
    compiles(spec);
    const svg = await specToSvg(spec);
    const got = points(svg);
    assert.deepEqual([...got.keys()].sort(), Object.keys(want).sort(), `${kind}: series`);
    assert.deepEqual(legendLabels(svg).sort(), Object.keys(want).sort(), `${kind}: legend`);
    const h = (spec as { height: number }).height;
    for (const [series, f] of Object.entries(want)) {
      const expected = DEPTH.flatMap((m) => (f(m) == null ? [] : [[m.layer, f(m)!] as const]));
      const pts = got.get(series)!.sort((a, b) => a[0] - b[0]);
      assert.deepEqual(pts.map((p) => p[0]), expected.map((e) => e[0]), `${kind} ${series}: layers`);
      pts.forEach((p, i) => {
        assert.ok(Math.abs(p[1] - expected[i][1]) < 5e-4, `${kind} ${series} layer ${p[0]}: ${p[1]} vs ${expected[i][1]}`);
        if (domain) assert.ok(Math.abs(p[2] - h * (1 - (expected[i][1] - domain[0]) / (domain[1] - domain[0]))) < 0.5, `${kind} ${series}: y ${p[2]}`);
      });
    }
  }
});

test('token specialisation as a bare number with its chance beside it draws the same lines', async () => {
  const flat = DEPTH.map((m) => ({ layer: m.layer, token_specialisation: (m.token_specialisation as { value: number }).value, token_specialisation_chance: 0.25 }));
  const a = points(await specToSvg(tokenSpecialisationFigure(flat)));
  const b = points(await specToSvg(tokenSpecialisationFigure(DEPTH)));
  assert.deepEqual([...a.entries()].sort(), [...b.entries()].sort());
});

test('a kind whose metric the analysis did not give is refused, not drawn empty', () => {
  const bare = DEPTH.map((m) => ({ layer: m.layer }));
  assert.throws(() => repeatFigure(bare), /no layer has repeat rate or chance/);
  assert.throws(() => routerFigure(bare, 8), RangeError);
});
