import embed, { type Result } from 'vega-embed';
import type { Vl } from '../../render/spec.js';
import { FIGURE_FONT } from '../../render/spec.js';
import { MODALITY_COLORS } from '../../render/spec-palette.js';

/**
 * The dashboard's own charts (the allocation figure itself comes from src/render, as in `moescope plot`):
 * small pure functions data + options -> Vega-Lite spec, and one function that draws a spec.
 */

const config = { font: FIGURE_FONT, view: { stroke: '#BBBBBB' }, axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' } };

/** Layers x experts as coloured cells: the mark both heatmaps share; `color` and `tooltip` say what a cell shows. */
function layerExpertHeatmap(rows: object[], opts: { title: string; numExperts: number; layers: number[]; color: object; tooltip: object[] }): Vl {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title,
    data: { values: rows },
    width: Math.max(160, opts.numExperts * 26),
    height: Math.min(520, Math.max(120, opts.layers.length * 18)),
    mark: { type: 'rect', stroke: '#ffffff', strokeWidth: 0.5 },
    encoding: {
      x: { field: 'expert', type: 'ordinal', title: 'Expert', axis: { labelAngle: 0 } },
      y: { field: 'layer', type: 'ordinal', title: 'Layer', sort: 'ascending' },
      color: opts.color,
      tooltip: [{ field: 'layer', type: 'ordinal', title: 'Layer' }, { field: 'expert', type: 'ordinal', title: 'Expert' }, ...opts.tooltip],
    },
    config,
  };
}

/** Layers x experts: the image share of each expert's tokens, gold (all text) -> white -> teal (all image). */
export function depthHeatmap(rows: { layer: number; expert: number; image: number | null; count: number }[], opts: { numExperts: number; layers: number[]; title: string }): Vl {
  return layerExpertHeatmap(rows, {
    ...opts,
    color: { field: 'image', type: 'quantitative', title: '% image', scale: { domain: [0, 50, 100], range: [MODALITY_COLORS.text, '#f4f4f4', MODALITY_COLORS.image] } },
    tooltip: [{ field: 'image', type: 'quantitative', title: '% image', format: '.1f' }, { field: 'count', type: 'quantitative', title: 'Count', format: ',.0f' }],
  });
}

/** Metrics by layer, one line each (S beside its baseline S0, I(M;E), JSD), sharing the y axis (all are in [0, 1]). */
export function metricLines(rows: { layer: number; metric: string; value: number | null }[], opts: { title: string }): Vl {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title,
    data: { values: rows.filter((r) => r.value !== null) },
    width: 420,
    height: 220,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'layer', type: 'quantitative', title: 'Layer', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'value', type: 'quantitative', title: 'bits / fraction' },
      color: { field: 'metric', type: 'nominal', title: null, scale: { domain: ['S', 'S0 (baseline)', 'I(M;E)', 'JSD(text, image)'], range: ['#1B9E77', '#999999', '#7570B3', '#D95F02'] }, legend: { orient: 'bottom', columns: 2 } },
      tooltip: [{ field: 'metric', title: 'Metric' }, { field: 'layer', title: 'Layer' }, { field: 'value', type: 'quantitative', title: 'Value', format: '.4f' }],
    },
    config,
  };
}

/** Transition matrix of top-1 experts from layer a (rows) to layer b (columns), one panel per modality. */
export function flowMatrix(rows: { modality: string; source: number; target: number; n: number; share: number }[], opts: { a: number; b: number; numExperts: number }): Vl {
  const side = Math.max(160, opts.numExperts * 24);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: rows },
    facet: { column: { field: 'modality', type: 'nominal', title: null, header: { labelFontSize: 13, labelFontWeight: 'bold' } } },
    spec: {
      width: side,
      height: side,
      layer: [
        {
          mark: { type: 'rect' },
          encoding: {
            color: { field: 'share', type: 'quantitative', title: `P(expert at ${opts.b} | expert at ${opts.a})`, scale: { scheme: 'blues', domain: [0, 1] } },
          },
        },
        {
          transform: [{ filter: 'datum.share >= 0.1' }],
          mark: { type: 'text', fontSize: 9 },
          encoding: { text: { field: 'share', type: 'quantitative', format: '.0%' }, color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: 'black' } },
        },
      ],
      encoding: {
        x: { field: 'target', type: 'ordinal', title: `Top-1 expert at layer ${opts.b}`, axis: { labelAngle: 0 }, scale: { domain: Array.from({ length: opts.numExperts }, (_, i) => i) } },
        y: { field: 'source', type: 'ordinal', title: `Top-1 expert at layer ${opts.a}`, scale: { domain: Array.from({ length: opts.numExperts }, (_, i) => i) } },
        tooltip: [
          { field: 'modality', title: 'Modality' }, { field: 'source', title: `Expert at ${opts.a}` }, { field: 'target', title: `Expert at ${opts.b}` },
          { field: 'n', type: 'quantitative', title: 'Tokens', format: ',' }, { field: 'share', type: 'quantitative', title: 'Share of row', format: '.1%' },
        ],
      },
    },
    resolve: { scale: { color: 'shared' } },
    config,
  };
}

/** Layers x experts: a difference of image share (B - A, percentage points), diverging at 0: teal where B sends more image there, gold where less. */
export function diffHeatmap(rows: { layer: number; expert: number; diff: number | null; a: number | null; b: number | null }[], opts: { title: string; label: string; numExperts: number; layers: number[] }): Vl {
  const max = Math.max(5, ...rows.map((r) => Math.abs(r.diff ?? 0)));
  return layerExpertHeatmap(rows, {
    ...opts,
    color: { field: 'diff', type: 'quantitative', title: opts.label, scale: { domain: [-max, 0, max], range: [MODALITY_COLORS.text, '#f4f4f4', MODALITY_COLORS.image] } },
    tooltip: [
      { field: 'a', type: 'quantitative', title: 'A %', format: '.1f' }, { field: 'b', type: 'quantitative', title: 'B %', format: '.1f' },
      { field: 'diff', type: 'quantitative', title: 'B - A (points)', format: '+.1f' },
    ],
  });
}

const views = new WeakMap<HTMLElement, Result>();

/** Draw a spec into an element (replacing what was there); `onClick` gets the datum under the pointer. */
export async function draw(el: HTMLElement, spec: Vl, onClick?: (datum: Record<string, unknown>) => void): Promise<void> {
  views.get(el)?.finalize();
  // Export as SVG/PNG only: the editor links would leave the machine.
  const res = await embed(el, spec as never, { actions: { export: true, source: false, compiled: false, editor: false }, renderer: 'svg', tooltip: { theme: 'light' } });
  views.set(el, res);
  if (onClick) {
    res.view.addEventListener('click', (_ev, item) => {
      const d = (item as { datum?: Record<string, unknown> } | null | undefined)?.datum;
      if (d) onClick(d);
    });
  }
}
