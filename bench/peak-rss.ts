import { readFileSync } from 'node:fs';

/**
 * This process's peak resident memory in MB, for the memory benchmarks' child processes.
 * Linux's VmHWM (/proc/self/status) is the high-water mark of this program's own memory.
 * `process.resourceUsage().maxRSS` (getrusage) is not: a spawned child's figure starts at its
 * parent's RSS at the fork, which exec keeps, so a child of a bench holding a DuckDB table or a
 * loaded model reported the parent's size, not its own (measured: a child of an 800 MB parent
 * reported 804 MB against a VmHWM of 39 MB). getrusage only where there is no /proc.
 */
export function peakRssMB(): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Number(kb) / 1024;
  } catch {
    // no /proc: below
  }
  return process.resourceUsage().maxRSS / 1024;
}
