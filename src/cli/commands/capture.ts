import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('capture').description('(not built yet)').action(() => {
    throw new Error('capture is not built yet');
  });
}
