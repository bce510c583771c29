/** One benchmark figure beside the peer measured in the same run. */
export interface BenchRow {
  name: string; // what was measured
  ours: number;
  peer: number | null; // null when the peer could not run (say why in `note`)
  unit: string; // e.g. 'tokens/s', 'GFLOP/s', 'ms', 'MB'
  higherIsBetter: boolean;
  peerName: string;
  note?: string;
  target?: string; // the issue's target, e.g. '>= 0.5x'
}

export function ratio(r: BenchRow): number | null {
  if (r.peer === null || r.peer === 0) return null;
  return r.higherIsBetter ? r.ours / r.peer : r.peer / r.ours;
}

export function formatRow(r: BenchRow): string {
  const q = ratio(r);
  const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));
  const peer = r.peer === null ? 'n/a' : `${fmt(r.peer)} ${r.unit}`;
  return `${r.name.padEnd(44)} ours ${fmt(r.ours)} ${r.unit}  vs ${r.peerName}: ${peer}  => ${q === null ? 'n/a' : q.toFixed(2) + 'x'}${r.target ? ` (target ${r.target})` : ''}${r.note ? `  [${r.note}]` : ''}`;
}
