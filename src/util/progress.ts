/**
 * Progress on stderr for long work: rate and ETA. Quiet for the first second so quick work
 * stays quiet, and when stderr is not a terminal it prints a plain line every few seconds.
 */
/** The terminal whose last line is an unfinished progress line, if any. */
let openLine: NodeJS.WriteStream | null = null;

/** Clear an unfinished progress line, so that an error message starts on a clean line. */
export function clearProgressLine(): void {
  if (openLine) openLine.write('\r\x1b[K');
  openLine = null;
}

export class Progress {
  private readonly start = Date.now();
  private lastPrint = 0;
  private printed = false;
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly unit = 'samples',
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update(done: number, extra = ''): void {
    const now = Date.now();
    const elapsed = (now - this.start) / 1000;
    const tty = this.stream.isTTY === true;
    if (elapsed < 1 || now - this.lastPrint < (tty ? 200 : 5000)) return;
    this.lastPrint = now;
    this.printed = true;
    this.stream.write((tty ? '\r\x1b[K' : '') + this.line(done, elapsed, extra) + (tty ? '' : '\n'));
    openLine = tty ? this.stream : null;
  }

  done(extra = ''): void {
    if (!this.printed) return;
    const elapsed = (Date.now() - this.start) / 1000;
    const tty = this.stream.isTTY === true;
    this.stream.write((tty ? '\r\x1b[K' : '') + this.line(this.total, elapsed, extra) + '\n');
    openLine = null;
  }

  private line(done: number, elapsed: number, extra: string): string {
    const rate = done / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    const pct = this.total > 0 ? Math.floor((100 * done) / this.total) : 100;
    const width = 20;
    const fill = Math.round((width * pct) / 100);
    const bar = '#'.repeat(fill) + '.'.repeat(width - fill);
    return `${this.label} [${bar}] ${done}/${this.total} ${this.unit} ${rate.toFixed(1)} ${this.unit}/s ETA ${formatSeconds(eta)}${extra ? ' ' + extra : ''}`;
  }
}

export function formatSeconds(s: number): string {
  if (!isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
