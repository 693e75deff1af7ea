/**
 * Training orchestration, independent of Node and of files: the step loop over shuffled batches,
 * evaluation points, metrics records, checkpoint and early-stopping hooks, and interruption.
 * The command layer (src/commands/train.ts) decides what is written where.
 *
 * Exact resume: the batch of step s depends only on (seed, s) — the data order is a stream of
 * seeded permutations, one per epoch — and everything else random lives in the core's RNG, which
 * the checkpoint carries. So a run stopped at step n and resumed from its checkpoint performs the
 * same steps on the same batches as the uninterrupted run. Evaluations use their own fixed seeds
 * and do not touch the training state.
 */
import { rowString, sampleProportions, type SampleProportions, type Sequences } from './data.js';
import type { BoundEvaluation, DiffusionModel } from './model.js';
import { checkEvaluationBound, checkStepReport } from './divergence.js';
import type { LoopState, MetricRecord, StepReport } from './run/records.js';

// The records of a run are defined in src/run/records.ts.
export type { LoopState, MetricRecord, StepReport } from './run/records.js';
/** The older name of `MetricRecord` (one line of metrics.jsonl). */
export type MetricsRecord = MetricRecord;

/**
 * One optimiser step on a batch (rows × L bits). This is the one place the loop calls into the
 * core, so a pool of workers (gradients of shards, summed, then one update) can replace it.
 */
export type StepFunction = (batch: Uint8Array) => StepReport | Promise<StepReport>;

/** The parts of DiffusionModel the loop and the evaluation use. */
export type TrainableModel = Pick<DiffusionModel, 'step' | 'length' | 'trainStep' | 'sample' | 'evaluate'>;

type MaybePromise<T> = T | Promise<T>;

/**
 * A model whose steps, samples and bounds may arrive asynchronously: a pool of workers
 * (src/parallel/) is one. `runTraining` accepts it as well as a `TrainableModel`.
 */
export interface AsyncTrainableModel {
  readonly step: number;
  readonly length: number;
  trainStep(batch: Uint8Array): MaybePromise<StepReport>;
  sample(...args: Parameters<DiffusionModel['sample']>): MaybePromise<ReturnType<DiffusionModel['sample']>>;
  evaluate(...args: Parameters<DiffusionModel['evaluate']>): MaybePromise<ReturnType<DiffusionModel['evaluate']>>;
}

/** The training loop's settings (steps, batch, evaluation and checkpoint cadence, early stopping). */
export interface LoopSettings {
  totalSteps: number;
  batchSize: number;
  /** Seeds the data order and the evaluations' fixed noise. */
  seed: number;
  logEvery: number;
  /** 0: evaluate only at the last step. */
  evalEvery: number;
  evalRepeats: number;
  /** At most this many validation sequences (a fixed subset) for the bound; 0: all of them. */
  evalSequences: number;
  /** Samples drawn at the run's last evaluation; the ones before it draw only the grid's `gridSize`. */
  evalSamples: number;
  /** Strata of t for the bound at every evaluation (0: the full sum over t). */
  evalStrata: number;
  /** Network calls of the chains drawing the evaluations' samples (undefined: every step, T). */
  sampleSteps?: number;
  /** Sequences in the fixed-noise sample grid recorded at every evaluation. */
  gridSize: number;
  /** 0: no periodic checkpoints (the final one is always written). */
  checkpointEvery: number;
  /** Evaluations without a better bound before stopping; 0: never stop early. */
  earlyStopping: number;
}

/** One evaluation: the bound on the evaluation data and where fresh samples fall. */
export interface Evaluation extends SampleProportions {
  bound_bits: number;
  /** Monte-Carlo standard error of bound_bits for these sequences. */
  bound_stderr: number;
  /** Standard error as an estimate over the data distribution (spread across sequences). */
  bound_sequence_stderr: number;
  bound_repeats: number;
  /** Strata of t of the bound (0: the full sum over t, exact in t). */
  bound_strata: number;
  n_data: number;
  /** Number of samples drawn. */
  samples: number;
  /** The samples, as strings of '0'/'1'. */
  sampleLines: string[];
  /** The bound of each data row, bits (same order as the data). */
  boundPerSequence: Float64Array;
}

/** A progress report of the training loop (for a progress bar). */
export interface ProgressUpdate {
  step: number;
  total: number;
  /** Mean loss of recent steps (bits per sequence). */
  loss: number;
  lr: number;
  /** Training steps per second (without evaluation time). */
  stepsPerSecond: number;
  /** Seconds left at this session's overall pace (evaluations included). */
  etaSeconds: number;
}

/** Why the loop asks for a checkpoint. */
export type CheckpointReason = 'periodic' | 'interrupted' | 'final';

/** Callbacks of the training loop: records, evaluations, checkpoints and progress. */
export interface TrainingHooks {
  onRecord?(record: MetricRecord): void | Promise<void>;
  onEvaluation?(step: number, evaluation: Evaluation): void | Promise<void>;
  /** A new best validation bound (only with early stopping): save the model as the best one. */
  onBest?(state: LoopState): void | Promise<void>;
  onCheckpoint?(reason: CheckpointReason, state: LoopState): void | Promise<void>;
  onProgress?(update: ProgressUpdate): void;
  /**
   * Stopped early, with the best model from before the last step: a model holding the best
   * weights (what the caller keeps as the run's model), so that the final evaluation — the bound
   * and samples reported — is of that model. Absent or undefined: the last step's model.
   */
  bestModel?(state: LoopState): MaybePromise<TrainableModel | AsyncTrainableModel | undefined>;
}

/** Why the loop stopped. */
export type StopReason = 'completed' | 'early_stopping' | 'interrupted';

/** What `runTraining` returns: why it stopped, the loop state, the last evaluation and timings. */
export interface TrainingOutcome {
  stopped: StopReason;
  state: LoopState;
  /** The evaluation at the last step, or of the best model when stopped early and `bestModel` gave one (absent when interrupted before any). */
  lastEvaluation?: { step: number; evaluation: Evaluation };
  stepsThisSession: number;
  trainSeconds: number;
  evalSeconds: number;
}

/** The training and evaluation data, with their sets of distinct sequences. */
export interface TrainingData {
  train: Sequences;
  val: Sequences;
  trainSet: Set<string>;
  valSet: Set<string>;
}

// ---- seeded data order --------------------------------------------------------------------------

/** murmur3's 32-bit finaliser: a bijective mix of a 32-bit value. */
function mix32(value: number): number {
  let z = value >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A seed for a purpose: mixes the run seed with a small integer label (epoch, evaluation kind). */
export function deriveSeed(seed: number, label: number): number {
  return mix32(mix32(seed) ^ mix32(label + 0x632be5ab) ^ 0x9e3779b9);
}

/** 32-bit uniform integers from a Weyl sequence through mix32 (SplitMix32). */
function uniformIntegers(seed: number): (below: number) => number {
  let state = seed >>> 0;
  return (below) => {
    state = (state + 0x9e3779b9) >>> 0;
    return Math.floor((mix32(state) / 4294967296) * below);
  };
}

/** The permutation of 0..n-1 used for `epoch` (Fisher–Yates with the epoch's seed). */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const below = uniformIntegers(deriveSeed(seed, 1000 + epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = below(i + 1);
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  return order;
}

/**
 * Batches for any step: step s takes positions s·B .. s·B+B-1 of the endless sequence of epoch
 * permutations (so every batch is full and every epoch visits every row once).
 */
export class BatchSampler {
  private cachedEpoch = -1;
  private cachedOrder: Uint32Array = new Uint32Array(0);

  constructor(
    private readonly data: Sequences,
    private readonly batchSize: number,
    private readonly seed: number,
  ) {}

  private rowAt(position: number): number {
    const epoch = Math.floor(position / this.data.rows);
    if (epoch !== this.cachedEpoch) {
      this.cachedOrder = epochPermutation(this.data.rows, this.seed, epoch);
      this.cachedEpoch = epoch;
    }
    return this.cachedOrder[position - epoch * this.data.rows];
  }

  /** The rows of the batch for 0-based step index `stepIndex`. */
  rows(stepIndex: number): number[] {
    return Array.from({ length: this.batchSize }, (_, k) => this.rowAt(stepIndex * this.batchSize + k));
  }

  batch(stepIndex: number): Uint8Array {
    const length = this.data.length;
    const out = new Uint8Array(this.batchSize * length);
    this.rows(stepIndex).forEach((row, k) => out.set(this.data.bits.subarray(row * length, (row + 1) * length), k * length));
    return out;
  }

  /** Passes over the data completed after `steps` steps. */
  epochAfter(steps: number): number {
    return (steps * this.batchSize) / this.data.rows;
  }
}

// ---- evaluation ---------------------------------------------------------------------------------

/**
 * The validation sequences a run's evaluations use for the bound: all of them, or `max` rows drawn
 * without replacement by the run's seed (in their original order) — the same rows at every
 * evaluation, so successive bounds (and early stopping) compare like with like, and an evaluation
 * costs the same however large the validation file is.
 */
export function evaluationSubset(data: Sequences, max: number, seed: number): Sequences {
  if (max <= 0 || data.rows <= max) return data;
  const order = Array.from({ length: data.rows }, (_, i) => i);
  const below = uniformIntegers(deriveSeed(seed, 3));
  // Partial Fisher–Yates: the first `max` positions become a uniform sample without replacement.
  for (let i = 0; i < max; i++) {
    const j = i + below(data.rows - i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const rows = order.slice(0, max).sort((a, b) => a - b);
  const bits = new Uint8Array(max * data.length);
  rows.forEach((row, k) => bits.set(data.bits.subarray(row * data.length, (row + 1) * data.length), k * data.length));
  return { length: data.length, rows: max, bits };
}

/** What `evaluateModel` evaluates on: the data, the sets samples are checked against, repeats, samples and seeds. */
export interface EvaluationOptions {
  data: Sequences;
  trainSet: Set<string>;
  dataSet: Set<string>;
  repeats: number;
  /** 0: the full sum over t; K: K strata of t, one t drawn in each (unbiased, K/T of the cost). */
  strata: number;
  samples: number;
  /** Network calls of each sample's chain (undefined: every step, T). */
  sampleSteps?: number;
  /** Seed of the bound's Monte-Carlo noise; the samples use `sampleSeed`. */
  boundSeed: number;
  sampleSeed: number;
}

/** The bound on `data` (Monte-Carlo, full or stratified sum over t) and where `samples` fresh samples fall. */
export function evaluateModel(model: TrainableModel, options: EvaluationOptions): Evaluation {
  const bound = model.evaluate(options.data.bits, { repeats: options.repeats, strata: options.strata, seed: options.boundSeed });
  const { samples } = model.sample(options.samples, { seed: options.sampleSeed, steps: options.sampleSteps });
  return evaluationOf(model.length, bound, samples, options);
}

/** `evaluateModel` for a model that may answer asynchronously (a pool of workers). */
export async function evaluateModelAsync(model: AsyncTrainableModel, options: EvaluationOptions): Promise<Evaluation> {
  const bound = await model.evaluate(options.data.bits, { repeats: options.repeats, strata: options.strata, seed: options.boundSeed });
  const { samples } = await model.sample(options.samples, { seed: options.sampleSeed, steps: options.sampleSteps });
  return evaluationOf(model.length, bound, samples, options);
}

function evaluationOf(length: number, bound: BoundEvaluation, samples: Uint8Array, options: EvaluationOptions): Evaluation {
  const drawn: Sequences = { length, rows: options.samples, bits: samples };
  const sampleLines = Array.from({ length: options.samples }, (_, row) => rowString(drawn, row));
  return {
    bound_bits: bound.boundBits,
    bound_stderr: bound.stderr,
    bound_sequence_stderr: bound.sequenceStderr,
    bound_repeats: bound.repeats,
    bound_strata: bound.strata,
    n_data: options.data.rows,
    samples: options.samples,
    ...sampleProportions(sampleLines, options.trainSet, options.dataSet),
    sampleLines,
    boundPerSequence: bound.perSequence,
  };
}

/** Fixed seeds of a run's evaluations: the same noise at every evaluation point. */
export function evaluationSeeds(seed: number): { boundSeed: number; sampleSeed: number } {
  return { boundSeed: deriveSeed(seed, 1), sampleSeed: deriveSeed(seed, 2) };
}

// ---- the loop -----------------------------------------------------------------------------------

/** Options of `runTraining`. */
export interface TrainOptions {
  model: TrainableModel | AsyncTrainableModel;
  data: TrainingData;
  settings: LoopSettings;
  hooks?: TrainingHooks;
  /** Aborting (Ctrl-C) stops after the current step with an 'interrupted' checkpoint. */
  signal?: AbortSignal;
  /** Milliseconds (for elapsed times and throughput). */
  now: () => number;
  /** State from a resumed checkpoint; `state.step` must equal `model.step`. */
  resumeState?: LoopState;
  /** Default: `model.trainStep`. */
  stepFunction?: StepFunction;
  /** Lets the event loop run (signals, progress, a worker's messages); default: a zero-delay timer. */
  yieldToEventLoop?: () => Promise<void>;
}

const YIELD_INTERVAL_MS = 50;

function defaultYield(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** The training loop: seeded batches, logging, evaluations, checkpoints, early stopping and interruption (the CLI's `train` runs it). */
export async function runTraining(options: TrainOptions): Promise<TrainingOutcome> {
  const { model, data, settings, signal, now } = options;
  const hooks = options.hooks ?? {};
  const stepFunction: StepFunction = options.stepFunction ?? ((batch) => model.trainStep(batch));
  const yieldToEventLoop = options.yieldToEventLoop ?? defaultYield;
  const sampler = new BatchSampler(data.train, settings.batchSize, settings.seed);
  const seeds = evaluationSeeds(settings.seed);

  const state: LoopState = options.resumeState
    ? { ...options.resumeState }
    : { step: 0, bestStep: null, bestBoundBits: null, evalsSinceBest: 0, elapsedSeconds: 0 };
  if (state.step !== model.step) throw new Error(`loop state is at step ${state.step} but the model at ${model.step}`);

  const sessionStart = now();
  const elapsed = () => state.elapsedSeconds + (now() - sessionStart) / 1000;
  let trainMs = 0;
  let evalMs = 0;
  let lastYield = now();
  let lastEvaluation: TrainingOutcome['lastEvaluation'];
  let stepsThisSession = 0;
  let lastCheckpointStep = state.step;

  // Sums since the previous record, for the averaged loss in metrics.
  let windowLoss = 0;
  let windowGradNorm = 0;
  let windowSteps = 0;
  let lastLr = 0;
  // Throughput and a recent loss for progress displays.
  let recentLoss = Number.NaN;

  const checkpoint = async (reason: CheckpointReason) => {
    const snapshot = { ...state, elapsedSeconds: elapsed() };
    await hooks.onCheckpoint?.(reason, snapshot);
    lastCheckpointStep = state.step;
  };

  const boundData = evaluationSubset(data.val, settings.evalSequences, settings.seed);
  // Evaluations before the last draw only the picture grid's samples (a chain of T steps per
  // sample is most of an evaluation's cost); the last draws evalSamples for the final proportions.
  const evaluate = async (last: boolean, target: TrainableModel | AsyncTrainableModel = model): Promise<Evaluation> => {
    const started = now();
    const evaluation = await evaluateModelAsync(target, {
      data: boundData,
      trainSet: data.trainSet,
      dataSet: data.valSet,
      repeats: settings.evalRepeats,
      strata: settings.evalStrata,
      sampleSteps: settings.sampleSteps,
      samples: last ? Math.max(settings.evalSamples, settings.gridSize) : settings.gridSize,
      ...seeds,
    });
    evalMs += now() - started;
    return evaluation;
  };

  let stopped: StopReason = 'completed';
  while (state.step < settings.totalSteps) {
    if (signal?.aborted) {
      stopped = 'interrupted';
      break;
    }
    const started = now();
    const report = await stepFunction(sampler.batch(state.step));
    trainMs += now() - started;
    state.step += 1;
    stepsThisSession += 1;
    if (model.step !== state.step) throw new Error(`the model is at step ${model.step} after loop step ${state.step}`);
    checkStepReport(state.step, report); // a diverged step stops the run before it is recorded or saved
    windowLoss += report.loss;
    windowGradNorm += report.gradNorm;
    windowSteps += 1;
    lastLr = report.lr;
    recentLoss = Number.isNaN(recentLoss) ? report.loss : 0.95 * recentLoss + 0.05 * report.loss;

    const step = state.step;
    const last = step === settings.totalSteps;
    const evalPoint = last || (settings.evalEvery > 0 && step % settings.evalEvery === 0);
    if (evalPoint || step % settings.logEvery === 0) {
      const record: MetricRecord = {
        step,
        epoch: Number(sampler.epochAfter(step).toFixed(4)),
        loss: windowLoss / windowSteps,
        grad_norm: windowGradNorm / windowSteps,
        lr: lastLr,
        elapsed: Number(elapsed().toFixed(3)),
      };
      windowLoss = windowGradNorm = windowSteps = 0;
      if (evalPoint) {
        const evaluation = await evaluate(last);
        checkEvaluationBound(step, evaluation);
        lastEvaluation = { step, evaluation };
        Object.assign(record, {
          bound_bits: evaluation.bound_bits,
          bound_stderr: evaluation.bound_stderr,
          prop_train: evaluation.prop_train,
          prop_val: evaluation.prop_data,
          prop_other: evaluation.prop_other,
          distinct: evaluation.distinct,
          grid: evaluation.sampleLines.slice(0, settings.gridSize),
        });
        await hooks.onEvaluation?.(step, evaluation);
        if (settings.earlyStopping > 0) {
          if (Number.isFinite(evaluation.bound_bits) && (state.bestBoundBits === null || evaluation.bound_bits < state.bestBoundBits)) {
            state.bestBoundBits = evaluation.bound_bits;
            state.bestStep = step;
            state.evalsSinceBest = 0;
            await hooks.onBest?.({ ...state, elapsedSeconds: elapsed() });
          } else {
            state.evalsSinceBest += 1;
          }
        }
      }
      await hooks.onRecord?.(record);
      if (settings.earlyStopping > 0 && state.evalsSinceBest >= settings.earlyStopping && !last) {
        stopped = 'early_stopping';
        break;
      }
    }
    if (!last && settings.checkpointEvery > 0 && step % settings.checkpointEvery === 0) await checkpoint('periodic');

    if (now() - lastYield >= YIELD_INTERVAL_MS || last) {
      hooks.onProgress?.({
        step,
        total: settings.totalSteps,
        loss: recentLoss,
        lr: lastLr,
        stepsPerSecond: trainMs > 0 ? (stepsThisSession * 1000) / trainMs : 0,
        etaSeconds: ((settings.totalSteps - step) * (now() - sessionStart)) / 1000 / stepsThisSession,
      });
      await yieldToEventLoop();
      lastYield = now();
    }
  }

  if (stopped === 'interrupted') {
    if (state.step !== lastCheckpointStep || stepsThisSession === 0) await checkpoint('interrupted');
  } else {
    const best =
      stopped === 'early_stopping' && state.bestStep !== null && state.bestStep !== state.step
        ? await hooks.bestModel?.({ ...state, elapsedSeconds: elapsed() })
        : undefined;
    if (best) {
      // the final evaluation is of the model kept: the best one, not the last step's
      lastEvaluation = { step: state.bestStep!, evaluation: await evaluate(true, best) };
      checkEvaluationBound(state.bestStep!, lastEvaluation.evaluation);
    } else if (lastEvaluation?.step !== state.step || lastEvaluation.evaluation.samples !== Math.max(settings.evalSamples, settings.gridSize)) {
      // Nothing left to train (a finished run resumed) or stopped early (between evaluations, or
      // at one that drew only the grid): the last evaluation, with all its samples.
      lastEvaluation = { step: state.step, evaluation: await evaluate(true) };
      checkEvaluationBound(state.step, lastEvaluation.evaluation);
    }
    await checkpoint('final');
  }
  return {
    stopped,
    state: { ...state, elapsedSeconds: elapsed() },
    lastEvaluation,
    stepsThisSession,
    trainSeconds: trainMs / 1000,
    evalSeconds: evalMs / 1000,
  };
}

/** A duration for progress lines: 42s, 3m07s, 1h05m ('?' when unknown). */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/** A loss in bits/sequence for progress lines (3 decimals; 1 above 100; '-' when not finite). */
export function formatLoss(loss: number): string {
  return Number.isFinite(loss) ? (loss >= 100 ? loss.toFixed(1) : loss.toFixed(3)) : '-';
}
