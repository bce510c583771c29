import type { Command } from 'commander';
import * as demo from './demo.js';
import * as capture from './capture.js';
import * as analyze from './analyze.js';
import * as plot from './plot.js';
import * as train from './train.js';
import * as importCmd from './import.js';
import * as serve from './serve.js';

/** Each command lives in its own file and adds itself to the program here (SPEC §5 order). */
export function registerCommands(program: Command): void {
  for (const c of [demo, capture, analyze, plot, train, importCmd, serve]) c.register(program);
}
