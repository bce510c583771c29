/**
 * Vega-Lite building blocks, each a small pure function options -> spec fragment, composed by
 * spec.ts and the figure kinds the way Observable Plot composes marks. Fields of the bar marks
 * refer to FigureRow (spec-data.ts).
 */
export type Vl = Record<string, unknown>;

export interface XOptions {
  order: readonly number[]; // the panel's expert order (the band scale's domain)
  title: string | null;
  /** The ids that get a label (all by default; thinned for many experts). */
  labelled?: readonly number[];
  labelAngle?: number;
  labelFontSize?: number;
  paddingInner?: number;
}

/** x: one band per expert in the panel's own order, labelled by id (every k-th when thinned). */
export function expertX({ order, title, labelled, labelAngle = 0, labelFontSize = 11, paddingInner = 0.15 }: XOptions): Vl {
  return {
    field: 'expert',
    type: 'ordinal',
    scale: { domain: [...order], paddingInner, paddingOuter: paddingInner > 0 ? 0.1 : 0 },
    axis: {
      title,
      ...(labelled && labelled.length < order.length ? { values: [...labelled] } : {}),
      labelAngle,
      labelFontSize,
      labelOverlap: false,
      labelPadding: 3,
      ticks: labelled !== undefined && labelled.length < order.length,
      tickSize: 3,
      domain: true,
    },
  };
}

export interface YOptions {
  title: string | null;
  max?: number; // top of the axis, default 100
  ticks?: number[];
  field?: string;
}

/** y: percent, 0..max, with fixed ticks (0 25 50 75 100 for the stacked figure). */
export function percentY({ title, max = 100, ticks, field = 'share' }: YOptions): Vl {
  return {
    field,
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

export function groupColor({ labels, colors, legendTitle = null }: ColorOptions): Vl {
  return { field: 'label', type: 'nominal', scale: { domain: [...labels], range: [...colors] }, legend: { title: legendTitle } };
}

/** Tooltip of a bar segment: where, which group, its share (and interval) and its token count. */
export function barTooltip(groupTitle: string, withBounds: boolean): Vl[] {
  return [
    { field: 'layer', type: 'ordinal', title: 'Layer' },
    { field: 'expert', type: 'ordinal', title: 'Expert' },
    { field: 'label', type: 'nominal', title: groupTitle },
    { field: 'share', type: 'quantitative', title: '%', format: '.1f' },
    ...(withBounds ? [{ field: 'lo', type: 'quantitative', title: 'CI low %', format: '.1f' }, { field: 'hi', type: 'quantitative', title: 'CI high %', format: '.1f' }] : []),
    { field: 'count', type: 'quantitative', title: 'Count', format: ',.0f' },
    { field: 'total', type: 'quantitative', title: 'Count, all groups', format: ',.0f' },
  ];
}

/** 100%-stacked bars, the first group at the bottom. */
export function stackedBars(opts: { x: Vl; y: Vl; color: Vl; tooltip: Vl[] }): Vl {
  return {
    transform: [{ filter: '!datum.empty' }],
    mark: { type: 'bar' },
    encoding: { x: opts.x, y: { ...opts.y, stack: 'zero' }, color: opts.color, order: { field: 'stack', type: 'quantitative' }, tooltip: opts.tooltip },
  };
}

/** Side-by-side bars per group within each expert's band (for P(e|g)). */
export function groupedBars(opts: { x: Vl; y: Vl; color: Vl; tooltip: Vl[] }): Vl {
  return {
    transform: [{ filter: '!datum.empty' }],
    mark: { type: 'bar' },
    encoding: { x: opts.x, y: { ...opts.y, stack: null }, color: opts.color, xOffset: groupOffset(opts.color), tooltip: opts.tooltip },
  };
}

const groupOffset = (color: Vl): Vl => ({ field: 'label', type: 'nominal', scale: { domain: (color.scale as Vl).domain } });

/** An expert with no tokens: a dashed outline over the full height, marked 'no tokens' when its band has room. */
export function emptyBars(opts: { x: Vl; top: number; label?: string | null }): Vl[] {
  const sel = [{ filter: 'datum.empty' }];
  const marks: Vl[] = [
    {
      transform: sel,
      mark: { type: 'bar', fill: '#FFFFFF', fillOpacity: 0, stroke: '#777777', strokeDash: [3, 2], strokeWidth: 1 },
      encoding: { x: opts.x, y: { datum: 0 }, y2: { datum: opts.top }, tooltip: [{ field: 'expert', type: 'ordinal', title: 'Expert (no tokens)' }] },
    },
  ];
  if (opts.label !== null) {
    marks.push({
      transform: sel,
      mark: { type: 'text', angle: 270, fontSize: 9, fill: '#555555', text: opts.label ?? 'no tokens' },
      encoding: { x: opts.x, y: { datum: opts.top / 2 } },
    });
  }
  return marks;
}

/** A small cross under the axis for each expert with no tokens, readable when bands are too narrow for the text. */
export function deadTicks(opts: { x: Vl }): Vl {
  return {
    transform: [{ filter: 'datum.empty' }],
    mark: { type: 'point', shape: 'cross', size: 30, color: '#B22222', filled: true, yOffset: 0 },
    encoding: { x: opts.x, y: { datum: 0 } },
  };
}

/** A dashed horizontal line across the panel at a level, with its meaning written at the right end. */
export function levelRule(opts: { level: number; label?: string; width: number }): Vl[] {
  const data = { values: [{ level: opts.level, text: opts.label ?? '' }] };
  const marks: Vl[] = [
    {
      data,
      mark: { type: 'rule', strokeDash: [4, 3], color: '#333333' },
      encoding: { y: { field: 'level', type: 'quantitative' }, ...(opts.label ? { tooltip: { field: 'text', type: 'nominal' } } : {}) },
    },
  ];
  if (opts.label) {
    // the words sit on the line at its right end, over a white halo so bars under them do not hide them
    const text = { type: 'text', align: 'right', baseline: 'bottom', dy: -2, fontSize: 10 };
    const at = { x: { value: opts.width - 2 }, y: { field: 'level', type: 'quantitative' }, text: { field: 'text' } };
    marks.push(
      { data, mark: { ...text, stroke: '#FFFFFF', strokeWidth: 3, strokeOpacity: 0.9, fill: '#FFFFFF' }, encoding: at },
      { data, mark: { ...text, fill: '#222222' }, encoding: at },
    );
  }
  return marks;
}

/**
 * Token counts written on the bars (`--labels counts`): at the top inside each stacked bar, or
 * above each side-by-side bar; vertical when the band is narrow.
 */
export function countLabels(opts: { x: Vl; top: number; stacked: boolean; vertical: boolean; color?: Vl; fontSize: number }): Vl {
  const common = { type: 'text', fontSize: opts.fontSize, fill: '#111111' };
  if (opts.stacked) {
    return {
      transform: [{ filter: '!datum.empty && datum.stack === 0' }],
      mark: opts.vertical ? { ...common, angle: 270, align: 'right', baseline: 'middle', dx: -3 } : { ...common, align: 'center', baseline: 'top', dy: 3 },
      encoding: { x: opts.x, y: { datum: opts.top }, text: { field: 'total', type: 'quantitative', format: '~s' } },
    };
  }
  return {
    transform: [{ filter: '!datum.empty' }],
    mark: opts.vertical ? { ...common, angle: 270, align: 'left', baseline: 'middle', dx: 3 } : { ...common, align: 'center', baseline: 'bottom', dy: -2 },
    encoding: { x: opts.x, xOffset: groupOffset(opts.color!), y: { field: 'share', type: 'quantitative' }, text: { field: 'count', type: 'quantitative', format: '~s' } },
  };
}

/** Error bars from `lo` to `hi` (bootstrap interval): on the bottom segment's edge when stacked, on each bar when side by side. */
export function intervalBars(opts: { x: Vl; stacked: boolean; color?: Vl }): Vl {
  return {
    transform: [{ filter: `!datum.empty && isValid(datum.lo) && isValid(datum.hi)${opts.stacked ? ' && datum.stack === 0' : ''}` }],
    mark: { type: 'rule', color: '#111111', strokeWidth: 1.3 },
    encoding: {
      x: opts.x,
      ...(opts.stacked ? {} : { xOffset: groupOffset(opts.color!) }),
      y: { field: 'lo', type: 'quantitative' },
      y2: { field: 'hi' },
    },
  };
}

/** A heatmap cell per (x, y) with a sequential colour (layers x experts load, co-activation). */
export function heatCells(opts: { x: Vl; y: Vl; value: string; title: string; scheme?: string; domain?: [number, number]; domainMid?: number; tooltip: Vl[] }): Vl {
  return {
    mark: { type: 'rect' },
    encoding: {
      x: opts.x,
      y: opts.y,
      color: { field: opts.value, type: 'quantitative', title: opts.title, scale: { scheme: opts.scheme ?? 'viridis', ...(opts.domain ? { domain: opts.domain } : {}), ...(opts.domainMid !== undefined ? { domainMid: opts.domainMid } : {}) }, legend: { orient: 'right', gradientLength: 160 } },
      tooltip: opts.tooltip,
    },
  };
}

/** Lines with points over layers, one colour per series (`series` field), for metrics by depth. */
export function depthLines(opts: { y: Vl; series: readonly string[]; colors: readonly string[]; dashed?: readonly string[]; xTitle?: string }): Vl[] {
  const x = { field: 'layer', type: 'quantitative', title: opts.xTitle ?? 'Layer', axis: { tickMinStep: 1, format: 'd' } };
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain: [...opts.series], range: [...opts.colors] }, legend: { symbolType: 'stroke', symbolStrokeWidth: 2.5, symbolSize: 300 } };
  const strokeDash = opts.dashed?.length
    ? { strokeDash: { field: 'series', type: 'nominal', title: null, scale: { domain: [...opts.series], range: opts.series.map((s) => (opts.dashed!.includes(s) ? [5, 3] : [1, 0])) } } }
    : {};
  return [
    { mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y: opts.y, color, ...strokeDash } },
    {
      mark: { type: 'point', filled: true, size: 28 },
      encoding: { x, y: opts.y, color, tooltip: [{ field: 'layer', type: 'quantitative', title: 'Layer' }, { field: 'series', type: 'nominal', title: 'Metric' }, { field: 'value', type: 'quantitative', title: 'Value', format: '.3f' }] },
    },
  ];
}
