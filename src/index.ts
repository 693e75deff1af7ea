/**
 * bernoulli-diffusion — the browser-safe entry (bundlers, browsers, Web Workers). Nothing here
 * imports a Node-only module; Node users get src/node.ts through the package's "node" condition.
 */
export { init, type WasmSource } from './wasm.js';
export {
  DiffusionModel,
  type ModelConfig,
  type TrainingConfig,
  type TrainStepReport,
  type SampleResult,
  type BoundEvaluation,
  type ExactLikelihood,
  type LayoutEntry,
  type InpaintMode,
  type InpaintOptions,
} from './model.js';
export { UserError, isUserError, InternalError, isInternalError } from './errors.js';
export * as config from './config.js';
export * as data from './data.js';
export * as checkpoint from './checkpoint.js';
export * as training from './training.js';
// The run: checkpoint contents and loading, loop settings from a config, the records a run writes.
export * as run from './run/index.js';
export * as charts from './plots/charts.js';
export * as bitgrid from './plots/bitgrid.js';
export * as report from './plots/report.js';
// The CLI's yargs command modules: run them with any yargs build and an `Io` (the browser demo's command box does).
export * as commands from './commands/index.js';
// Data-parallel training, sampling and evaluation over workers (Web Workers here; Node: createNodePool).
export { ParallelModel, summariseBound, type PoolOptions, type PoolWorker, type SpawnWorker, type WorkerPort } from './parallel/pool.js';
export { serveWorker } from './parallel/worker.js';
export { webWorker, spawnWebWorker, browserCores } from './parallel/browser.js';
