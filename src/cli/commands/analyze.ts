import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('analyze').description('(not built yet)').action(() => {
    throw new Error('analyze is not built yet');
  });
}
