/**
 * bernoulli-diffusion — the core entry: the model, its configuration, data helpers, checkpoints,
 * the training loop and the worker pool. Browser-safe (bundlers, browsers, Web Workers): nothing
 * here imports a Node-only module or a chart package. On Node the package's "node" condition
 * gives src/index.node.ts, the same exports with the wasm read from the package folder.
 *
 * Other entries: `bernoulli-diffusion/node` (worker threads, files), `bernoulli-diffusion/plots`
 * (charts and GIFs), `bernoulli-diffusion/cli` (the command line), `bernoulli-diffusion/wasm`
 * (the .wasm file, to host it yourself and pass its URL to `init`; `bernoulli-diffusion/wasm-relaxed`,
 * the relaxed-SIMD build).
 *
 * @packageDocumentation
 */
export { init, loadedWasmBuild, relaxedSimdSupported, useWasmBuild, type WasmBuild, type WasmSource } from './wasm.js';
export {
  DiffusionModel,
  type ModelConfig,
  type TrainingConfig,
  type TrainStepReport,
  type SampleOptions,
  type SampleResult,
  type BoundEvaluation,
  type BoundOptions,
  type ExactLikelihood,
  type LayoutEntry,
  type InpaintMode,
  type InpaintOptions,
} from './model.js';
export { UserError, isUserError, InternalError, isInternalError } from './errors.js';
export {
  DEFAULTS,
  MAX_LENGTH,
  coreModelConfig,
  coreTrainingConfig,
  totalSteps,
  parseConfigYaml,
  valuesLayer,
  configLayer,
  resolveConfig,
  checkAgainstLength,
  configToYaml,
  configFromJson,
  type RunConfig,
  type ModelSection,
  type TrainingSection,
  type DataSection,
  type HeartbeatSection,
  type Architecture,
  type Parameterisation,
  type Schedule,
  type Objective,
  type LrSchedule,
  type Layer,
  type Leaf,
  type ResolvedConfig,
} from './config.js';
export {
  heartbeatSequence,
  heartbeatPhases,
  heartbeatData,
  heartbeatPhaseOf,
  isHeartbeat,
  rowString,
  rowStrings,
  sequenceSet,
  fromStrings,
  parseSequences,
  formatSequences,
  sampleProportions,
  type Sequences,
  type HeartbeatSpec,
  type SampleProportions,
} from './data.js';
export {
  encodeSafetensors,
  decodeSafetensors,
  readSafetensorsHeader,
  type Dtype,
  type TensorData,
  type TensorToEncode,
  type DecodedTensor,
  type TensorInfo,
  type SafetensorsHeader,
} from './checkpoint.js';
export {
  runTraining,
  evaluateModel,
  evaluateModelAsync,
  evaluationSeeds,
  formatLoss,
  formatSeconds,
  type TrainOptions,
  type TrainingData,
  type TrainingHooks,
  type TrainingOutcome,
  type StopReason,
  type CheckpointReason,
  type LoopSettings,
  type LoopState,
  type StepReport,
  type StepFunction,
  type TrainableModel,
  type AsyncTrainableModel,
  type Evaluation,
  type EvaluationOptions,
  type MetricsRecord,
  type ProgressUpdate,
} from './training.js';
export {
  loadCheckpoint,
  readCheckpoint,
  loopSettings,
  defaultBoundStrata,
  runMetadata,
  runMetadataOf,
  runConfigOf,
  loopStateOf,
  parseMetricsJsonl,
  META_RUN_CONFIG,
  META_LOOP_STATE,
  type LoadedCheckpoint,
  type MetricRecord,
} from './run/index.js';
export { ParallelModel, summariseBound, type PoolOptions, type PoolWorker, type SpawnWorker, type WorkerPort } from './parallel/pool.js';
export { serveWorker } from './parallel/worker.js';
export { webWorker, spawnWebWorker, browserCores } from './parallel/browser.js';
