/**
 * The `bernoulli-diffusion` command (Node): runs the shared command modules with real files and a
 * terminal. User errors print one line, `error: …`, on stderr and exit with 2; internal errors (a
 * bug in the core) one line, `internal error: …`, with how to report it, and exit with 70; no stack
 * trace for either.
 */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { runCli } from '../commands/index.js';
import { isInternalError, isUserError } from '../errors.js';
import { NodeIo } from './io.js';
import './wasm-file.js'; // the wasm core is read from pkg/ on Node

function packageVersion(): string | undefined {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** Runs one command line; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  // Output piped into a reader that stopped (`generate … | head`): end quietly, as Unix tools do.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const io = new NodeIo();
  try {
    return await runCli(yargs, args, io, { version: packageVersion(), width: process.stdout.columns });
  } catch (error) {
    if (isUserError(error)) {
      process.stderr.write(`error: ${error.message.split('\n')[0]}\n`);
      return error.exitCode;
    }
    if (isInternalError(error)) {
      process.stderr.write(`internal error: ${error.message.split('\n')[0]}\n`);
      return error.exitCode;
    }
    throw error;
  }
}
