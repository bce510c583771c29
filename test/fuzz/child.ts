/**
 * A long-lived process that runs CLI cases in-process, one at a time, for the fuzz pool
 * (test/fuzz/pool.ts): starting Node and loading DuckDB once instead of per case makes thousands
 * of cases affordable, while the pool still bounds each case's time and memory from outside
 * (a hang or a heap blow-up kills this process, and the case fails).
 * Does nothing unless started by the pool (node --test runs every file under dist/test/).
 */
import { fileURLToPath } from 'node:url';

interface Request {
  args: string[];
  cwd: string;
}

if (process.env.MOESCOPE_FUZZ_CHILD === '1' && process.send) {
  const mainJs = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const { run } = (await import(mainJs)) as { run: (argv: string[]) => Promise<void> };
  let queue = Promise.resolve();
  process.on('message', (m: Request) => {
    queue = queue.then(async () => {
      let stdout = '', stderr = '';
      const out = process.stdout.write.bind(process.stdout);
      const err = process.stderr.write.bind(process.stderr);
      process.stdout.write = ((s: string | Uint8Array) => ((stdout += String(s)), true)) as typeof process.stdout.write;
      process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true)) as typeof process.stderr.write;
      process.exitCode = 0;
      let code: number;
      try {
        process.chdir(m.cwd);
        await run(['node', 'moescope', ...m.args]);
        code = Number(process.exitCode ?? 0);
      } catch (e) {
        stderr += `uncaught: ${(e as Error)?.stack ?? e}\n`;
        code = 1;
      } finally {
        process.stdout.write = out;
        process.stderr.write = err;
        process.exitCode = 0;
      }
      process.send!({ code, stdout: stdout.slice(0, 20_000), stderr: stderr.slice(0, 20_000), rss: process.memoryUsage().rss });
    });
  });
  process.on('uncaughtException', (e) => {
    process.send!({ code: 1, stdout: '', stderr: `uncaughtException: ${e?.stack ?? e}`, rss: process.memoryUsage().rss, fatal: true }, () => process.exit(70));
  });
  process.on('unhandledRejection', (e) => {
    process.send!({ code: 1, stdout: '', stderr: `unhandledRejection: ${(e as Error)?.stack ?? e}`, rss: process.memoryUsage().rss, fatal: true }, () => process.exit(70));
  });
  process.send({ ready: true });
}
