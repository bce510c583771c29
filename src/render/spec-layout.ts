/**
 * Sizes of a small-multiples figure of expert bars, so that it stays readable from 8 to 256
 * experts: bands narrow from 22 px down to a floor, panels wrap into rows that fit a page width,
 * and x labels thin out to every k-th band when they would collide. Pure arithmetic; the
 * renderer (figure.ts) measures the result and corrects the estimate of the chrome once.
 */

/** Widest band (the seed's 8 experts) and the floor that bars narrow to at their natural size. */
export const MAX_BAND = 22;
export const MIN_BAND = 4;
/** A panel aims at this plot width when it has many experts. */
const TARGET_PANEL = 640;
/** Width the figure wraps to when no `--width` is given (a wide screen, two A4 pages side by side). */
export const DEFAULT_PAGE_WIDTH = 1600;
/** Below this a band cannot show a bar at all, whatever the width limit. */
export const HARD_MIN_BAND = 1;
/** Smallest plot height of a panel that still shows a 0-100 axis. */
export const MIN_PANEL_HEIGHT = 60;
export const DEFAULT_PANEL_HEIGHT = 200;
export const PANEL_SPACING = 18;

export interface LayoutOptions {
  /** Whole figure width limit in px (`--width`): panels wrap and narrow to fit it. */
  width?: number;
  /** Whole figure height in px (`--height`): panel height is derived from it. */
  height?: number;
  /** Panels per row; default: as many as fit the width. */
  columns?: number;
  panelHeight?: number;
  /** px per expert band, overriding the automatic choice. */
  bandWidth?: number;
  /** Chrome in px per panel column (X) and per row (Y) that the renderer measured beyond the estimate (fit loop). */
  slackX?: number;
  slackY?: number;
}

export interface Chrome {
  /** Left of each panel: y labels (and the y title for the first column). */
  axisLeft: number;
  /** Right of the grid: the legend when it sits on the right. */
  right: number;
  /** Above and below each panel: title, x labels and x title. */
  perRow: number;
  /** Once per figure: figure title, legend on top or bottom. */
  top: number;
}

export interface Layout {
  columns: number;
  rows: number;
  band: number; // px per expert band (of one panel's x scale)
  panelWidth: number;
  panelHeight: number;
  /** Label one band in `labelEvery` (1 = all). */
  labelEvery: number;
  labelAngle: number;
  labelFontSize: number;
  /** Inner padding of the band scale (bars touch when bands are very narrow). */
  paddingInner: number;
}

/** Width in px of an x label (an expert id of `digits` digits) at a font size, DejaVu Sans digits are 0.64 em. */
const labelWidth = (digits: number, size: number) => digits * 0.64 * size;

/**
 * The natural band for E experts: 22 px up to 16 experts (the seed), then narrowing so that a
 * panel stays near 640 px, never below MIN_BAND.
 */
export function naturalBand(experts: number): number {
  if (experts <= 16) return MAX_BAND;
  return Math.max(MIN_BAND, Math.min(MAX_BAND, Math.floor(TARGET_PANEL / experts)));
}

/**
 * Panels per row and the band width that fit `width`. `barsPerBand` widens each band for
 * side-by-side bars (group normalisation). Throws a RangeError (the caller turns it into an input
 * error naming its flag) when even 1 px bands do not fit.
 */
export function figureLayout(experts: number, panels: number, estimate: Chrome, opts: LayoutOptions = {}, barsPerBand = 1): Layout {
  const limit = opts.width;
  const chrome = { ...estimate, axisLeft: estimate.axisLeft + (opts.slackX ?? 0), perRow: estimate.perRow + (opts.slackY ?? 0) };
  const pageWidth0 = limit ?? DEFAULT_PAGE_WIDTH;
  const pageWidth = pageWidth0;
  const perPanel = (band: number) => experts * band * barsPerBand;
  const rowWidth = (cols: number, band: number) => chrome.right + cols * (chrome.axisLeft + perPanel(band)) + (cols - 1) * PANEL_SPACING;
  // the band that makes `cols` panels fill the page width
  const bandFor = (cols: number, page = pageWidth) => ((page - chrome.right - (cols - 1) * PANEL_SPACING) / cols - chrome.axisLeft) / (experts * barsPerBand);
  const heightFor = (rows: number) =>
    opts.height === undefined ? (opts.panelHeight ?? DEFAULT_PANEL_HEIGHT) : Math.floor((opts.height - chrome.top - rows * chrome.perRow - (rows - 1) * PANEL_SPACING) / rows);
  const natural = opts.bandWidth ?? naturalBand(experts);
  let columns: number;
  if (opts.columns !== undefined) columns = Math.max(1, Math.min(opts.columns, panels));
  else {
    columns = 1;
    while (columns < panels && rowWidth(columns + 1, natural) <= pageWidth0) columns++;
    // more panels per row are worth narrower bars: down to half their natural width under a width
    // limit (a paper's row of 3), to 70% at the natural size (64 experts: 3 panels in a row, not 2 + 1)
    if (opts.bandWidth === undefined) {
      const floor = Math.max(MIN_BAND, natural * (limit !== undefined ? 0.5 : 0.7));
      while (columns < panels && bandFor(columns + 1) >= floor) columns++;
    }
    // a height too small for the rows: more panels per row, their bars narrowing down to the floor
    while (heightFor(Math.ceil(panels / columns)) < MIN_PANEL_HEIGHT && columns < panels && bandFor(columns + 1, pageWidth0) >= Math.min(natural, MIN_BAND)) columns++;
  }
  let band = natural;
  if (rowWidth(columns, natural) > pageWidth && opts.bandWidth === undefined) {
    // a width limit (or fixed columns, or a height) that the natural band does not meet: narrow the bands to fit
    band = bandFor(columns);
    if (band < HARD_MIN_BAND) {
      const need = Math.ceil(rowWidth(columns, HARD_MIN_BAND));
      throw new RangeError(`${columns} panel${columns > 1 ? 's' : ''} of ${experts} experts need${columns > 1 ? '' : 's'} at least ${need} px`);
    }
    band = Math.floor(band * 100) / 100;
  }
  const rows = Math.ceil(panels / columns);
  const panelHeight = heightFor(rows);
  if (panelHeight < MIN_PANEL_HEIGHT) {
    const need = Math.ceil(chrome.top + rows * (chrome.perRow + MIN_PANEL_HEIGHT) + (rows - 1) * PANEL_SPACING);
    throw new RangeError(`${rows} row${rows > 1 ? 's' : ''} of panels need${rows > 1 ? '' : 's'} at least ${need} px`);
  }
  return { columns, rows, band, panelWidth: perPanel(band), panelHeight, ...xLabels(experts, band * barsPerBand) };
}

/** Label size, angle and thinning for bands of `band` px holding ids up to E-1. */
export function xLabels(experts: number, band: number): Pick<Layout, 'labelEvery' | 'labelAngle' | 'labelFontSize' | 'paddingInner'> {
  const digits = String(Math.max(0, experts - 1)).length;
  const paddingInner = band >= 8 ? 0.15 : band >= 3 ? 0.1 : 0;
  if (labelWidth(digits, 11) + 3 <= band) return { labelEvery: 1, labelAngle: 0, labelFontSize: 11, paddingInner };
  // vertical labels: each needs about its font size plus a gap across the axis
  const size = band >= 10 ? 10 : 9;
  const labelEvery = Math.max(1, Math.ceil((size + 2) / band));
  return { labelEvery, labelAngle: 270, labelFontSize: size, paddingInner };
}

/** The labelled bands of a panel: every k-th of its order, starting with the first. */
export function thinLabels(order: readonly number[], every: number): number[] {
  return every <= 1 ? [...order] : order.filter((_, i) => i % every === 0);
}
