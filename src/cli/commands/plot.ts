import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('plot').description('(not built yet)').action(() => {
    throw new Error('plot is not built yet');
  });
}
