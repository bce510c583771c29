import { InputError } from '../util/errors.js';

export type FigureFormat = 'svg' | 'png' | 'pdf' | 'vl.json';
export const FIGURE_FORMATS: readonly FigureFormat[] = ['svg', 'png', 'pdf', 'vl.json'];

/** The figure format from the output name (checked before any work is done). */
export function figureFormat(path: string): FigureFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.vl.json')) return 'vl.json';
  if (lower.endsWith('.svg')) return 'svg';
  if (lower.endsWith('.png')) return 'png';
  if (lower.endsWith('.pdf')) return 'pdf';
  throw new InputError(`--out ${path}: unknown figure format (use .svg, .png, .pdf or .vl.json)`);
}
