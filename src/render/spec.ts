import { isGroupNormalization, type FigureData } from './spec-data.js';
import { figureLayout, thinLabels, type Chrome, type Layout, type LayoutOptions } from './spec-layout.js';
import { barTooltip, countLabels, deadTicks, emptyBars, expertX, groupColor, groupedBars, intervalBars, levelRule, percentY, stackedBars, type Vl } from './spec-marks.js';
import { groupColors, groupLabel } from './spec-palette.js';

export type { Vl } from './spec-marks.js';

/** The font of every text in the figure; PNG, PDF and text-as-paths SVG use exactly this font from dejavu-fonts-ttf. */
export const FIGURE_FONT = 'DejaVu Sans';

export interface FigureOptions extends LayoutOptions {
  title?: string | null;
  xLabel?: string;
  yLabel?: string;
  colors?: Readonly<Record<string, string>>;
  /** `counts`: write each expert's token count on its bar (`--labels counts`). */
  labels?: 'none' | 'counts';
  /** Draw the bootstrap interval of the shares (when the data carries bounds). */
  ci?: boolean;
  /** Where the legend goes; default: right of the panels, or below them when the width is limited or groups are many. */
  legend?: 'right' | 'bottom' | 'top';
}

/** The seed's y label for text+image, the groups' names otherwise (SPEC §4). */
export function defaultYLabel(data: FigureData): string {
  const labels = data.groups.map((g) => groupLabel(g, data.by));
  if (isGroupNormalization(data.normalize)) return `% of ${data.by} tokens`;
  const ti = data.by === 'modality' && data.groups.length === 2 && data.groups.includes('text') && data.groups.includes('image');
  const named = labels.join('/');
  const base = ti ? '% of I/T tokens' : labels.length <= 4 && named.length <= 28 ? `% of ${named} tokens` : `% of tokens by ${data.by}`;
  return data.normalize === 'balanced' ? `${base} (balanced)` : base;
}

/** Approximate text width in px of DejaVu Sans at `size` (0.6 em a character; the renderer measures the real one). */
const textWidth = (s: string, size: number) => s.length * 0.6 * size;

/** Legend placement and the chrome around the panels, estimated before layout. */
function chromeOf(data: FigureData, opts: FigureOptions, legend: 'right' | 'bottom' | 'top', labelAngle: number): Chrome {
  const labels = data.groups.map((g) => groupLabel(g, data.by));
  const legendW = 16 + 8 + Math.max(...labels.map((l) => textWidth(l, 12)), textWidth(data.by === 'modality' ? '' : data.by, 12)) + 18;
  const digits = String(Math.max(0, data.numExperts - 1)).length;
  const xLabelH = labelAngle === 0 ? 16 : digits * 6.5 + 8;
  return {
    axisLeft: 34,
    right: 16 + 18 + (legend === 'right' ? legendW : 0), // padding, y title, legend
    perRow: 22 + xLabelH + 18,
    top: 16 + (opts.title ? 26 : 0) + (legend === 'right' ? 0 : 26 * Math.ceil(labels.length / 6)),
  };
}

export function legendPlacement(data: FigureData, opts: FigureOptions): 'right' | 'bottom' | 'top' {
  if (opts.legend) return opts.legend;
  return opts.width === undefined && data.groups.length <= 6 ? 'right' : 'bottom';
}

/** Panels per row, band width, label thinning for this figure (see spec-layout.ts). */
export function allocationLayout(data: FigureData, opts: FigureOptions = {}): Layout {
  const grouped = isGroupNormalization(data.normalize);
  const barsPerBand = grouped ? Math.max(1, data.groups.length * 0.75) : 1;
  const legend = legendPlacement(data, opts);
  // the chrome depends on the label angle, which depends on the band: estimate, lay out, re-estimate once
  const first = figureLayout(data.numExperts, data.layers.length, chromeOf(data, opts, legend, 0), opts, barsPerBand);
  return figureLayout(data.numExperts, data.layers.length, chromeOf(data, opts, legend, first.labelAngle), opts, barsPerBand);
}

/** One panel: the bars of one layer in its own expert order, titled `Layer N`. */
export function layerPanel(data: FigureData, layer: number, layout: Layout, opts: FigureOptions & { showYTitle: boolean }): Vl {
  const labels = data.groups.map((g) => groupLabel(g, data.by));
  const color = groupColor({ labels, colors: groupColors(data.groups, opts.colors), legendTitle: data.by === 'modality' ? null : data.by });
  const yTitle = opts.showYTitle ? (opts.yLabel ?? defaultYLabel(data)) : null;
  const grouped = isGroupNormalization(data.normalize);
  const top = grouped ? groupTop(data, opts.labels === 'counts') : 100;
  const y = percentY({ title: yTitle, max: top, ticks: grouped ? undefined : [0, 25, 50, 75, 100] });
  const order = data.order[layer];
  const x = expertX({
    order, title: opts.xLabel ?? 'Experts', labelled: thinLabels(order, layout.labelEvery),
    labelAngle: layout.labelAngle, labelFontSize: layout.labelFontSize, paddingInner: layout.paddingInner,
  });
  const withBounds = data.ci !== null;
  const tooltip = barTooltip(data.by === 'modality' ? 'Modality' : groupLabel(data.by, 'modality'), withBounds);
  const bandPx = layout.band * (grouped ? Math.max(1, data.groups.length * 0.75) : 1);
  const marks: Vl[] = [grouped ? groupedBars({ x, y, color, tooltip }) : stackedBars({ x, y, color, tooltip })];
  // an expert with no tokens: the dashed outline always, the words when the band has room, a cross below the axis otherwise
  marks.push(...emptyBars({ x, top, label: bandPx >= 9 ? 'no tokens' : null }));
  if (bandPx < 9 && (data.dead[layer]?.length ?? 0) > 0) marks.push(deadTicks({ x }));
  if (opts.ci && withBounds) marks.push(intervalBars({ x, stacked: !grouped, color }));
  if (opts.labels === 'counts') {
    const barPx = grouped ? layout.band * 0.75 : layout.band;
    marks.push(countLabels({ x, top, stacked: !grouped, vertical: barPx < 26, color, fontSize: Math.min(9, Math.max(6, Math.floor(barPx) - 1)) }));
  }
  if (grouped && data.uniform !== null) {
    const k = data.mode === 'all' ? data.topK : 1;
    marks.push(...levelRule({ level: data.uniform, width: layout.panelWidth, label: `uniform ${k === 1 ? '1/E' : 'k/E'} = ${k}/${data.numExperts}` }));
  }
  return {
    title: `Layer ${layer}`,
    width: layout.panelWidth,
    height: layout.panelHeight,
    transform: [{ filter: `datum.layer === ${layer}` }],
    layer: marks,
  };
}

/** Top of the y axis for P(e|g): the largest bar (or interval; plus room for count labels) rounded up to 10% (25% above 100%), at least twice the uniform level. */
function groupTop(data: FigureData, headroom = false): number {
  const max = (headroom ? 1.15 : 1) * Math.max(0, ...data.rows.map((r) => Math.max(r.share ?? 0, r.hi ?? 0)), 2 * (data.uniform ?? 0));
  return max > 100 ? Math.ceil(max / 25) * 25 : Math.max(10, Math.ceil(max / 10) * 10);
}

/** The smallest bar width (px) that `--labels counts` can write on. */
export const MIN_LABELLED_BAND = 7;

/**
 * The figure: panels side by side, wrapping into rows for many layers or experts, each with its
 * own x order, shared y, one legend, data inline. Defaults reproduce the seed (Figure 13 of Shukor et al.).
 * Throws RangeError when the size options cannot be met (the CLI names the flag).
 */
export function allocationFigure(data: FigureData, opts: FigureOptions = {}): Vl {
  const layout = allocationLayout(data, opts);
  if (opts.labels === 'counts') {
    const barPx = isGroupNormalization(data.normalize) ? layout.band * 0.75 : layout.band;
    if (barPx < MIN_LABELLED_BAND) throw new RangeError(`bars are ${barPx.toFixed(1)} px wide, too narrow to write counts on (need ${MIN_LABELLED_BAND}); widen the figure or show fewer layers`);
  }
  const legend = legendPlacement(data, opts);
  const legendColumns = legend === 'right' ? undefined : Math.max(1, Math.min(data.groups.length, 6));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: { text: opts.title, anchor: 'middle', fontSize: 15 } } : {}),
    background: 'white',
    padding: 8,
    data: { values: data.rows },
    columns: layout.columns,
    usermeta: { layout: { rows: layout.rows, columns: layout.columns } },
    concat: data.layers.map((layer, i) => layerPanel(data, layer, layout, { ...opts, showYTitle: i % layout.columns === 0 })),
    resolve: { scale: { x: 'independent', xOffset: 'independent' } },
    config: figureConfig({ legend, legendColumns }),
  };
}

/** Fonts, sizes and colours shared by every figure kind. */
export function figureConfig(opts: { legend?: 'right' | 'bottom' | 'top'; legendColumns?: number } = {}): Vl {
  const legend = opts.legend ?? 'right';
  return {
    font: FIGURE_FONT,
    title: { fontSize: 13, fontWeight: 'bold', anchor: 'middle' },
    axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelColor: '#222222', titleColor: '#222222' },
    legend: {
      labelFontSize: 12, titleFontSize: 12, symbolType: 'square', orient: legend, labelLimit: 220,
      ...(legend === 'right' ? {} : { direction: 'horizontal', columns: opts.legendColumns, columnPadding: 14 }),
    },
    view: { stroke: '#BBBBBB' },
    concat: { spacing: 18 },
  };
}
