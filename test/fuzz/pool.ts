import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One fuzz case: input files written into a fresh folder ($D in args), then one CLI run. */
export interface FuzzCase {
  files: Record<string, Uint8Array>;
  /** CLI arguments; `$D` stands for the case folder. */
  args: string[];
  /** The output the run names (relative to $D): must not exist after a failed run. */
  out?: string;
}

export interface CaseResult {
  ok: boolean;
  why?: string;
  code: number | null;
  stderr: string;
  ms: number;
}

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url));
const TIMEOUT_MS = Number(process.env.FUZZ_TIMEOUT_MS ?? 30_000);
const HEAP_MB = Number(process.env.FUZZ_HEAP_MB ?? 1024);
const MAX_RSS = Number(process.env.FUZZ_MAX_RSS_MB ?? 3072) * 1024 * 1024;

interface Reply {
  code: number;
  stdout: string;
  stderr: string;
  rss: number;
  fatal?: boolean;
  ready?: boolean;
}

/**
 * Runs cases through a child process (test/fuzz/child.ts) and checks SPEC §6 on each: exit 0 or
 * 2 (never 1, a crash or a signal); on exit 2 exactly one stderr line `moescope: error: ...`
 * without a stack; no output or temporary left by a failed run; inputs never written to;
 * bounded time (a timeout kills the child) and memory (heap limit, RSS checked after the case).
 */
export class FuzzPool {
  private child: ChildProcess | null = null;
  private ready: Promise<void> | null = null;
  private pending: ((r: Reply | null) => void) | null = null;
  readonly root = mkdtempSync(join(tmpdir(), 'moescope-fuzz-'));
  private n = 0;

  private start(): Promise<void> {
    const child = fork(CHILD, [], {
      // the heap limit through NODE_OPTIONS: worker threads (capture's pool) refuse it in execArgv
      env: { ...process.env, MOESCOPE_FUZZ_CHILD: '1', NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=${HEAP_MB}`.trim() },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    child.stderr?.resume();
    this.child = child;
    this.ready = new Promise((resolve, reject) => {
      child.once('message', (m: Reply) => (m.ready ? resolve() : reject(new Error('fuzz child did not start'))));
      child.once('exit', (c) => reject(new Error(`fuzz child exited (${c}) before it was ready`)));
    });
    child.on('message', (m: Reply) => {
      if (m.ready) return;
      const p = this.pending;
      this.pending = null;
      p?.(m);
    });
    child.on('exit', () => {
      if (this.child === child) this.child = null;
      const p = this.pending;
      this.pending = null;
      p?.(null);
    });
    return this.ready;
  }

  private kill(): void {
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null) c.kill('SIGKILL');
  }

  async run(c: FuzzCase): Promise<CaseResult> {
    if (!this.child) await this.start();
    await this.ready;
    const dir = join(this.root, `case-${this.n++}`);
    mkdirSync(dir);
    for (const [name, bytes] of Object.entries(c.files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), bytes);
    }
    const args = c.args.map((a) => a.split('$D').join(dir));
    const t0 = Date.now();
    const reply = await new Promise<Reply | null>((resolve) => {
      const timer = setTimeout(() => {
        this.pending = null;
        this.kill();
        resolve(null);
      }, TIMEOUT_MS);
      this.pending = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.child!.send({ args, cwd: dir });
    });
    const ms = Date.now() - t0;
    const fail = (why: string): CaseResult => ({ ok: false, why, code: reply?.code ?? null, stderr: reply?.stderr ?? '', ms });
    try {
      if (!reply) return fail(ms >= TIMEOUT_MS ? `timeout after ${TIMEOUT_MS} ms` : 'crashed (killed or out of memory)');
      if (reply.fatal) {
        this.kill();
        return fail('uncaught exception in the CLI process');
      }
      if (reply.rss > MAX_RSS) {
        this.kill();
        return fail(`memory: RSS ${Math.round(reply.rss / 2 ** 20)} MB after the case`);
      }
      if (reply.code !== 0 && reply.code !== 2) return fail(`exit code ${reply.code}`);
      for (const [name, bytes] of Object.entries(c.files)) {
        const p = join(dir, name);
        if (!existsSync(p) || !Buffer.from(readFileSync(p)).equals(Buffer.from(bytes))) return fail(`input ${name} was changed`);
      }
      if (reply.code === 2) {
        const lines = reply.stderr.split('\n').filter((l) => l.trim() !== '' && !/^\S+ \[[#.]+\] /.test(l) && !/^moescope: note: /.test(l));
        if (lines.length !== 1) return fail(`${lines.length} stderr lines`);
        if (!lines[0].startsWith('moescope: error: ')) return fail('stderr line does not start with "moescope: error: "');
        if (/\n\s+at .*:\d+/.test(reply.stderr)) return fail('stack trace on stderr');
        if (c.out && existsSync(join(dir, c.out))) return fail(`failed run left its output ${c.out}`);
      }
      const left = readdirSync(dir).filter((f) => f.includes('.tmp-'));
      if (left.length) return fail(`temporaries left: ${left.join(', ')}`);
      return { ok: true, code: reply.code, stderr: reply.stderr, ms };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  close(): void {
    this.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}

export function isDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}
