/**
 * Loading a checkpoint as a run: the model, its metadata, and the run config and loop state that
 * `train` stored with it (src/run/checkpoint.ts says what a checkpoint holds). Browser-safe: bytes
 * in; `readCheckpoint` takes anything that reads bytes by path (a command's `Io`).
 */
import { checkRunConfigAgainstModel } from '../run-guards.js';
import { readSafetensorsHeader } from '../checkpoint.js';
import type { RunConfig } from '../config.js';
import { UserError } from '../errors.js';
import { DiffusionModel } from '../model.js';
import { loopStateOf, runConfigOf } from './checkpoint.js';
import type { LoopState } from './records.js';

/** A checkpoint read and loaded: the model, its metadata, and the run config and loop state `train` stored in it. */
export interface LoadedCheckpoint {
  path: string;
  bytes: Uint8Array;
  model: DiffusionModel;
  metadata: Record<string, string>;
  /** The run's config, when `train` wrote the checkpoint. */
  runConfig?: RunConfig;
  loopState?: LoopState;
}

/** Validates and loads checkpoint bytes; every problem is a one-line UserError naming `path`. */
export async function loadCheckpoint(bytes: Uint8Array, path: string): Promise<LoadedCheckpoint> {
  const { metadata } = readSafetensorsHeader(bytes, path); // cheap structural check before the core parses it
  const model = await DiffusionModel.fromBytes(bytes, path);
  try {
    const loaded: LoadedCheckpoint = { path, bytes, model, metadata };
    const runConfig = runConfigOf(metadata, path);
    if (runConfig !== undefined) {
      checkRunConfigAgainstModel(runConfig, model, path); // a file saying T = 100 whose model is T = 50 is refused
      loaded.runConfig = runConfig;
    }
    const loopState = loopStateOf(metadata, path);
    if (loopState !== undefined) {
      loaded.loopState = loopState;
      if (loopState.step !== model.step) {
        throw new UserError(`${path}: the loop state is at step ${loopState.step} but the model at step ${model.step}`);
      }
    }
    return loaded;
  } catch (error) {
    model.free();
    throw error;
  }
}

/** Reads a checkpoint file (through a command's `Io`) and loads it. */
export async function readCheckpoint(files: { readBytes(path: string): Promise<Uint8Array> }, path: string): Promise<LoadedCheckpoint> {
  return loadCheckpoint(await files.readBytes(path), path);
}
