/**
 * A mistake in the user's input (bad file, bad flag, bad config key). The CLI prints the message
 * on one line and exits with code 2, without a stack trace; anything else is a bug.
 */
export class UserError extends Error {
  /** The exit code for the CLI (2 unless said otherwise). */
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/** Whether `error` is a UserError: a mistake in the user's input (print its message), not a bug. */
export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError;
}
