/**
 * From a run's config to the training loop's settings: the one mapping, used by `train` and the
 * demo alike.
 */
import type { RunConfig } from '../config.js';
import type { LoopSettings } from '../training.js';

/** Sequences in the fixed-noise sample grid recorded at every evaluation (and drawn in the pictures). */
export const GRID_SIZE = 16;

/** The loop settings of a run of `totalSteps` steps (see `totalSteps` in src/config.ts). */
export function loopSettings(config: RunConfig, totalSteps: number): LoopSettings {
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
    gridSize: GRID_SIZE,
    checkpointEvery: training.checkpoint_every,
    earlyStopping: training.early_stopping,
  };
}
