/**
 * The data of a run: the training and validation sequences its config names (files read through a
 * command's `Io`, heartbeats generated), and the data `evaluate` measures by default.
 * Browser-safe.
 */
import type { RunConfig } from '../config.js';
import { heartbeatData, heartbeatPhases, parseSequences, sequenceSet, type Sequences } from '../data.js';
import { UserError } from '../errors.js';

/** What reading data needs of a command's `Io`. */
export interface TextFiles {
  readText(path: string): Promise<string>;
  /** A path as shown to the user. */
  displayPath(path: string): string;
}

export interface NamedSequences {
  data: Sequences;
  /** A file path, or a description of generated data. */
  source: string;
}

export async function readSequences(io: TextFiles, path: string): Promise<NamedSequences> {
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
export async function loadRunData(io: TextFiles, config: RunConfig): Promise<RunData> {
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
export async function defaultEvaluationData(io: TextFiles, config: RunConfig): Promise<{ data: NamedSequences; train: NamedSequences }> {
  const runData = await loadRunData(io, config);
  const heartbeat = config.data.heartbeat;
  if (heartbeat !== undefined && config.data.val === undefined) {
    const phases = Array.from({ length: heartbeat.period }, (_, p) => p);
    return {
      data: { data: heartbeatPhases(heartbeat.length, heartbeat.period), source: `built-in ${describeHeartbeat(heartbeat, phases)}` },
      train: runData.train,
    };
  }
  return { data: runData.val, train: runData.train };
}

export function setOf(named: NamedSequences): Set<string> {
  return sequenceSet(named.data);
}
