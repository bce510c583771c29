import embed, { type Result } from 'vega-embed';
import type { Vl } from '../../render/spec.js';
import { FIGURE_FONT } from '../../render/spec.js';

/**
 * The dashboard's own charts (the allocation figure itself comes from src/render, as in `moescope plot`):
 * small pure functions data + options -> Vega-Lite spec, and one function that draws a spec.
 */

const config = { font: FIGURE_FONT, view: { stroke: '#BBBBBB' }, axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' } };

/**
 * One line per series over layers, each series its own layer of the chart so that the drawing order is
 * the order of `series` (later on top); `dashes` and `widths` keep lines that coincide both visible
 * (e.g. I(M;E) and JSD, equal for two groups of equal size: JSD wide and pale below, I(M;E) dashed on top).
 */
export function layerLines(rows: { layer: number; series: string; value: number | null }[], opts: {
  title: string; yTitle: string; series: string[]; colors: string[]; dashes?: number[][]; widths?: number[]; width?: number; height?: number; yDomain?: [number, number]; format?: string;
  /** Log y axis (a top-1 gate of 0.26 and the uniform 1/E = 0.0078 both readable). */
  yLog?: boolean;
  /** Layers to mark with a red rule (e.g. near-uniform routers), and what the mark means. */
  flagged?: { layers: number[]; label: string };
}): Vl {
  const values = rows.filter((r) => r.value !== null && isFinite(r.value));
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain: opts.series, range: opts.colors }, legend: { orient: 'bottom', columns: Math.min(3, opts.series.length) } };
  const layers: Vl[] = opts.series.map((name, i) => ({
    transform: [{ filter: { field: 'series', equal: name } }],
    mark: { type: 'line', point: { size: (opts.widths?.[i] ?? 2) > 2 ? 50 : 26, opacity: (opts.widths?.[i] ?? 2) > 2 ? 0.5 : 1 }, strokeWidth: opts.widths?.[i] ?? 2, opacity: (opts.widths?.[i] ?? 2) > 2 ? 0.5 : 1, ...(opts.dashes?.[i] ? { strokeDash: opts.dashes[i] } : {}) },
    encoding: {
      x: { field: 'layer', type: 'quantitative', title: 'Layer', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'value', type: 'quantitative', title: opts.yTitle, ...(opts.yDomain ? { scale: { domain: opts.yDomain } } : opts.yLog ? { scale: { type: 'log' } } : {}) },
      color,
      tooltip: [{ field: 'series', title: 'Series' }, { field: 'layer', title: 'Layer' }, { field: 'value', type: 'quantitative', title: 'Value', format: opts.format ?? '.4f' }],
    },
  }));
  if (opts.flagged?.layers.length) {
    layers.push({
      data: { values: opts.flagged.layers.map((l) => ({ layer: l, what: opts.flagged!.label })) },
      mark: { type: 'rule', color: '#D62728', strokeDash: [2, 2], opacity: 0.8 },
      encoding: { x: { field: 'layer', type: 'quantitative' }, tooltip: [{ field: 'layer', title: 'Layer' }, { field: 'what', title: 'Warning' }] },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title,
    width: opts.width ?? 420,
    height: opts.height ?? 220,
    data: { values },
    layer: layers,
    config,
  };
}

/** Metrics by layer (S beside its baseline S0, JSD, I(G;E)): JSD wide and pale, I(G;E) dashed on top, so equal values stay visible. */
export function metricLines(rows: { layer: number; metric: string; value: number | null }[], opts: { title: string; series: string[] }): Vl {
  // drawing order: S0, S, JSD, then I(G;E) last (on top)
  const [S, S0, I, J] = opts.series;
  const order = [S0, S, ...(J ? [J] : []), I];
  const col: Record<string, string> = { [S]: '#1B9E77', [S0]: '#999999', [I]: '#7570B3', ...(J ? { [J]: '#E6AB02' } : {}) };
  const dash: Record<string, number[]> = { [S]: [1, 0], [S0]: [2, 2], [I]: [6, 3], ...(J ? { [J]: [1, 0] } : {}) };
  const width: Record<string, number> = { [S]: 2, [S0]: 2, [I]: 2, ...(J ? { [J]: 6 } : {}) };
  return layerLines(rows.map((r) => ({ layer: r.layer, series: r.metric, value: r.value })), {
    title: opts.title, yTitle: 'bits / fraction', series: order, colors: order.map((x) => col[x]), dashes: order.map((x) => dash[x]), widths: order.map((x) => width[x]),
  });
}

/**
 * Load of some layers: each expert's share of the routings, sorted descending, with the uniform share
 * 1/E dashed. For traces with nothing to compare (one group only). Panels wrap; bars narrow with E.
 */
export function loadBars(rows: { layer: number; expert: number; share: number; count: number; rank: number }[], opts: { layers: number[]; numExperts: number; columns: number; band: number; title?: string }): Vl {
  const uniform = 100 / opts.numExperts;
  const many = opts.numExperts > 32;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: opts.title } : {}),
    data: { values: rows },
    columns: opts.columns,
    concat: opts.layers.map((l, i) => ({
      title: `Layer ${l}`,
      width: Math.max(120, opts.numExperts * opts.band),
      height: 170,
      transform: [{ filter: `datum.layer === ${l}` }],
      layer: [
        {
          mark: { type: 'bar', color: '#4E79A7' },
          encoding: {
            x: { field: 'expert', type: 'ordinal', sort: { field: 'rank', order: 'ascending' }, title: 'Experts (by load)', axis: { labels: !many, ticks: false } },
            y: { field: 'share', type: 'quantitative', title: i % opts.columns === 0 ? '% of routings' : null },
            tooltip: [{ field: 'layer', title: 'Layer' }, { field: 'expert', title: 'Expert' }, { field: 'share', type: 'quantitative', title: '% of routings', format: '.2f' }, { field: 'count', type: 'quantitative', title: 'Count', format: ',.0f' }],
          },
        },
        { data: { values: [{ u: uniform }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#333333' }, encoding: { y: { field: 'u', type: 'quantitative' }, tooltip: { value: `uniform: ${uniform.toFixed(2)}% (1/E)` } } },
      ],
    })),
    resolve: { scale: { x: 'independent' } },
    config: { ...config, concat: { spacing: 16 } },
  };
}

/**
 * Columns and bar width that hold panels of E experts within `width` px: as many panels per row as
 * fit at a readable band (at least 3 px per expert), bands no wider than the figure's own default.
 */
export function fitPanels(width: number, panels: number, numExperts: number): { columns: number; band: number } {
  const maxBand = numExperts > 16 ? 11 : 22, minBand = numExperts > 64 ? 3 : numExperts > 16 ? 5 : 12;
  for (let cols = Math.min(panels, 6); cols >= 1; cols--) {
    const band = Math.floor((width - 90 - cols * 30) / (cols * numExperts));
    if (band >= minBand) return { columns: cols, band: Math.min(band, maxBand) };
  }
  return { columns: 1, band: minBand };
}

/**
 * The allocation figure fitted to the window: panels wrap, bands narrow, expert labels thin out
 * (every one while they fit, else Vega drops overlapping ones), the legend above the panels.
 */
export function fitFigure(spec: Vl, band: number, numExperts: number): Vl {
  const thin = band < 9 && numExperts > 16;
  const concat = (spec.concat as Vl[] | undefined)?.map((panel) => ({
    ...panel,
    layer: (panel.layer as Vl[]).map((m) => {
      const enc = m.encoding as Vl | undefined;
      const x = enc?.x as Vl | undefined;
      if (!x || !x.axis) return m;
      return { ...m, encoding: { ...enc, x: { ...x, axis: { ...(x.axis as Vl), ...(thin ? { labelOverlap: true, labelFontSize: 7, labelAngle: 270 } : {}) } } } };
    }),
  }));
  const cfg = spec.config as Vl;
  return { ...spec, ...(concat ? { concat } : {}), config: { ...cfg, legend: { ...(cfg.legend as Vl), orient: 'top', direction: 'horizontal' } } };
}

const views = new WeakMap<HTMLElement, Result>();

/** Draw a spec into an element (replacing what was there); `onClick` gets the datum under the pointer. */
export async function draw(el: HTMLElement, spec: Vl, onClick?: (datum: Record<string, unknown>) => void): Promise<void> {
  views.get(el)?.finalize();
  // Many marks (all 48 layers of 128 experts: ~25,000 bars) are drawn to a canvas: SVG would be one DOM node per bar.
  // Keyboard access to the bars then goes through the table under the figure.
  const marks = Array.isArray((spec.data as { values?: unknown[] } | undefined)?.values) ? (spec.data as { values: unknown[] }).values.length : 0;
  const renderer = marks > 6000 ? 'canvas' : 'svg';
  // Export as SVG/PNG only: the editor links would leave the machine.
  const res = await embed(el, spec as never, { actions: { export: true, source: false, compiled: false, editor: false }, renderer, tooltip: { theme: 'light' } });
  el.dataset.renderer = renderer;
  views.set(el, res);
  if (onClick) {
    res.view.addEventListener('click', (_ev, item) => {
      const d = (item as { datum?: Record<string, unknown> } | null | undefined)?.datum;
      if (d) onClick(d);
    });
  }
  if (renderer === 'svg') focusableBars(el, res, onClick);
  else el.dataset.bars = '0';
}

type SceneItem = { datum?: Record<string, unknown>; _svg?: SVGElement; items?: SceneItem[]; marktype?: string };

/**
 * Keyboard focus on bars (Vega draws none): one tab stop per chart, arrow keys move between its bars
 * in drawing order, Enter opens the bar as a click does; the focused bar's description (Vega's aria
 * label: layer, expert, group, share, count) is what a screen reader reads.
 */
function focusableBars(el: HTMLElement, res: Result, onClick?: (d: Record<string, unknown>) => void): void {
  const bars: { node: SVGElement; datum: Record<string, unknown> }[] = [];
  const walk = (it: SceneItem, rect: boolean) => {
    if (rect && it._svg && it.datum && typeof it.datum.expert === 'number' && !it.datum.empty) bars.push({ node: it._svg, datum: it.datum });
    for (const c of it.items ?? []) walk(c, rect || it.marktype === 'rect');
  };
  walk((res.view.scenegraph() as unknown as { root: SceneItem }).root, false);
  bars.forEach(({ node, datum }, i) => {
    node.setAttribute('tabindex', i === 0 ? '0' : '-1');
    node.setAttribute('focusable', 'true');
    node.classList.add('focus-bar');
    node.addEventListener('keydown', (ev) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1, Home: -bars.length, End: bars.length }[(ev as KeyboardEvent).key];
      if (step !== undefined) {
        ev.preventDefault();
        const j = Math.min(bars.length - 1, Math.max(0, i + step));
        node.setAttribute('tabindex', '-1');
        bars[j].node.setAttribute('tabindex', '0');
        (bars[j].node as unknown as HTMLElement).focus();
      } else if (((ev as KeyboardEvent).key === 'Enter' || (ev as KeyboardEvent).key === ' ') && onClick) {
        ev.preventDefault();
        onClick(datum);
      }
    });
  });
  el.dataset.bars = String(bars.length);
}
