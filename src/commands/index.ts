/**
 * The command-line interface as yargs command modules, shared by the Node CLI (src/node/cli.ts)
 * and the browser's command box: both call `runCli` with their own yargs build and `Io`.
 */
import type { Argv } from 'yargs';
import { UserError } from '../errors.js';
import { dataCommand } from './data.js';
import { evaluateCommand } from './evaluate.js';
import { exportCommand } from './export.js';
import { generateCommand } from './generate.js';
import type { CommandContext, Io } from './io.js';
import { plotCommand } from './plot.js';
import { trainCommand } from './train.js';

export type { CommandContext, Io, ProgressDisplay, RunPictureInputs, RunPictureRenderer } from './io.js';
export { MemoryIo, type MemoryIoOptions } from './memory-io.js';

/**
 * The default export of 'yargs' (Node) or 'yargs/browser' (bundlers): a function from arguments to
 * a parser. Typed loosely so that the package's types do not depend on yargs' (a dev dependency).
 */
export type YargsFactory = (args?: string[]) => unknown;

/** Options of `runCli`. */
export interface RunCliOptions {
  version?: string;
  /** Help text width (a terminal's columns). */
  width?: number;
}

/**
 * Runs one command line (arguments without the program name). Resolves to the exit code:
 * 0 done, 130 interrupted (training checkpointed). User errors reject with a UserError (the
 * caller prints `error: <message>` and exits with 2); a bug in the core rejects with an
 * InternalError (printed on one line with how to report it, exit 70); anything else is a bug too.
 */
export async function runCli(makeYargs: YargsFactory, args: string[], io: Io, options: RunCliOptions = {}): Promise<number> {
  let exitCode = 0;
  const context: CommandContext = { io, setExitCode: (code) => (exitCode = code) };
  const parser = (makeYargs(args) as Argv)
    .scriptName('bernoulli-diffusion')
    .usage('$0 <command> [options]\n\nBernoulli diffusion models for binary sequences (Sohl-Dickstein et al. 2015).')
    .command(trainCommand(context))
    .command(generateCommand(context))
    .command(evaluateCommand(context))
    .command(dataCommand(context))
    .command(plotCommand(context))
    .command(exportCommand(context))
    .demandCommand(1, 'give a command: train, generate, evaluate, data heartbeat, plot or export (see --help)')
    .strict()
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new UserError(`${message} (see --help)`);
    })
    .help()
    .alias('help', 'h')
    .wrap(Math.min(110, options.width ?? 100));
  if (options.version !== undefined) parser.version(options.version);
  else parser.version(false);
  await parser.parseAsync(args, {}, (_error, _argv, output) => {
    if (output) io.print(output);
  });
  return exitCode;
}
