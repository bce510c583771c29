/**
 * Vega-Lite building blocks, each a small pure function options -> spec fragment, composed by
 * spec.ts the way Observable Plot composes marks. Fields refer to FigureRow (spec-data.ts).
 */
export type Vl = Record<string, unknown>;

export interface XOptions {
  order: readonly number[]; // the panel's expert order (the band scale's domain)
  title: string | null;
}

/** x: one band per expert, labelled by id, in the panel's own order. */
export function expertX({ order, title }: XOptions): Vl {
  // many experts (imported traces: 64, 128): narrow bands with vertical, smaller labels, still one per expert
  const many = order.length > 16;
  return {
    field: 'expert',
    type: 'ordinal',
    scale: { domain: [...order], paddingInner: 0.15, paddingOuter: 0.1 },
    axis: { title, labelAngle: many ? 270 : 0, labelFontSize: many ? 8 : 11, labelOverlap: false, ticks: false, domain: true },
  };
}

export interface YOptions {
  title: string | null;
  max?: number; // top of the axis, default 100
  ticks?: number[];
}

/** y: percent, 0..max, with fixed ticks (0 25 50 75 100 for the stacked figure). */
export function percentY({ title, max = 100, ticks }: YOptions): Vl {
  return {
    field: 'share',
    type: 'quantitative',
    scale: { domain: [0, max], nice: false },
    axis: { title, ...(ticks ? { values: ticks } : { tickCount: 5 }), grid: true, gridOpacity: 0.4 },
  };
}

export interface ColorOptions {
  labels: readonly string[];
  colors: readonly string[];
  legendTitle?: string | null;
}

export function modalityColor({ labels, colors, legendTitle = null }: ColorOptions): Vl {
  return { field: 'label', type: 'nominal', scale: { domain: [...labels], range: [...colors] }, legend: { title: legendTitle } };
}

const tooltip = [
  { field: 'layer', type: 'ordinal', title: 'Layer' },
  { field: 'expert', type: 'ordinal', title: 'Expert' },
  { field: 'label', type: 'nominal', title: 'Modality' },
  { field: 'share', type: 'quantitative', title: '%', format: '.1f' },
  { field: 'count', type: 'quantitative', title: 'Count', format: ',.0f' },
];

/** 100%-stacked bars, the first modality at the bottom. */
export function stackedBars(opts: { x: Vl; y: Vl; color: Vl }): Vl {
  return {
    transform: [{ filter: '!datum.empty' }],
    mark: { type: 'bar' },
    encoding: { x: opts.x, y: { ...opts.y, stack: 'zero' }, color: opts.color, order: { field: 'stack', type: 'quantitative' }, tooltip },
  };
}

/** Side-by-side bars per modality within each expert's band (for P(e|m)). */
export function groupedBars(opts: { x: Vl; y: Vl; color: Vl }): Vl {
  return {
    transform: [{ filter: '!datum.empty' }],
    mark: { type: 'bar' },
    encoding: { x: opts.x, y: { ...opts.y, stack: null }, color: opts.color, xOffset: { field: 'label', type: 'nominal', scale: { domain: (opts.color.scale as Vl).domain } }, tooltip },
  };
}

/** An expert with no tokens: a dashed outline over the full height, marked 'no tokens'. */
export function emptyBars(opts: { x: Vl; top: number; label?: string }): Vl[] {
  const sel = [{ filter: 'datum.empty' }];
  return [
    {
      transform: sel,
      mark: { type: 'bar', fill: '#FFFFFF', fillOpacity: 0, stroke: '#777777', strokeDash: [3, 2], strokeWidth: 1 },
      encoding: { x: opts.x, y: { datum: 0 }, y2: { datum: opts.top } },
    },
    {
      transform: sel,
      mark: { type: 'text', angle: 270, fontSize: 9, fill: '#555555', text: opts.label ?? 'no tokens' },
      encoding: { x: opts.x, y: { datum: opts.top / 2 } },
    },
  ];
}

/** A dashed horizontal line across the panel at a level (the uniform router's share); its own one-row data. */
export function levelRule(opts: { level: number; label?: string }): Vl {
  return {
    data: { values: [{ level: opts.level }] },
    mark: { type: 'rule', strokeDash: [4, 3], color: '#333333' },
    encoding: { y: { datum: opts.level }, ...(opts.label ? { tooltip: { value: opts.label } } : {}) },
  };
}
