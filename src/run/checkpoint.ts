/**
 * What a bernoulli-diffusion checkpoint holds, in one place (the file format itself, safetensors,
 * is src/checkpoint.ts; the core's side is crate/src/model.rs):
 * - tensors: the weights by their layout names, the optimiser's moments "optimiser.m.<name>" and
 *   "optimiser.v.<name>", and the EMA "ema.<name>" (when the EMA is on), all F32;
 * - metadata: `format` = 'bernoulli-diffusion' and `model_state` (the core's state JSON: configs,
 *   step, seed, RNG and sampler state), written by `DiffusionModel.toBytes`; `run_config` (the
 *   resolved RunConfig) and `loop_state` (the training loop's LoopState), written by `train` and
 *   the demo so that a run can be evaluated and resumed.
 * Browser-safe; no model is created here (src/run/load.ts does that).
 */
import { readSafetensorsHeader, type SafetensorsHeader } from '../checkpoint.js';
import { type CoreModelConfig, type CoreTrainingConfig, configFromJson, type RunConfig } from '../config.js';
import { UserError } from '../errors.js';
import type { LoopState } from './records.js';

/** Metadata written by `DiffusionModel.toBytes`. */
export const CHECKPOINT_FORMAT = 'bernoulli-diffusion';
export const META_FORMAT = 'format';
export const META_STATE = 'model_state';
/** Metadata written by `train` (and the demo) besides the model's own. */
export const META_RUN_CONFIG = 'run_config';
/** Checkpoint metadata key of the training loop state (step, best step and bound, evaluations since the best). */
export const META_LOOP_STATE = 'loop_state';
/** The metadata keys that describe a run (kept when a checkpoint is loaded and saved again). */
export const RUN_METADATA_KEYS = [META_RUN_CONFIG, META_LOOP_STATE] as const;

/** Prefixes of the tensors that are not weights. */
const OPTIMISER_PREFIX = 'optimiser.';
const EMA_PREFIX = 'ema.';

/** The parts of the core's state JSON that TypeScript reads. */
export interface ModelState {
  /** The state JSON itself, as the core takes it back. */
  json: string;
  model: CoreModelConfig;
  training: CoreTrainingConfig;
  step: number;
}

/** The model state in a checkpoint's metadata; a missing or corrupt one is a UserError naming `source`. */
export function modelStateOf(metadata: Record<string, string>, source: string): ModelState {
  const json = metadata[META_STATE];
  if (metadata[META_FORMAT] !== CHECKPOINT_FORMAT || json === undefined) {
    throw new UserError(`${source}: not a bernoulli-diffusion checkpoint (its metadata has no '${META_STATE}')`);
  }
  let parsed: { model: CoreModelConfig; training: CoreTrainingConfig; step: number };
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new UserError(`${source}: corrupt checkpoint metadata ('${META_STATE}' is not JSON)`);
  }
  return { json, model: parsed.model, training: parsed.training, step: parsed.step };
}

/** Whether a tensor of a checkpoint is one of the model's weights (not an optimiser moment or the EMA). */
export function isWeightTensor(name: string): boolean {
  return !name.startsWith(OPTIMISER_PREFIX) && !name.startsWith(EMA_PREFIX);
}

/**
 * The tensor whose values stand in for `name` when a checkpoint lacks it: a missing EMA starts at
 * the weights; anything else (optimiser moments) keeps its initial values (undefined).
 */
export function standInFor(name: string): string | undefined {
  return name.startsWith(EMA_PREFIX) ? name.slice(EMA_PREFIX.length) : undefined;
}

/** A checkpoint's configurations, step and weight count, from its header only (no tensor data copied). */
export function checkpointSummary(bytes: Uint8Array, source: string): ModelState & { parameterCount: number } {
  const header: SafetensorsHeader = readSafetensorsHeader(bytes, source);
  const state = modelStateOf(header.metadata, source);
  let parameterCount = 0;
  for (const [name, info] of header.tensors) {
    if (isWeightTensor(name)) parameterCount += info.shape.reduce((a, b) => a * b, 1);
  }
  return { ...state, parameterCount };
}

// ---- the run's metadata -------------------------------------------------------------------------

/** The run's metadata for a checkpoint: its config and, once training has begun, the loop state. */
export function runMetadata(config: RunConfig, loopState?: LoopState): Record<string, string> {
  const metadata: Record<string, string> = { [META_RUN_CONFIG]: JSON.stringify(config) };
  if (loopState !== undefined) {
    // All but the wall time, so that the same seed and steps give byte-identical files (the elapsed
    // time is in metrics.jsonl and results.json; a resume reads it from there).
    const { step, bestStep, bestBoundBits, evalsSinceBest } = loopState;
    metadata[META_LOOP_STATE] = JSON.stringify({ step, bestStep, bestBoundBits, evalsSinceBest });
  }
  return metadata;
}

/** The entries of `metadata` that describe the run (to carry them over into a new checkpoint). */
export function runMetadataOf(metadata: Record<string, string>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const key of RUN_METADATA_KEYS) if (metadata[key] !== undefined) kept[key] = metadata[key];
  return kept;
}

/** The run config stored in a checkpoint's metadata (validated), if any. */
export function runConfigOf(metadata: Record<string, string>, source: string): RunConfig | undefined {
  return metadata[META_RUN_CONFIG] === undefined ? undefined : configFromJson(metadata[META_RUN_CONFIG], source);
}

/** The loop state stored in a checkpoint's metadata (validated), if any. */
export function loopStateOf(metadata: Record<string, string>, source: string): LoopState | undefined {
  return metadata[META_LOOP_STATE] === undefined ? undefined : parseLoopState(metadata[META_LOOP_STATE], source);
}

function parseLoopState(json: string, source: string): LoopState {
  const fail = (): never => {
    throw new UserError(`${source}: the loop state in the checkpoint metadata is malformed`);
  };
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(json);
  } catch {
    fail();
  }
  const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const orNull = (v: unknown, check: (v: unknown) => boolean) => v === null || check(v);
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    !isCount(parsed.step) ||
    !orNull(parsed.bestStep, isCount) ||
    !orNull(parsed.bestBoundBits, (v) => typeof v === 'number' && Number.isFinite(v)) ||
    !isCount(parsed.evalsSinceBest) ||
    (parsed.bestStep !== null && (parsed.bestStep as number) > (parsed.step as number)) ||
    // absent since checkpoints stopped carrying wall time (it lives in metrics.jsonl and results.json)
    !(parsed.elapsedSeconds === undefined || (typeof parsed.elapsedSeconds === 'number' && parsed.elapsedSeconds >= 0))
  ) {
    fail();
  }
  return { ...parsed, elapsedSeconds: parsed.elapsedSeconds ?? 0 } as unknown as LoopState;
}
