import { figureConfig } from './spec.js';
import { figureLayout, thinLabels } from './spec-layout.js';
import { expertX, heatCells, levelRule, type Vl } from './spec-marks.js';

/** One expert's load in one layer: `share` is f_e in % of the layer's choices (SPEC §3 `load.share`). */
export interface LoadRow {
  layer: number;
  expert: number;
  share: number;
  count: number;
}

export interface LoadOptions {
  numExperts: number;
  /** Choices per token (k under `all`, 1 otherwise): the uniform level is 100/E either way, since shares sum to 100. */
  title?: string | null;
  width?: number;
  columns?: number;
  panelHeight?: number;
  slackX?: number;
}

const LOAD_TOOLTIP = [
  { field: 'layer', type: 'ordinal', title: 'Layer' },
  { field: 'expert', type: 'ordinal', title: 'Expert' },
  { field: 'share', type: 'quantitative', title: 'Load %', format: '.2f' },
  { field: 'count', type: 'quantitative', title: 'Tokens', format: ',.0f' },
];

/**
 * Load per expert, sorted from the busiest, one panel per layer, with the dashed uniform line
 * 100/E: how unbalanced the router is and how many experts are dead (text-only models' first view).
 */
export function loadFigure(rows: readonly LoadRow[], opts: LoadOptions): Vl {
  const E = opts.numExperts;
  const layers = [...new Set(rows.map((r) => r.layer))].sort((a, b) => a - b);
  const chrome = { axisLeft: 40, right: 34, perRow: 22 + (E > 16 ? String(E - 1).length * 6.5 + 8 : 16) + 18, top: 16 + (opts.title ? 26 : 0) };
  const layout = figureLayout(E, layers.length, chrome, { width: opts.width, columns: opts.columns, panelHeight: opts.panelHeight, slackX: opts.slackX });
  const uniform = 100 / E;
  const top = Math.max(2 * uniform, ...rows.map((r) => r.share));
  const panels = layers.map((layer, i) => {
    const mine = rows.filter((r) => r.layer === layer);
    const order = [...mine].sort((a, b) => b.share - a.share || a.expert - b.expert).map((r) => r.expert);
    const x = expertX({ order, title: 'Experts (by load)', labelled: thinLabels(order, layout.labelEvery), labelAngle: layout.labelAngle, labelFontSize: layout.labelFontSize, paddingInner: layout.paddingInner });
    const y = { field: 'share', type: 'quantitative', scale: { domain: [0, top], nice: true }, axis: { title: i % layout.columns === 0 ? '% of the layer\'s choices' : null, grid: true, gridOpacity: 0.4 } };
    const dead = mine.filter((r) => r.count === 0).length;
    return {
      title: dead ? `Layer ${layer} (${dead} dead)` : `Layer ${layer}`,
      width: layout.panelWidth,
      height: layout.panelHeight,
      transform: [{ filter: `datum.layer === ${layer}` }],
      layer: [
        { mark: { type: 'bar', color: '#4E79A7' }, encoding: { x, y, tooltip: LOAD_TOOLTIP } },
        // a dead expert (no token) has no bar to see: a red cross on the axis, and the count in the title
        { transform: [{ filter: 'datum.count === 0' }], mark: { type: 'point', shape: 'cross', size: 30, color: '#B22222', filled: true }, encoding: { x, y: { datum: 0 }, tooltip: [{ field: 'expert', type: 'ordinal', title: 'Dead expert' }] } },
        ...levelRule({ level: uniform, width: layout.panelWidth, label: `uniform 1/E = 1/${E}` }),
      ],
    };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: { text: opts.title, anchor: 'middle', fontSize: 15 } } : {}),
    background: 'white',
    padding: 8,
    data: { values: rows },
    columns: layout.columns,
    usermeta: { layout: { rows: layout.rows, columns: layout.columns } },
    concat: panels,
    resolve: { scale: { x: 'independent' } },
    config: figureConfig(),
  };
}

/**
 * Layers x experts heatmap of load relative to uniform (f_e * E: 1 = its fair share, 0 = dead),
 * experts by id: where in depth the router concentrates, at a glance for 256 experts x 61 layers.
 */
export function loadHeatmap(rows: readonly LoadRow[], opts: LoadOptions): Vl {
  const E = opts.numExperts;
  const layers = [...new Set(rows.map((r) => r.layer))].sort((a, b) => a - b);
  const cell = Math.max(2, Math.min(16, Math.floor(((opts.width ?? 1200) - (opts.slackX ?? 0) - 160) / E)));
  const rowH = Math.max(3, Math.min(16, Math.floor(600 / layers.length)));
  const values = rows.map((r) => ({ ...r, relative: (r.share / 100) * E }));
  const every = Math.max(1, Math.ceil((String(E - 1).length * 7 + 4) / cell));
  const ids = Array.from({ length: E }, (_, e) => e);
  const layerEvery = Math.max(1, Math.ceil(12 / rowH));
  const max = Math.max(2, ...values.map((v) => v.relative));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: { text: opts.title, anchor: 'middle', fontSize: 15 } } : {}),
    background: 'white',
    padding: 8,
    data: { values },
    width: cell * E,
    height: rowH * layers.length,
    layer: [
      heatCells({
        x: { field: 'expert', type: 'ordinal', title: 'Expert', scale: { domain: ids, paddingInner: 0 }, axis: { values: thinLabels(ids, every), labelAngle: cell * every >= 24 ? 0 : 270, labelFontSize: 10 } },
        y: { field: 'layer', type: 'ordinal', title: 'Layer', scale: { domain: layers, paddingInner: 0 }, axis: { values: thinLabels(layers, layerEvery) } },
        value: 'relative',
        title: 'load x E',
        // diverging around the fair share 1: red under, blue over, white at uniform
        scheme: 'redblue',
        domain: [0, max],
        domainMid: 1,
        tooltip: [...LOAD_TOOLTIP, { field: 'relative', type: 'quantitative', title: 'load x E', format: '.2f' }],
      }),
      // dead experts: a red outline on their cells
      { transform: [{ filter: 'datum.count === 0' }], mark: { type: 'rect', fill: null, stroke: '#C0392B', strokeWidth: 1 }, encoding: { x: { field: 'expert', type: 'ordinal' }, y: { field: 'layer', type: 'ordinal' } } },
    ],
    config: figureConfig(),
  };
}
