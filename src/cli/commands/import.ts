import type { Command } from 'commander';

export function register(program: Command): void {
  program.command('import').description('(not built yet)').action(() => {
    throw new Error('import is not built yet');
  });
}
