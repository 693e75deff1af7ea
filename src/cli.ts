/**
 * bernoulli-diffusion/cli — the command line as yargs command modules (`train`, `generate`,
 * `evaluate`, `data`, `plot`), run by `runCli` with any yargs build and an `Io`: files on disk
 * (Node's `NodeIo`) or in memory (`MemoryIo`, e.g. a browser page). On Node the "node" condition
 * adds `main`, the `bernoulli-diffusion` command itself.
 *
 * @packageDocumentation
 */
export { runCli, type RunCliOptions, type YargsFactory } from './commands/index.js';
export { MemoryIo, type MemoryIoOptions } from './commands/memory-io.js';
export type { Io, ParallelIo, ProgressDisplay, RunPictureInputs, RunPictureRenderer } from './commands/io.js';
export { browserYargs } from './yargs-browser.js';
