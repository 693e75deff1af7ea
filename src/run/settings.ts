/**
 * From a run's config to the training loop's settings: the one mapping, used by `train` and the
 * demo alike.
 */
import type { RunConfig } from '../config.js';
import type { LoopSettings } from '../training.js';

/** Sequences in the fixed-noise sample grid recorded at every evaluation (and drawn in the pictures). */
export const GRID_SIZE = 16;
/** The same for images (a 2-D shape): an 8 × 8 grid of pictures. */
export const IMAGE_GRID_SIZE = 64;

/**
 * Evaluations sum over all t (exact in t) by default when one pass over t costs at most this many
 * bit-terms (T · L): the default heartbeat run (T = 2000, L = 20: 40,000) does. Above it (28×28
 * images at T = 1000: 784,000) they use `STRATA_WHEN_EXPENSIVE` strata of t. Stratifying does
 * not lower the variance per network row here (most of it is the x_t draw within a stratum), so
 * it only trades precision for time: worth it only when the full sum is too slow.
 */
export const FULL_SUM_MAX_TERMS = 65_536;
/** Default strata of t when the full sum is expensive (`evaluate` and `training.eval_strata`). */
export const STRATA_WHEN_EXPENSIVE = 64;

/** Whether one pass over all t (T network rows of L bits) is cheap enough to be the default: T · L <= 65,536. */
export function fullSumIsCheap(T: number, length: number): boolean {
  return T * length <= FULL_SUM_MAX_TERMS;
}

/** The default strata of t of a bound for T steps and L bits: 0 (the full sum) when T · L <= 65,536, else 64. */
export function defaultBoundStrata(T: number, length: number): number {
  return fullSumIsCheap(T, length) ? 0 : STRATA_WHEN_EXPENSIVE;
}

/** Strata of t of a run's evaluations: training.eval_strata, or when null `defaultBoundStrata`. */
export function evaluationStrata(config: RunConfig, length: number): number {
  return config.training.eval_strata ?? defaultBoundStrata(config.model.T, length);
}

/** Chain steps of the samples drawn at evaluations and for the pictures when the full chain is expensive. */
export const SAMPLE_STEPS_WHEN_EXPENSIVE = 100;

/**
 * The default network calls of a sampling chain at evaluations and in the run's pictures: every
 * step (undefined) when T · L <= 65,536 or the model predicts x_(t-1) directly (it cannot jump),
 * else 100 strided steps (`SampleOptions.steps`): a 28×28 model at T = 1000 would otherwise spend
 * minutes per evaluation drawing its 64-image grid.
 */
export function defaultSampleSteps(T: number, length: number, parameterisation: string): number | undefined {
  return fullSumIsCheap(T, length) || parameterisation !== 'x0' || T <= SAMPLE_STEPS_WHEN_EXPENSIVE ? undefined : SAMPLE_STEPS_WHEN_EXPENSIVE;
}

/** Chain steps of a run's evaluation samples: training.sample_steps (at most T), or when null `defaultSampleSteps`. */
export function evaluationSampleSteps(config: RunConfig, length: number): number | undefined {
  const { T, parameterisation } = config.model;
  const steps = config.training.sample_steps;
  if (steps === null) return defaultSampleSteps(T, length, parameterisation);
  return steps >= T ? undefined : steps;
}

/** The sample grid's size for a model of this row shape: 64 images for [H, W], else 16 sequences. */
export function gridSizeFor(shape: readonly number[] | null | undefined): number {
  return shape != null && shape.length === 2 ? IMAGE_GRID_SIZE : GRID_SIZE;
}

/**
 * The loop settings of a run of `totalSteps` steps (see `totalSteps` in src/config.ts) on sequences
 * of `length` bits; `shape` (the model's row shape, which may come from the data rather than the
 * config) sizes the sample grid.
 */
export function loopSettings(config: RunConfig, totalSteps: number, length: number, shape?: readonly number[] | null): LoopSettings {
  const training = config.training;
  return {
    totalSteps,
    batchSize: training.batch_size,
    seed: training.seed,
    logEvery: training.log_every,
    evalEvery: training.eval_every,
    evalRepeats: training.eval_repeats,
    evalSequences: training.eval_sequences,
    evalSamples: training.eval_samples,
    evalStrata: evaluationStrata(config, length),
    sampleSteps: evaluationSampleSteps(config, length),
    gridSize: gridSizeFor(shape ?? config.model.shape),
    checkpointEvery: training.checkpoint_every,
    earlyStopping: training.early_stopping,
  };
}
