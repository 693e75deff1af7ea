/**
 * How many workers a command shares its work with (`--workers`, src/parallel/): a number given on
 * the command line, or by default all cores unless the work is too small to gain from them. The
 * count never changes a result (training steps add the batch's fixed shards in one order; samples
 * and bounds use per-sequence streams), only the time.
 */
import type { RunConfig } from '../config.js';
import { UserError } from '../errors.js';
import { MAX_WORKERS, maxWorkers, WORKERS_PER_CORE } from '../run-guards.js';
import type { Io } from './io.js';

/**
 * Multiply-adds below which work stays in this thread by default. Sharing a training step costs
 * two rounds of messages and a gradient sum, about 0.5 ms (more when other programs keep the
 * cores busy), so a step is shared from about 1e7 multiply-adds (a few ms of one core; the default
 * model's step is about 2e7). Starting the workers costs about 0.2 s once, about 1e9 multiply-adds.
 */
export const POOL_MIN_STEP_WORK = 1e7;
export const POOL_MIN_EVALUATION_WORK = 1e9;

/** --workers as given: a positive integer (undefined: choose by the work, `workersFor`). */
export function requestedWorkers(io: Io, requested: number | undefined): number | undefined {
  if (requested === undefined) return undefined;
  if (!Number.isInteger(requested) || requested < 1) throw new UserError(`--workers: expected a whole number of at least 1, got ${requested}`);
  if (requested > 1 && !io.parallel) throw new UserError('--workers: there are no workers here; use --workers 1');
  const cores = io.parallel?.cores() ?? 1;
  if (requested > maxWorkers(cores)) {
    throw new UserError(
      `--workers: at most ${maxWorkers(cores)} (${WORKERS_PER_CORE} per core on these ${cores} cores, and never more than ${MAX_WORKERS}), got ${requested}`,
    );
  }
  return requested;
}

/** The requested count, else all cores when `work` reaches `threshold`, else 1. */
export function workersFor(io: Io, requested: number | undefined, work: number, threshold: number): number {
  if (requested !== undefined) return requested;
  return io.parallel && work >= threshold ? Math.max(1, io.parallel.cores()) : 1;
}

/** Multiply-adds of one network pass over one row (forward ≈ the hidden layers and the input/output layers). */
export function rowWork(config: Pick<RunConfig['model'], 'hidden' | 'layers'>, length: number): number {
  return config.layers * config.hidden * config.hidden + 3 * length * config.hidden;
}
