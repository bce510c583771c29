/** Bad input or usage: one line on stderr, exit code 2. */
export class InputError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Prefix an input error with where it happened (file, line, record). */
export function inputError(where: string, what: string): InputError {
  return new InputError(`${where}: ${what}`);
}

export function isInputError(e: unknown): e is InputError {
  return e instanceof InputError;
}
