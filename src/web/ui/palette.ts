/**
 * Expert colours: the first ten are d3's category10 (well separated, and the first eight avoid the
 * grey used for special tokens); beyond ten, hues step by the golden angle with alternating lightness.
 */
const BASE = ['#1F77B4', '#FF7F0E', '#2CA02C', '#D62728', '#9467BD', '#8C564B', '#E377C2', '#17BECF', '#BCBD22', '#7F7F7F'];

export function expertColor(e: number): string {
  if (e < 0) return '#CCCCCC';
  if (e < BASE.length) return BASE[e];
  const hue = (e * 137.508) % 360;
  const light = e % 2 ? 38 : 58;
  return `hsl(${hue.toFixed(0)}, 65%, ${light}%)`;
}

export function expertColors(n: number): string[] {
  return Array.from({ length: n }, (_, e) => expertColor(e));
}

/** Black or white, whichever reads better on a colour. */
export function inkOn(color: string): string {
  const c = document.createElement('canvas').getContext('2d');
  if (!c) return '#000';
  c.fillStyle = color;
  const hex = c.fillStyle as string; // normalised to #rrggbb
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return '#000';
  const [r, g, b] = [m[1], m[2], m[3]].map((x) => parseInt(x, 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.3 ? '#000' : '#fff';
}
