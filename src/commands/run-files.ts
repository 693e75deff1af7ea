/**
 * What the commands share: loading checkpoints (with the run's config and loop state from their
 * metadata), loading the data a config names, and describing evaluations in words.
 */
import { readSafetensorsHeader } from '../checkpoint.js';
import { configFromJson, type RunConfig } from '../config.js';
import { heartbeatData, heartbeatPhases, parseSequences, sequenceSet, type Sequences } from '../data.js';
import { UserError } from '../errors.js';
import { checkRunConfigAgainstModel } from '../run-guards.js';
import { DiffusionModel } from '../model.js';
import type { Evaluation, LoopState } from '../training.js';
import type { Io } from './io.js';

/** Checkpoint metadata keys written by `train` (besides the core's own). */
export const META_RUN_CONFIG = 'run_config';
export const META_LOOP_STATE = 'loop_state';
export const RESULTS_FORMAT = 'bernoulli-diffusion-results/1';

export interface LoadedCheckpoint {
  path: string;
  bytes: Uint8Array;
  model: DiffusionModel;
  metadata: Record<string, string>;
  /** The run's config, when `train` wrote the checkpoint. */
  runConfig?: RunConfig;
  loopState?: LoopState;
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
    !(typeof parsed.elapsedSeconds === 'number' && parsed.elapsedSeconds >= 0)
  ) {
    fail();
  }
  return parsed as unknown as LoopState;
}

/** Reads, validates and loads a checkpoint; every problem is a one-line UserError naming the file. */
export async function loadCheckpoint(io: Io, path: string): Promise<LoadedCheckpoint> {
  const bytes = await io.readBytes(path);
  const header = readSafetensorsHeader(bytes, path); // cheap structural check before the core parses it
  const model = await DiffusionModel.fromBytes(bytes, path);
  const metadata = header.metadata;
  const loaded: LoadedCheckpoint = { path, bytes, model, metadata };
  try {
    if (metadata[META_RUN_CONFIG] !== undefined) {
      loaded.runConfig = configFromJson(metadata[META_RUN_CONFIG], path);
      checkRunConfigAgainstModel(loaded.runConfig, model, path);
    }
    if (metadata[META_LOOP_STATE] !== undefined) {
      loaded.loopState = parseLoopState(metadata[META_LOOP_STATE], path);
      if (loaded.loopState.step !== model.step) {
        throw new UserError(`${path}: the loop state is at step ${loaded.loopState.step} but the model at step ${model.step}`);
      }
    }
  } catch (error) {
    model.free();
    throw error;
  }
  return loaded;
}

export interface NamedSequences {
  data: Sequences;
  /** A file path, or a description of generated data. */
  source: string;
}

export async function readSequences(io: Io, path: string): Promise<NamedSequences> {
  const shown = io.displayPath(path);
  return { data: parseSequences(await io.readText(path), shown), source: shown };
}

export function describeHeartbeat(h: { length: number; period: number }, phases: number[]): string {
  const list = phases.length > 1 && phases.every((p, i) => i === 0 || p === phases[i - 1] + 1) ? `${phases[0]}-${phases.at(-1)}` : phases.join(', ');
  return `heartbeat L=${h.length} P=${h.period}, phase${phases.length === 1 ? '' : 's'} ${list}`;
}

export interface RunData {
  train: NamedSequences;
  val: NamedSequences;
}

/** The training and validation data a resolved config names (files are read, heartbeats generated). */
export async function loadRunData(io: Io, config: RunConfig): Promise<RunData> {
  let train: NamedSequences;
  let val: NamedSequences | undefined;
  if (config.data.heartbeat !== undefined) {
    const generated = heartbeatData(config.data.heartbeat);
    train = { data: generated.train, source: `built-in ${describeHeartbeat(config.data.heartbeat, generated.trainPhases)}` };
    val = { data: generated.val, source: `built-in ${describeHeartbeat(config.data.heartbeat, generated.valPhases)}` };
  } else {
    train = await readSequences(io, config.data.train as string);
  }
  if (config.data.val !== undefined) val = await readSequences(io, config.data.val);
  val ??= train;
  if (val.data.length !== train.data.length) {
    throw new UserError(`${val.source}: its sequences have ${val.data.length} bits but the training data's have ${train.data.length}`);
  }
  return { train, val };
}

/** The data `evaluate` measures the bound on by default: the run's val data, or every heartbeat phase. */
export async function defaultEvaluationData(io: Io, config: RunConfig): Promise<{ data: NamedSequences; train: NamedSequences }> {
  const runData = await loadRunData(io, config);
  const heartbeat = config.data.heartbeat;
  if (heartbeat !== undefined && config.data.val === undefined) {
    const phases = Array.from({ length: heartbeat.period }, (_, p) => p);
    return { data: { data: heartbeatPhases(heartbeat.length, heartbeat.period), source: `built-in ${describeHeartbeat(heartbeat, phases)}` }, train: runData.train };
  }
  return { data: runData.val, train: runData.train };
}

export function setOf(named: NamedSequences): Set<string> {
  return sequenceSet(named.data);
}

/** "1 sequence", "5 sequences" */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

export function percent(share: number): string {
  return `${(100 * share).toFixed(1)}%`;
}

/** "2.4141 ± 0.0123 bits/sequence" */
export function boundText(evaluation: Pick<Evaluation, 'bound_bits' | 'bound_stderr'>): string {
  if (!Number.isFinite(evaluation.bound_stderr)) return `${evaluation.bound_bits.toFixed(4)} bits/sequence (no standard error from one repeat)`;
  return `${evaluation.bound_bits.toFixed(4)} ± ${evaluation.bound_stderr.toFixed(4)} bits/sequence`;
}

/** "96.0% in train, 2.0% only in val, 2.0% other; 7 distinct of 100" */
export function proportionsText(evaluation: Evaluation, dataName: string): string {
  return (
    `${percent(evaluation.prop_train)} in train, ${percent(evaluation.prop_data)} only in ${dataName}, ` +
    `${percent(evaluation.prop_other)} other; ${evaluation.distinct} distinct of ${evaluation.samples}`
  );
}

/** Parses a --given pattern ('0', '1', '?' per bit) for a model of `length` bits. */
export function parseGivenPattern(pattern: string, length: number): Uint8Array {
  const bad = [...pattern].findIndex((c) => c !== '0' && c !== '1' && c !== '?');
  if (bad >= 0) {
    throw new UserError(`--given: character ${bad + 1} is ${JSON.stringify(pattern[bad])}; use 0 and 1 for known bits and ? for unknown ones`);
  }
  if (pattern.length !== length) {
    throw new UserError(`--given has ${pattern.length} characters but the model's sequences have ${length} bits`);
  }
  return Uint8Array.from(pattern, (c) => (c === '?' ? 2 : c === '1' ? 1 : 0));
}

/** Checks a non-negative integer flag (yargs gives NaN for text). */
export function integerFlag(name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new UserError(`--${name}: expected an integer, got ${Number.isNaN(value) ? 'something that is not a number' : value}`);
  if (value < min || value > max) throw new UserError(`--${name}: out of range: must be >= ${min} and <= ${max}, got ${value}`);
  return value;
}
