/**
 * The two kinds of failure. A `UserError` is a mistake in the user's input (bad file, bad flag, bad
 * config key): the CLI prints its message on one line and exits with code 2, without a stack trace.
 * An `InternalError` is a bug (a broken invariant in the core, a WebAssembly trap): the CLI prints
 * it on one line with how to report it and exits with code 70 (EX_SOFTWARE).
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

/** What an internal error's message ends with: how to report it. */
export const HOW_TO_REPORT = 'this is a bug in bernoulli-diffusion: please report it with the command line, the package version and the files it read';

/** A broken invariant in the package (a bug, or a trap in the wasm core), not a mistake of the user; exit code 70. */
export class InternalError extends Error {
  /** The exit code the CLI ends with (EX_SOFTWARE). */
  readonly exitCode = 70;
  /** The message without the reporting instructions. */
  readonly detail: string;
  constructor(detail: string) {
    super(`${detail} (${HOW_TO_REPORT})`);
    this.name = 'InternalError';
    this.detail = detail;
  }
}

/** Whether `error` is an InternalError (a bug: the CLI prints one line and how to report it, exit 70). */
export function isInternalError(error: unknown): error is InternalError {
  return error instanceof InternalError;
}

/**
 * Maps a value thrown by the wasm core to our errors (the core throws an `Error` named
 * 'UserError' or 'InternalError'; a Rust panic arrives as a `WebAssembly.RuntimeError`):
 * 'UserError' -> UserError; 'InternalError', a trap or anything else -> InternalError.
 * `what` names the operation ("sampling", a checkpoint's path) and prefixes the message.
 */
export function fromWasmError(error: unknown, what?: string): UserError | InternalError {
  if (error instanceof UserError || error instanceof InternalError) return error;
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  const prefix = what === undefined ? '' : `${what}: `;
  if (error instanceof Error && error.name === 'UserError') return new UserError(`${prefix}${message}`);
  const trap = typeof WebAssembly !== 'undefined' && error instanceof WebAssembly.RuntimeError;
  return new InternalError(`${prefix}${trap ? `the WebAssembly core stopped (${message})` : message}`);
}
