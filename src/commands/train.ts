/**
 * `train`: resolve the config, load the data, create (or resume) a model, train it, and write the
 * run directory: config.yaml, metrics.jsonl, results.json, model.safetensors, checkpoints/.
 * Every input is validated before anything is created, so a bad input leaves nothing behind.
 */
import type { Argv, CommandModule } from 'yargs';
import {
  checkAgainstLength,
  configLayer,
  configToYaml,
  coreModelConfig,
  coreTrainingConfig,
  DEFAULTS,
  flagsLayer,
  FLAG_KEYS,
  located,
  parseConfigYaml,
  resolveConfig,
  runShape,
  totalSteps,
  type Layer,
  type RunConfig,
} from '../config.js';
import { formatShape, sequenceSet } from '../data.js';
import { UserError } from '../errors.js';
import { DivergenceError, likelyCause } from '../divergence.js';
import { checkMemory, checkResumeFlags, validateRunName } from '../run-guards.js';
import { claimRun, keepLastGoodModel, resumedBest, resumeHint } from './train-guards.js';
import { DiffusionModel } from '../model.js';
import { drawRunPictures } from '../plots/run-pictures.js';
import { runMetadata } from '../run/checkpoint.js';
import { loadRunData, type RunData } from '../run/data.js';
import { type LoadedCheckpoint, readCheckpoint } from '../run/load.js';
import { type LoopState, RESULTS_FORMAT } from '../run/records.js';
import { gridSizeFor, loopSettings } from '../run/settings.js';
import { runTraining, type Evaluation, type TrainingOutcome } from '../training.js';
import type { CommandContext, Io, RunDirectoryClaim } from './io.js';
import { boundText, count, percent, proportionsText } from './text.js';
import { POOL_MIN_STEP_WORK, requestedWorkers, rowWork, workersFor } from './workers.js';
import type { ParallelModel } from '../parallel/pool.js';
import { loadedWasmBuild } from '../wasm.js';

interface TrainArgs {
  config?: string;
  data?: string;
  val?: string;
  out?: string;
  name?: string;
  seed?: number;
  resume?: string;
  T?: number;
  epochs?: number;
  steps?: number;
  lr?: number;
  'batch-size'?: number;
  arch?: string;
  hidden?: number;
  shape?: string;
  'checkpoint-every'?: number;
  'eval-every'?: number;
  'early-stopping'?: number;
  objective?: string;
  quiet: boolean;
  plots: boolean;
  workers?: number;
}

/** Flags that may be given with --resume (they do not change what the model computes). */
const RESUMABLE_FLAGS = new Set(['checkpoint-every', 'eval-every', 'data', 'val']);
const SAMPLES_SHOWN = 8;
const METRICS_FLUSH_MS = 5000;

function builder(yargs: Argv): Argv<TrainArgs> {
  const d = DEFAULTS;
  return yargs
    .usage(
      '$0 train [options]\n\nTrain a Bernoulli diffusion model. With no options: the built-in heartbeat data (L = 20, P = 5, all 5 phases) and the built-in config; the run goes to results/<name>/.',
    )
    .option('config', { type: 'string', describe: 'YAML config file (every key is explained in config.example.yaml)', defaultDescription: 'built-in defaults' })
    .option('data', { type: 'string', describe: 'training data: one sequence of 0/1 per line', defaultDescription: 'built-in heartbeat data' })
    .option('val', { type: 'string', describe: 'validation data (same format)', defaultDescription: 'heartbeat: held-out phases; a file: itself' })
    .option('out', { type: 'string', describe: 'folder that holds run directories', defaultDescription: '"results" (resuming: the checkpoint\'s run)' })
    .option('name', { type: 'string', describe: 'run directory name inside --out', defaultDescription: 'a timestamp' })
    .option('seed', { type: 'number', describe: 'random seed (weights, noise, batch order)', defaultDescription: String(d.training.seed) })
    .option('resume', { type: 'string', describe: 'continue exactly from a checkpoint written by train' })
    .option('T', { type: 'number', describe: 'diffusion steps', defaultDescription: String(d.model.T) })
    .option('steps', { type: 'number', describe: 'optimiser steps', defaultDescription: String(d.training.steps) })
    .option('epochs', { type: 'number', describe: 'passes over the training data (instead of --steps)' })
    .option('lr', { type: 'number', describe: 'peak learning rate', defaultDescription: String(d.training.lr) })
    .option('batch-size', { type: 'number', describe: 'sequences per step', defaultDescription: String(d.training.batch_size) })
    .option('arch', { type: 'string', describe: 'network: mlp, paper, circular or unet', defaultDescription: d.model.architecture })
    .option('hidden', { type: 'number', describe: 'hidden width (mlp, paper) or channels per position (circular)', defaultDescription: String(d.model.hidden) })
    .option('shape', {
      type: 'string',
      describe: 'shape of one row: HxW for images (e.g. 28x28, row-major) or L (config key model.shape)',
      defaultDescription: "the data file's '# shape:' header, else L",
    })
    .option('objective', { type: 'string', describe: 'loss estimator: sampled, importance or full', defaultDescription: d.training.objective })
    .option('eval-every', { type: 'number', describe: 'evaluate every N steps (0: at the end only)', defaultDescription: String(d.training.eval_every) })
    .option('early-stopping', {
      type: 'number',
      describe: 'stop after N evaluations without a better validation bound, keeping the best model (0: off)',
      defaultDescription: String(d.training.early_stopping),
    })
    .option('checkpoint-every', {
      type: 'number',
      describe: 'checkpoint every N steps (0: at the end only)',
      defaultDescription: String(d.training.checkpoint_every),
    })
    .option('workers', {
      type: 'number',
      describe: 'workers sharing every step, data-parallel (1: this thread only)',
      defaultDescription: 'all cores (1 for tiny steps); the model does not depend on it',
    })
    .option('quiet', { type: 'boolean', default: false, describe: 'no progress bar: a plain line every few seconds' })
    .option('plots', { type: 'boolean', default: true, describe: 'draw the pictures and report.html at the end (--no-plots: skip)' })
    .conflicts('steps', 'epochs') as unknown as Argv<TrainArgs>;
}

function timestampName(ms: number): string {
  const date = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}_${two(date.getHours())}-${two(date.getMinutes())}-${two(date.getSeconds())}`;
}

/** The run directory a checkpoint belongs to (<run>/model.safetensors or <run>/checkpoints/step-n…), if any. */
async function runDirectoryOf(io: Io, checkpointPath: string): Promise<string | undefined> {
  const folder = io.dirname(io.resolve(checkpointPath));
  const candidate = io.basename(folder) === 'checkpoints' ? io.dirname(folder) : folder;
  return (await io.exists(io.join(candidate, 'config.yaml'))) ? candidate : undefined;
}

interface Plan {
  config: RunConfig;
  data: RunData;
  model: DiffusionModel;
  total: number;
  runDir: string;
  resume?: LoadedCheckpoint & { sourceRunDir?: string };
  /** Replicas sharing every step (1: this thread only). */
  workers: number;
}

/** All cores unless the steps are too small to share (see POOL_MIN_STEP_WORK); the count does not change the model. */
function trainingWorkers(io: Io, requested: number | undefined, config: RunConfig, length: number): number {
  // forward + backward ≈ 3 passes per row and t
  const work = config.training.batch_size * (config.training.objective === 'full' ? config.model.T : 1) * 3 * rowWork(config.model, length);
  return workersFor(io, requested, work, POOL_MIN_STEP_WORK);
}

/** Everything that can fail on user input, before anything is written. */
async function plan(io: Io, args: TrainArgs): Promise<Plan> {
  const flags = args as unknown as Record<string, unknown>;
  const requested = requestedWorkers(io, args.workers);
  const cwd = io.resolve('.');
  const resolvePath = (base: string | undefined, path: string) => io.resolve(base ?? cwd, path);
  let resume: Plan['resume'];
  const layers: Layer[] = [];

  if (args.resume !== undefined) {
    if (args.config !== undefined) throw new UserError('--config cannot be combined with --resume: the run continues with the configuration in its checkpoint');
    const loaded = await readCheckpoint(io, args.resume);
    if (loaded.runConfig === undefined) {
      throw new UserError(`${args.resume}: has no run configuration in its metadata (it was not written by train), so it cannot be resumed`);
    }
    checkResumeFlags(flags, FLAG_KEYS, RESUMABLE_FLAGS, loaded.runConfig);
    resume = { ...loaded, sourceRunDir: await runDirectoryOf(io, args.resume) };
    layers.push(configLayer(loaded.runConfig, `${args.resume} (checkpoint)`));
  } else if (args.config !== undefined) {
    const text = await io.readText(args.config);
    layers.push(parseConfigYaml(text, args.config, io.dirname(io.resolve(args.config))));
  }
  layers.push(flagsLayer(flags, cwd));
  const resolved = resolveConfig(layers, resolvePath);
  const config = resolved.config;

  const data = await loadRunData(io, config);
  checkAgainstLength(resolved, data.train.data.length, data.train.source);
  const shape = runShape(
    resolved,
    { length: data.train.data.length, shape: data.train.data.shape, source: data.train.source },
    data.val === data.train ? undefined : { shape: data.val.data.shape, source: data.val.source },
  );

  // The run directory: the resumed run's own, or a new one that must not hold a run already.
  let runDir: string;
  if (resume?.sourceRunDir !== undefined && args.out === undefined && args.name === undefined) {
    runDir = resume.sourceRunDir;
  } else {
    const out = io.resolve(args.out ?? 'results');
    if (args.name !== undefined) {
      runDir = io.join(out, validateRunName(args.name));
      if (await io.exists(io.join(runDir, 'config.yaml'))) {
        throw new UserError(`${io.displayPath(runDir)} already holds a run: choose another --name, or ${await resumeHint(io, runDir)}`);
      }
    } else {
      const base = timestampName(io.now());
      runDir = io.join(out, base);
      for (let k = 2; await io.exists(runDir); k++) runDir = io.join(out, `${base}-${k}`);
    }
  }
  // Memory before the model is made (a model too big for a wasm worker dies with "unreachable").
  const length = data.train.data.length;
  const workers = checkMemory(config, length, trainingWorkers(io, requested, config, length), {
    requested: requested !== undefined,
    machineBytes: io.memoryBytes?.(),
    dataShape: shape,
  });
  let model: DiffusionModel;
  let total: number;
  if (resume !== undefined) {
    model = resume.model;
    if (model.length !== data.train.data.length) {
      throw new UserError(`${data.train.source}: its sequences have ${data.train.data.length} bits but the checkpoint's model takes ${model.length}`);
    }
    const modelShape = model.modelConfig.shape ?? [model.length];
    if (shape.length === 2 && formatShape(shape) !== formatShape(modelShape)) {
      throw new UserError(`${data.train.source}: its rows have the shape ${formatShape(shape)} but the checkpoint's model has ${formatShape(modelShape)}`);
    }
    total = model.trainingConfig.total_steps;
  } else {
    total = totalSteps(config.training, data.train.data.rows);
    const warmup = config.training.warmup_steps;
    if (config.training.lr_schedule === 'cosine' && warmup >= total) {
      // The default warm-up would not fit a short run: shorten it; a warm-up the user chose is an error.
      if (resolved.origin('training.warmup_steps') !== 'default') {
        throw located(
          resolved.origin('training.warmup_steps'),
          'training.warmup_steps',
          `out of range: must be less than the run's ${total} steps with the cosine schedule, got ${warmup}`,
        );
      }
      config.training.warmup_steps = Math.floor(total / 10);
    }
    model = await DiffusionModel.create(
      coreModelConfig(config.model, data.train.data.length, shape),
      coreTrainingConfig(config.training, total),
      config.training.seed,
    );
  }

  return { config, data, model, total, runDir, resume, workers };
}

function metricsLinesUpTo(text: string, step: number): string[] {
  const kept: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const record = JSON.parse(line) as { step?: unknown };
      if (typeof record.step === 'number' && record.step <= step) kept.push(line.trim());
    } catch {
      // an unfinished last line from a killed run: dropped
    }
  }
  return kept;
}

/**
 * The training wall time (seconds) of the last metrics record, if any: where a resumed run's clock
 * continues (checkpoints do not carry wall time; records come every log_every steps, so the time
 * since the last record before the checkpoint is not counted).
 */
function elapsedInMetrics(lines: string[]): number | undefined {
  const last = lines.at(-1);
  if (last === undefined) return undefined;
  const elapsed = (JSON.parse(last) as { elapsed?: unknown }).elapsed;
  return typeof elapsed === 'number' && Number.isFinite(elapsed) && elapsed >= 0 ? elapsed : undefined;
}

async function handler(context: CommandContext, args: TrainArgs): Promise<void> {
  const { io } = context;
  const planned = await plan(io, args);
  let claim: RunDirectoryClaim | undefined;
  try {
    const inPlace = planned.resume?.sourceRunDir === planned.runDir;
    const claimed = await claimRun(io, { runDir: planned.runDir, inPlace, defaultName: !inPlace && args.name === undefined });
    claim = claimed.claim;
    planned.runDir = claimed.runDir;
    await train(context, args, planned);
  } finally {
    planned.model.free();
    await claim?.release();
  }
}

async function train(context: CommandContext, args: TrainArgs, { config, data, model, total, runDir, resume, workers }: Plan): Promise<void> {
  const { io } = context;

  // ---- from here on, files are written ----
  const checkpointsDir = io.join(runDir, 'checkpoints');
  await io.mkdir(checkpointsDir);
  const path = {
    config: io.join(runDir, 'config.yaml'),
    metrics: io.join(runDir, 'metrics.jsonl'),
    results: io.join(runDir, 'results.json'),
    model: io.join(runDir, 'model.safetensors'),
    best: io.join(checkpointsDir, 'best.safetensors'),
    step: (n: number) => io.join(checkpointsDir, `step-${n}.safetensors`),
  };
  await io.writeAtomic(
    path.config,
    configToYaml(config, [
      `resolved configuration of the run in ${io.basename(runDir)} (loadable with --config)`,
      `data: ${data.train.data.rows} training sequences of ${data.train.data.length} bits; ${data.val.data.rows} validation sequences`,
    ]),
  );

  // metrics.jsonl: a resumed run keeps its history up to the checkpoint's step.
  let metricsLines: string[] = [];
  let bestBytes: Uint8Array | undefined;
  if (resume?.sourceRunDir !== undefined) {
    const oldMetrics = io.join(resume.sourceRunDir, 'metrics.jsonl');
    if (await io.exists(oldMetrics)) metricsLines = metricsLinesUpTo(await io.readText(oldMetrics), resume.model.step);
    bestBytes = await resumedBest(io, resume.sourceRunDir, resume.loopState?.bestStep ?? null);
  }
  let lastFlush = io.now();
  const flushMetrics = async () => {
    await io.writeAtomic(path.metrics, metricsLines.map((line) => `${line}\n`).join(''));
    lastFlush = io.now();
  };
  await flushMetrics();

  const trainSet = sequenceSet(data.train.data);
  const valSet = sequenceSet(data.val.data);
  const valName = data.val === data.train ? 'train' : 'val';
  const checkpointBytes = (state: LoopState) => model.toBytes(runMetadata(config, state));

  const progress = io.progress(total, { quiet: args.quiet });
  progress.log(
    `training ${config.model.architecture} (T = ${config.model.T}) on ${data.train.data.rows} sequences of ${data.train.data.length} bits${shapeNote(model)} ` +
      `(${data.train.source}) for ${total} steps${resume ? `, resuming at step ${model.step}` : ''}${workers > 1 ? ` on ${workers} workers` : ''}`,
  );
  const sessionStart = io.now();
  let lastCheckpointPath: string | undefined;
  let outcome: TrainingOutcome;
  // With several workers, `model` is the pool's replica in this thread (shard 0), kept in step.
  const pool = workers > 1 && io.parallel ? await io.parallel.createPool(model, workers - 1) : undefined;
  // Stopped early: the best model (model.safetensors), loaded for the final evaluation and pictures.
  let best: { model: DiffusionModel; pool?: ParallelModel } | undefined;
  try {
    try {
      outcome = await runTraining({
        model: pool ?? model,
        stepFunction: pool ? (batch) => pool.trainStep(batch) : undefined,
        data: { train: data.train.data, val: data.val.data, trainSet, valSet },
        settings: loopSettings(config, total, data.train.data.length, model.modelConfig.shape),
        signal: io.interruptSignal(),
        now: () => io.now(),
        resumeState: resume?.loopState
          ? { ...resume.loopState, elapsedSeconds: elapsedInMetrics(metricsLines) ?? resume.loopState.elapsedSeconds }
          : resume
            ? { step: model.step, bestStep: null, bestBoundBits: null, evalsSinceBest: 0, elapsedSeconds: 0 }
            : undefined,
        hooks: {
          onRecord: async (record) => {
            metricsLines.push(JSON.stringify(record));
            if (io.now() - lastFlush >= METRICS_FLUSH_MS) await flushMetrics();
          },
          onEvaluation: async (step, evaluation) => {
            // Short enough for an 80-column terminal (a wrapped line garbles the progress bar).
            const stderr = Number.isFinite(evaluation.bound_stderr) ? ` ± ${evaluation.bound_stderr.toFixed(3)}` : '';
            progress.log(
              `step ${step}: bound ${evaluation.bound_bits.toFixed(3)}${stderr} bits; samples ${percent(evaluation.prop_train)} train, ` +
                `${percent(evaluation.prop_data)} ${valName}, ${percent(evaluation.prop_other)} other, ${evaluation.distinct} distinct`,
            );
            await flushMetrics();
          },
          onBest: async (state) => {
            const bytes = checkpointBytes(state);
            bestBytes = bytes;
            await io.writeAtomic(path.best, bytes);
          },
          onCheckpoint: async (reason, state) => {
            const bytes = checkpointBytes(state);
            lastCheckpointPath = path.step(state.step);
            await io.writeAtomic(lastCheckpointPath, bytes);
            await flushMetrics();
            if (reason === 'final') await io.writeAtomic(path.model, config.training.early_stopping > 0 && bestBytes ? bestBytes : bytes);
          },
          onProgress: (update) => progress.update(update),
          bestModel: async () => {
            if (config.training.early_stopping === 0 || bestBytes === undefined) return undefined;
            const bestModel = await DiffusionModel.fromBytes(bestBytes, io.displayPath(path.best));
            best = { model: bestModel };
            // training is over: the best model's pool replaces the training pool (never both at once)
            await pool?.close();
            if (pool && io.parallel) best.pool = await io.parallel.createPool(bestModel, workers - 1);
            return best.pool ?? bestModel;
          },
        },
      });
    } catch (error) {
      if (!(error instanceof DivergenceError)) throw error;
      await flushMetrics();
      const kept = await keepLastGoodModel(io, path.model, config.training.early_stopping > 0 ? bestBytes : undefined, lastCheckpointPath, resume);
      throw error.withAdvice(`${likelyCause(config.training)}; ${kept}`);
    } finally {
      progress.stop();
    }
    await flushMetrics();

    const keptBest = config.training.early_stopping > 0 && bestBytes !== undefined;
    const results = runResults({
      runName: io.basename(runDir),
      config,
      data,
      outcome,
      total,
      keptBest,
      metricsLines,
      shape: model.modelConfig.shape,
      sessionSeconds: (io.now() - sessionStart) / 1000,
    });
    await io.writeAtomic(path.results, `${JSON.stringify(results, null, 2)}\n`);

    if (outcome.stopped !== 'interrupted' && args.plots && io.renderRunPictures !== undefined) {
      try {
        // the pictures' reverse chain: of the model kept (the best one when stopped early), over the pool if any
        await drawRunPictures(io, runDir, best ? (best.pool ?? best.model) : (pool ?? model));
      } catch (error) {
        io.note(`warning: could not draw the pictures: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
      }
    }

    printRunSummary(io, { outcome, config, trainSet, valSet, valName, valRows: data.val.data.rows });
    if (outcome.stopped === 'interrupted') {
      io.print(
        `interrupted at step ${outcome.state.step}; continue with: bernoulli-diffusion train --resume ${io.displayPath(lastCheckpointPath ?? path.step(outcome.state.step))}`,
      );
      context.setExitCode(130);
    }
    io.print(`run: ${io.displayPath(runDir)}`);
  } finally {
    await pool?.close();
    await best?.pool?.close();
    best?.model.free();
  }
}

/** What results.json records of a finished (or stopped) run. */
function runResults(run: {
  runName: string;
  config: RunConfig;
  data: RunData;
  outcome: TrainingOutcome;
  total: number;
  /** model.safetensors holds the best model (early stopping on, and a best was found). */
  keptBest: boolean;
  metricsLines: string[];
  shape: DiffusionModel['modelConfig']['shape'];
  sessionSeconds: number;
}) {
  const { config, data, outcome } = run;
  const final = outcome.lastEvaluation;
  return {
    format: RESULTS_FORMAT,
    run: run.runName,
    // the core's build: relaxed-simd (fused multiply-adds) rounds differently from simd128
    wasm_build: loadedWasmBuild() ?? null,
    stopped: outcome.stopped,
    step: outcome.state.step,
    total_steps: run.total,
    epochs: Number(((outcome.state.step * config.training.batch_size) / data.train.data.rows).toFixed(4)),
    model_step: run.keptBest && outcome.state.bestStep !== null ? outcome.state.bestStep : outcome.state.step,
    final: final ? evaluationSummary(final.step, final.evaluation, run.metricsLines) : null,
    best: outcome.state.bestStep !== null ? { step: outcome.state.bestStep, bound_bits: outcome.state.bestBoundBits } : null,
    timings: {
      elapsed_seconds: Number(outcome.state.elapsedSeconds.toFixed(3)),
      session_seconds: Number(run.sessionSeconds.toFixed(3)),
      train_seconds: Number(outcome.trainSeconds.toFixed(3)),
      eval_seconds: Number(outcome.evalSeconds.toFixed(3)),
      steps_per_second: outcome.trainSeconds > 0 ? Number((outcome.stepsThisSession / outcome.trainSeconds).toFixed(2)) : null,
      steps_this_session: outcome.stepsThisSession,
    },
    data: { train: data.train.source, val: data.val.source, n_train: data.train.data.rows, n_val: data.val.data.rows, length: data.train.data.length },
    samples: final ? final.evaluation.sampleLines.slice(0, gridSizeFor(run.shape)) : [],
  };
}

/** The end-of-run lines on stdout: a few samples, the final bound and sample shares, and how the run stopped early. */
function printRunSummary(
  io: Io,
  run: { outcome: TrainingOutcome; config: RunConfig; trainSet: Set<string>; valSet: Set<string>; valName: string; valRows: number },
): void {
  const { outcome, valName } = run;
  const final = outcome.lastEvaluation;
  if (final) {
    io.print(`samples at step ${final.step} (first ${SAMPLES_SHOWN}):`);
    for (const line of final.evaluation.sampleLines.slice(0, SAMPLES_SHOWN)) {
      io.print(`  ${line}  ${run.trainSet.has(line) ? 'train' : run.valSet.has(line) ? valName : 'other'}`);
    }
    const evaluated = final.evaluation.n_data < run.valRows ? `${final.evaluation.n_data} of ` : '';
    io.print(
      `bound on ${valName} data: ${boundText(final.evaluation)} (${evaluated}${count(run.valRows, 'sequence')}, ${count(final.evaluation.bound_repeats, 'repeat')})`,
    );
    io.print(`samples: ${proportionsText(final.evaluation, valName)}`);
  }
  if (outcome.stopped === 'early_stopping') {
    io.print(
      `stopped early at step ${outcome.state.step}: no better bound in ${run.config.training.early_stopping} evaluations; model.safetensors is the best, from step ${outcome.state.bestStep} (the bound and samples above are of it)`,
    );
  }
}

/** " (28x28)" for a 2-D model, "" for a 1-D one. */
function shapeNote(model: DiffusionModel): string {
  const shape = model.modelConfig.shape;
  return shape && shape.length === 2 ? ` (${formatShape(shape)})` : '';
}

function evaluationSummary(step: number, evaluation: Evaluation, metricsLines: string[]) {
  // The training loss of the last record, for the summary.
  let trainLoss: number | null = null;
  const last = metricsLines.at(-1);
  if (last !== undefined) trainLoss = (JSON.parse(last) as { loss?: number }).loss ?? null;
  return {
    step,
    train_loss: trainLoss,
    bound_bits: evaluation.bound_bits,
    bound_stderr: evaluation.bound_stderr,
    bound_repeats: evaluation.bound_repeats,
    n_data: evaluation.n_data,
    n_samples: evaluation.samples,
    prop_train: evaluation.prop_train,
    prop_val: evaluation.prop_data,
    prop_other: evaluation.prop_other,
    distinct: evaluation.distinct,
  };
}

export function trainCommand(context: CommandContext): CommandModule<object, TrainArgs> {
  return {
    command: 'train',
    describe: 'train a model; writes a run directory (config.yaml, metrics.jsonl, results.json, model.safetensors, checkpoints/)',
    builder,
    handler: (args) => handler(context, args),
  };
}
