import type { FigureData } from './spec-data.js';
import { emptyBars, expertX, groupedBars, levelRule, modalityColor, percentY, stackedBars, type Vl } from './spec-marks.js';
import { modalityColors, modalityLabel } from './spec-palette.js';

export type { Vl } from './spec-marks.js';

/** The font of every text in the figure; PNG rendering loads exactly this font from dejavu-fonts-ttf. */
export const FIGURE_FONT = 'DejaVu Sans';

export interface FigureOptions {
  title?: string | null;
  xLabel?: string;
  yLabel?: string;
  /** Panels per row; default: all in one row up to 4 panels, else 6 per row. */
  columns?: number;
  panelHeight?: number;
  bandWidth?: number; // px per expert band
  colors?: Readonly<Record<string, string>>;
}

/** The seed's y label for text+image, a generic one otherwise. */
export function defaultYLabel(data: FigureData): string {
  if (data.normalize === 'modality') return '% of modality tokens';
  const ti = data.modalities.length === 2 && data.modalities.includes('text') && data.modalities.includes('image');
  const base = ti ? '% of I/T tokens' : `% of ${data.modalities.map(modalityLabel).join('/')} tokens`;
  return data.normalize === 'balanced' ? `${base} (balanced)` : base;
}

/** One panel: the bars of one layer in its own expert order, titled `Layer N`. */
export function layerPanel(data: FigureData, layer: number, opts: FigureOptions & { showYTitle: boolean }): Vl {
  const labels = data.modalities.map(modalityLabel);
  const color = modalityColor({ labels, colors: modalityColors(data.modalities, opts.colors) });
  const yTitle = opts.showYTitle ? (opts.yLabel ?? defaultYLabel(data)) : null;
  const modality = data.normalize === 'modality';
  const top = modality ? modalityTop(data) : 100;
  const y = percentY({ title: yTitle, max: top, ticks: modality ? undefined : [0, 25, 50, 75, 100] });
  const x = expertX({ order: data.order[layer], title: opts.xLabel ?? 'Experts' });
  const marks: Vl[] = [modality ? groupedBars({ x, y, color }) : stackedBars({ x, y, color }), ...emptyBars({ x, top })];
  if (modality && data.uniform !== null) marks.push(levelRule({ level: data.uniform, label: 'uniform router' }));
  return {
    title: `Layer ${layer}`,
    width: data.numExperts * (opts.bandWidth ?? (data.numExperts > 16 ? 11 : 22)) * (modality ? Math.max(1, data.modalities.length * 0.75) : 1),
    height: opts.panelHeight ?? 200,
    transform: [{ filter: `datum.layer === ${layer}` }],
    layer: marks,
  };
}

/** Top of the y axis for P(e|m): the largest bar rounded up to 25%, at least twice the uniform level. */
function modalityTop(data: FigureData): number {
  const max = Math.max(0, ...data.rows.map((r) => r.share ?? 0), 2 * (data.uniform ?? 0));
  return Math.min(100 * Math.max(1, Math.ceil(max / 100)), Math.max(25, Math.ceil(max / 25) * 25));
}

/**
 * The figure: panels side by side (a grid for many layers), each with its own x order, shared y,
 * one legend, data inline. Defaults reproduce the seed (Figure 13 of Shukor et al.).
 */
export function allocationFigure(data: FigureData, opts: FigureOptions = {}): Vl {
  const n = data.layers.length;
  const columns = opts.columns ?? (n <= 4 ? n : 6);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: { text: opts.title, anchor: 'middle', fontSize: 15 } } : {}),
    background: 'white',
    padding: 8,
    data: { values: data.rows },
    columns,
    concat: data.layers.map((layer, i) => layerPanel(data, layer, { ...opts, showYTitle: i % columns === 0 })),
    resolve: { scale: { x: 'independent', xOffset: 'independent' } },
    config: {
      font: FIGURE_FONT,
      title: { fontSize: 13, fontWeight: 'bold', anchor: 'middle' },
      axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelColor: '#222222', titleColor: '#222222' },
      legend: { labelFontSize: 12, symbolType: 'square', orient: 'right' },
      view: { stroke: '#BBBBBB' },
      concat: { spacing: 18 },
    },
  };
}
