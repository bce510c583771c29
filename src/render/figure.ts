import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { figureFormat, type FigureFormat } from './figure-format.js';
import { fontFiles, isBold, textWidth } from './figure-font.js';
import { svgSize, svgToPdf } from './figure-pdf.js';
import { svgTextToPaths } from './figure-svg-text.js';
import { writeFileAtomic } from '../util/atomic.js';
import { LIMITS } from '../util/limits.js';
import type { Vl } from './spec.js';
import type { LayoutOptions } from './spec-layout.js';

export { figureFormat, type FigureFormat };
export { svgSize };

// vega lays text out (axis offsets, legend widths, label overlap) with the real widths of the bundled font
(vega as unknown as { textMetrics: { width: (item: { fontSize?: number; fontWeight?: unknown }, text: unknown) => number } }).textMetrics.width = (item, text) =>
  textWidth(String(text ?? ''), item.fontSize ?? 11, isBold(item.fontWeight));

/** The bundled TTF paths, for other renderers of moescope's charts. */
export function fontFileList(): string[] {
  const f = fontFiles();
  return [f.regular, f.bold];
}

/** Vega-Lite -> Vega -> SVG, headless; text stays <text> in DejaVu Sans (see svgTextToPaths). */
export async function specToSvg(spec: Vl): Promise<string> {
  const compiled = compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG -> PNG with resvg at `scale` (2 = crisp on screens and in papers), with the bundled font only. */
export function svgToPng(svg: string, scale = 2): Uint8Array {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: false, fontFiles: fontFileList(), defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/** A figure as a function of the layout correction: chrome px per column/row beyond the estimate, and a fixed panels-per-row. */
export type FigureBuilder = (slack: Pick<LayoutOptions, 'slackX' | 'slackY' | 'columns'>) => Vl;

export interface RenderOptions {
  /** Limit of the whole figure's width in px (`--width`). */
  width?: number;
  /** The whole figure's height in px (`--height`). */
  height?: number;
  /** PNG: pixels per figure px (default 2); SVG and PDF: size multiplier (default 1). */
  scale?: number;
}

const gridOf = (spec: Vl) => (spec.usermeta as { layout?: { rows: number; columns: number } } | undefined)?.layout ?? { rows: 1, columns: 1 };

/**
 * Render a figure whose layout estimates its chrome (axes, legend, titles), then measure the SVG
 * and lay out again with the difference, so that `--width`/`--height` hold: first grow the
 * correction until the figure fits (this may wrap panels differently), then, with the panels
 * per row fixed, set the panel height so the figure is as tall as asked. A last small excess
 * is removed by scaling the vector drawing.
 */
export async function fittedSvg(build: FigureBuilder | Vl, opts: RenderOptions = {}): Promise<{ svg: string; spec: Vl }> {
  if (typeof build !== 'function') return { svg: fitSvg(await specToSvg(build), opts.width, opts.height), spec: build };
  let slack: Parameters<FigureBuilder>[0] = { slackX: 0, slackY: 0 };
  let spec = build(slack);
  let svg = await specToSvg(spec);
  for (let i = 0; i < 4; i++) {
    const { width, height } = svgSize(svg);
    const overX = opts.width !== undefined ? Math.max(0, width - opts.width) : 0;
    const overY = opts.height !== undefined ? Math.max(0, height - opts.height) : 0;
    if (overX < 0.5 && overY < 0.5) break;
    const grid = gridOf(spec);
    slack = { slackX: slack.slackX! + overX / grid.columns, slackY: slack.slackY! + overY / grid.rows };
    spec = build(slack);
    svg = await specToSvg(spec);
  }
  for (let i = 0; i < 3 && opts.height !== undefined; i++) {
    const off = svgSize(svg).height - opts.height;
    if (Math.abs(off) < 1) break;
    const grid = gridOf(spec);
    const next = { ...slack, slackY: slack.slackY! + off / grid.rows, columns: grid.columns };
    let nextSpec: Vl;
    try {
      nextSpec = build(next);
    } catch (e) {
      if (e instanceof RangeError) break;
      throw e;
    }
    const nextSvg = await specToSvg(nextSpec);
    if (opts.width !== undefined && svgSize(nextSvg).width > opts.width + 0.5) break;
    [slack, spec, svg] = [next, nextSpec, nextSvg];
  }
  return { svg: fitSvg(svg, opts.width, opts.height), spec };
}

/** Scale an SVG down (vector, via its viewBox) so that it is at most width x height. */
export function fitSvg(svg: string, maxWidth?: number, maxHeight?: number): string {
  const { width, height } = svgSize(svg);
  const s = Math.min(1, maxWidth !== undefined ? maxWidth / width : 1, maxHeight !== undefined ? maxHeight / height : 1);
  return s < 1 ? resizeSvg(svg, s) : svg;
}

/** Multiply an SVG's displayed size, keeping its drawing (viewBox) as it is. */
export function resizeSvg(svg: string, s: number): string {
  if (s === 1) return svg;
  const { width, height } = svgSize(svg);
  const w = Math.floor(width * s * 100) / 100, h = Math.floor(height * s * 100) / 100;
  return svg.replace(/<svg\b[^>]*>/, (root) => root.replace(/\swidth="[^"]*"/, ` width="${w}"`).replace(/\sheight="[^"]*"/, ` height="${h}"`));
}

/** The bytes of a figure in a format (the SVG with its text as glyph paths, so it needs no font). */
export async function renderFigure(spec: Vl | FigureBuilder, format: FigureFormat, opts: RenderOptions = {}): Promise<string | Uint8Array> {
  if (format === 'vl.json' && opts.width === undefined && opts.height === undefined) {
    return JSON.stringify(typeof spec === 'function' ? spec({}) : spec, null, 2) + '\n';
  }
  const { svg, spec: final } = await fittedSvg(spec, opts);
  if (format === 'vl.json') return JSON.stringify(final, null, 2) + '\n';
  if (format === 'png') {
    // the pixel buffer is checked before it is allocated
    const scale = opts.scale ?? 2;
    const { width, height } = svgSize(svg);
    if (width * scale > LIMITS.figurePixels || height * scale > LIMITS.figurePixels) {
      throw new RangeError(`a PNG of ${Math.ceil(width * scale)} x ${Math.ceil(height * scale)} px is over the limit of ${LIMITS.figurePixels} px a side`);
    }
    return svgToPng(svg, scale);
  }
  if (format === 'pdf') return svgToPdf(svg, opts.scale ?? 1);
  return resizeSvg(svgTextToPaths(svg), opts.scale ?? 1);
}

/** Render then write atomically (nothing is written if rendering fails). */
export async function writeFigure(path: string, spec: Vl | FigureBuilder, opts: RenderOptions = {}): Promise<void> {
  const bytes = await renderFigure(spec, figureFormat(path), opts);
  writeFileAtomic(path, bytes);
}
