import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('train').description('(not built yet)').action(() => {
    throw new Error('train is not built yet');
  });
}
