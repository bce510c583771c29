import type { Command } from 'commander';
import * as demo from './demo.js';
import * as capture from './capture.js';
import * as analyze from './analyze.js';
import * as plot from './plot.js';
import * as train from './train.js';
import * as importCmd from './import.js';
import * as serve from './serve.js';
import * as compare from './compare.js';
import * as merge from './merge.js';
import * as indexTrace from './index-trace.js';

/** Each command lives in its own file and adds itself to the program here (SPEC §5 order). */
export function registerCommands(program: Command): void {
  for (const c of [demo, capture, analyze, plot, compare, merge, train, importCmd, indexTrace, serve]) c.register(program);
}
