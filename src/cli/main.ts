import { Command, CommanderError } from 'commander';
import { isInputError } from '../util/errors.js';
import { VERSION } from '../version.js';
import { registerCommands } from './commands/index.js';

/** Entry point of bin/moescope: parse, run, and turn failures into one line and an exit code. */
export async function run(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  const program = new Command('moescope')
    .description('Where a Mixture-of-Experts model sends its tokens')
    .version(VERSION)
    .option('--debug', 'print stack traces on errors')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  registerCommands(program);
  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ outputError: () => {} }).option('--debug', 'print stack traces on errors');
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = reportError(e, debug);
  }
}

function reportError(e: unknown, debug: boolean): number {
  if (e instanceof CommanderError) {
    if (e.exitCode === 0) return 0; // --help, --version
    process.stderr.write(`moescope: error: ${e.message.replace(/^error: /, '')}\n`);
    return 2;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`moescope: error: ${msg.split('\n')[0]}\n`);
  if (debug && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
  return isInputError(e) ? 2 : 1;
}
