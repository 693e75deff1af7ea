/**
 * The command box's terminal side: splitting a typed line into arguments as a shell would,
 * running it with the package's shared yargs commands, and the progress bar's text. Files and
 * output go through the `Io` it is given (the package's MemoryIo in the demo's worker).
 */
import { formatLoss, formatSeconds, isInternalError, isUserError, type ProgressUpdate, UserError } from 'bernoulli-diffusion';
import { runCli, type Io, type YargsFactory } from 'bernoulli-diffusion/cli';

const BAR_WIDTH = 30;

/** The line a terminal's progress bar shows: " ████░░░░ 40% | step 120/300 | loss 3.123 bits/seq | 210.0 steps/s | ETA 1s". */
export function progressBarLine(update: ProgressUpdate): string {
  const share = update.total > 0 ? Math.min(1, Math.max(0, update.step / update.total)) : 1;
  const filled = Math.round(share * BAR_WIDTH);
  return (
    ` ${'\u2588'.repeat(filled)}${'\u2591'.repeat(BAR_WIDTH - filled)} ${Math.round(share * 100)}% | step ${update.step}/${update.total} | ` +
    `loss ${formatLoss(update.loss)} bits/seq | ${update.stepsPerSecond.toFixed(1)} steps/s | ETA ${formatSeconds(update.etaSeconds)}`
  );
}

/**
 * Splits a command line into arguments the way a POSIX shell does for simple cases: whitespace
 * separates; '…' quotes literally; "…" quotes, with \" and \\ as escapes; outside quotes a
 * backslash escapes the next character. An unclosed quote is a UserError.
 */
export function splitCommandLine(line: string): string[] {
  const args: string[] = [];
  let current = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new UserError("unclosed quote (') in the command line");
      current += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && (line[j + 1] === '"' || line[j + 1] === '\\')) j++;
        current += line[j];
      }
      if (j >= line.length) throw new UserError('unclosed quote (") in the command line');
      i = j;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) args.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (inWord) args.push(current);
  return args;
}

/**
 * Runs one typed command line (with or without the program name in front) and resolves to its
 * exit code. As the Node CLI does (src/node/cli.ts), a user's mistake becomes one line,
 * `error: …`, on stderr and exit code 2; an InternalError (a bug in the core) as
 * `internal error: …` with how to report it, code 70; anything else as an internal error, code 1.
 */
export async function runCommandLine(makeYargs: YargsFactory, line: string, io: Io, options: { columns?: number } = {}): Promise<number> {
  try {
    const args = splitCommandLine(line);
    if (args[0] === 'bernoulli-diffusion') args.shift();
    return await runCli(makeYargs, args, io, { width: options.columns });
  } catch (error) {
    if (isUserError(error)) {
      io.note(`error: ${error.message.split('\n')[0]}`);
      return error.exitCode;
    }
    if (isInternalError(error)) {
      io.note(`internal error: ${error.message.split('\n')[0]}`); // ends with how to report it
      return error.exitCode;
    }
    io.note(`internal error: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
