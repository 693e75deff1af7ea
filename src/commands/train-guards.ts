/**
 * What `train` does with its run directory besides writing it (issue 16): claims it for one run
 * at a time, reuses a resumed run's best model only when it is from the best step, names only
 * checkpoints that exist in hints, and keeps the last good model after a divergence.
 */
import { UserError } from '../errors.js';
import { checkpointStepOf } from '../run-guards.js';
import type { Io, RunDirectoryClaim } from './io.js';
import type { LoadedCheckpoint } from '../run/load.js';

/**
 * The best model of a resumed run: its checkpoints/best.safetensors when that is from the loop
 * state's best step (after an older checkpoint is resumed, best.safetensors may be from a later
 * step: never reused), else the periodic checkpoint of that step, else none.
 */
export async function resumedBest(io: Io, runDir: string, bestStep: number | null): Promise<Uint8Array | undefined> {
  if (bestStep === null) return undefined;
  const checkpoints = io.join(runDir, 'checkpoints');
  for (const name of ['best.safetensors', `step-${bestStep}.safetensors`]) {
    const path = io.join(checkpoints, name);
    if (!(await io.exists(path))) continue;
    const bytes = await io.readBytes(path);
    if (checkpointStepOf(bytes, path) === bestStep) return bytes;
    io.note(`warning: not using ${io.displayPath(path)}: it is not the model of the run's best step ${bestStep}`);
  }
  return undefined;
}

/** "continue it with --resume <its latest checkpoint>", or why it cannot be (only files that exist are named). */
export async function resumeHint(io: Io, runDir: string): Promise<string> {
  const checkpoints = io.join(runDir, 'checkpoints');
  const names = (await io.exists(checkpoints)) && io.list ? await io.list(checkpoints) : [];
  const steps = names
    .map((name) => /^step-(\d+)\.safetensors$/.exec(name)?.[1])
    .filter((n) => n !== undefined)
    .map(Number);
  if (steps.length > 0) return `continue it with --resume ${io.displayPath(io.join(checkpoints, `step-${Math.max(...steps)}.safetensors`))}`;
  const model = io.join(runDir, 'model.safetensors');
  if (await io.exists(model)) return `continue it with --resume ${io.displayPath(model)}`;
  return `remove ${io.displayPath(runDir)}: it has no checkpoint to resume from (stopped before its first one)`;
}

/**
 * Claims the run directory for this train alone (another train on it at the same time fails with
 * one line), removing the temporaries of killed writes. A default (timestamped) name moves on to
 * the next free one; a new named run checks again, under the claim, that it is still new.
 */
export async function claimRun(
  io: Io,
  planned: { runDir: string; inPlace: boolean; defaultName: boolean },
): Promise<{ claim?: RunDirectoryClaim; runDir: string }> {
  const { inPlace, defaultName, runDir: base } = planned;
  if (io.claimRunDirectory === undefined) return { runDir: base };
  let runDir = base;
  let claim: RunDirectoryClaim | undefined;
  for (let k = 2; claim === undefined; k++) {
    claim = await io.claimRunDirectory(runDir, { create: defaultName });
    if (claim === undefined) {
      if (!defaultName || k > 1000) throw new UserError(`${io.displayPath(runDir)}: cannot create the run directory`);
      runDir = `${base}-${k}`;
    }
  }
  if (!inPlace && !defaultName && (await io.exists(io.join(runDir, 'config.yaml')))) {
    await claim.release();
    throw new UserError(`${io.displayPath(runDir)} already holds a run: choose another --name, or ${await resumeHint(io, runDir)}`);
  }
  if (claim.removedTemporaries.length > 0)
    io.note(`removed ${claim.removedTemporaries.length} unfinished file${claim.removedTemporaries.length === 1 ? '' : 's'} of an earlier, killed write`);
  return { claim, runDir };
}

/**
 * After a divergence: model.safetensors becomes the last good model (the best one with early
 * stopping, else the last checkpoint of this session, else the resumed one). Says which, or that
 * there is none.
 */
export async function keepLastGoodModel(
  io: Io,
  modelPath: string,
  bestBytes: Uint8Array | undefined,
  lastCheckpointPath: string | undefined,
  resume: LoadedCheckpoint | undefined,
): Promise<string> {
  const source = bestBytes
    ? { bytes: bestBytes, what: 'the best model so far' }
    : lastCheckpointPath
      ? { bytes: await io.readBytes(lastCheckpointPath), what: io.displayPath(lastCheckpointPath) }
      : resume
        ? { bytes: resume.bytes, what: io.displayPath(resume.path) }
        : undefined;
  if (source === undefined) return 'no checkpoint was written before it, so the run has no model';
  await io.writeAtomic(modelPath, source.bytes);
  return `${io.displayPath(modelPath)} is the last good model (${source.what})`;
}
