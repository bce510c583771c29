import { Command, CommanderError } from 'commander';
import { InputError, isInputError } from '../util/errors.js';
import { fsInputError } from '../util/input-file.js';
import { resetOutputGuard } from '../util/output-guard.js';
import { clearProgressLine } from '../util/progress.js';
import { VERSION } from '../version.js';
import { registerCommands } from './commands/index.js';

/** Entry point of bin/moescope: parse, run, and turn failures into one line and an exit code. */
export async function run(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  resetOutputGuard();
  // a reader that stops early (`moescope analyze T | head`): the rest of the printout goes nowhere,
  // and the command still finishes its own work (an unhandled EPIPE was a stack trace)
  if (process.stdout.listenerCount('error') === 0) {
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
  const program = new Command('moescope')
    .description('Where a Mixture-of-Experts model sends its tokens')
    .version(VERSION)
    .option('--debug', 'print stack traces on errors')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  registerCommands(program);
  for (const cmd of program.commands) {
    cmd.exitOverride().configureOutput({ outputError: () => {} }).option('--debug', 'print stack traces on errors');
    // SPEC §6: --out replaces only our own output of the same kind, unless --force
    if (cmd.options.some((o) => o.long === '--out') && !cmd.options.some((o) => o.long === '--force')) {
      cmd.option('--force', 'replace an existing --out folder even when it is not a moescope output of the same kind (never an input)');
    }
  }
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = reportError(e, debug);
  }
}

/** Node's own errors that mean bad input (a file missing, a folder where a file should be, ...). */
const INPUT_FS_CODES = new Set(['ENOENT', 'EISDIR', 'ENOTDIR', 'EACCES', 'EPERM', 'ELOOP', 'ENAMETOOLONG']);

function reportError(e: unknown, debug: boolean): number {
  clearProgressLine();
  if (e instanceof CommanderError) {
    if (e.exitCode === 0) return 0; // --help, --version
    process.stderr.write(`moescope: error: ${oneLine(e.message.replace(/^error: /, ''))}\n`);
    return 2;
  }
  const err = e as NodeJS.ErrnoException;
  let shown: unknown = e;
  if (!isInputError(e) && err && typeof err.code === 'string' && typeof err.path === 'string' && INPUT_FS_CODES.has(err.code)) {
    shown = fsInputError(err.path, e);
  }
  const msg = shown instanceof Error ? shown.message : String(shown);
  process.stderr.write(`moescope: error: ${oneLine(msg)}\n`);
  if (debug && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
  return shown instanceof InputError ? 2 : 1;
}

/** Exactly one line: later lines of a message are joined, never printed on their own. */
function oneLine(s: string): string {
  return s.split('\n').map((l) => l.trim()).filter((l) => l !== '').join('; ') || 'failed';
}
