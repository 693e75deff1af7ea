/**
 * Checks a run passes before it starts (browser-safe, no files): run names, flags repeated on
 * --resume, a checkpoint's run config against its model, and the memory a config needs (issue 16:
 * refuse with the key that is too big instead of dying mid-run with "unreachable").
 */
import { readSafetensorsHeader } from './checkpoint.js';
import { coreModelConfig, DEFAULTS, type RunConfig } from './config.js';
import { UserError } from './errors.js';
import { unetDefaultLevels, unetLevelWidths } from './unet-geometry.js';

// ---- run names -----------------------------------------------------------------------------------

/** A --name must be one plain folder name: not empty, not . or .., no separators or control characters. */
/** The number of fixed shards a training batch is cut into (crate/src/model.rs `GRADIENT_SHARDS`). */
const GRADIENT_SHARDS = 8;

export function validateRunName(name: string): string {
  const problem =
    name.trim() === ''
      ? 'it is empty'
      : name === '.' || name === '..'
        ? `"${name}" names a folder that is not a new one`
        : /[/\\]/.test(name)
          ? 'it contains a path separator'
          : // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
            /[\u0000-\u001f\u007f]/.test(name)
            ? 'it contains a control character'
            : undefined;
  if (problem !== undefined) throw new UserError(`--name: expected a plain folder name, got ${JSON.stringify(name)} (${problem})`);
  return name;
}

// ---- --resume --------------------------------------------------------------------------------------

function valueAt(config: RunConfig, dottedKey: string): unknown {
  let value: unknown = config;
  for (const part of dottedKey.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  return value;
}

/**
 * A flag that sets a config key may be repeated on --resume with the value already in the
 * checkpoint (the same command line plus --resume); a different value is an error.
 */
export function checkResumeFlags(flags: Record<string, unknown>, flagKeys: Record<string, string>, resumable: Set<string>, runConfig: RunConfig): void {
  for (const [flag, key] of Object.entries(flagKeys)) {
    const given = flags[flag];
    if (given === undefined || resumable.has(flag)) continue;
    const stored = valueAt(runConfig, key);
    if (given !== stored) {
      throw new UserError(
        `--${flag} cannot be changed when resuming: the run continues with the configuration in its checkpoint (${key} = ${JSON.stringify(stored ?? null)}, --${flag} ${String(given)})`,
      );
    }
  }
}

/** What a checkpoint's model reports about itself (DiffusionModel's configs, as parsed from its state). */
export interface ModelDescription {
  length: number;
  modelConfig: object;
  trainingConfig: object;
}

/**
 * The run config in a checkpoint's metadata must describe the model beside it: every model key,
 * and every training setting the core uses (a file saying T = 100 whose model is T = 50 would
 * otherwise train as T = 50 while printing and recording T = 100).
 */
export function checkRunConfigAgainstModel(runConfig: RunConfig, model: ModelDescription, source: string): void {
  const modelConfig = model.modelConfig as Record<string, unknown>;
  const trainingConfig = model.trainingConfig as Record<string, unknown>;
  const mismatch = (key: string, said: unknown, has: unknown) =>
    new UserError(`${source}: the run configuration says ${key} = ${JSON.stringify(said)} but the model in the checkpoint has ${JSON.stringify(has)}`);
  // Compared in the core's form: position_embedding 'auto' is null there, and a shape of null
  // (from the data) is whatever shape the model was made with.
  const modelShape = Array.isArray(modelConfig.shape) ? (modelConfig.shape as number[]) : undefined;
  const expected = coreModelConfig(runConfig.model, model.length, modelShape) as unknown as Record<string, unknown>;
  for (const [key, said] of Object.entries(runConfig.model)) {
    const has = modelConfig[key];
    const same = JSON.stringify(has) === JSON.stringify(expected[key]) || JSON.stringify(has) === JSON.stringify(said);
    if (has !== undefined && !same) throw mismatch(`model.${key}`, said, has);
  }
  for (const [key, said] of Object.entries(runConfig.training)) {
    const has = trainingConfig[key];
    if (has !== undefined && has !== said) throw mismatch(`training.${key}`, said, has);
  }
  if (runConfig.training.steps !== null && trainingConfig.total_steps !== undefined && trainingConfig.total_steps !== runConfig.training.steps) {
    throw mismatch('training.steps', runConfig.training.steps, trainingConfig.total_steps);
  }
}

/** The step a checkpoint written by train was saved at (its loop state), if it says. */
export function checkpointStepOf(bytes: Uint8Array, source: string): number | undefined {
  try {
    const step = JSON.parse(readSafetensorsHeader(bytes, source).metadata.loop_state ?? 'null')?.step;
    return Number.isSafeInteger(step) ? step : undefined;
  } catch {
    return undefined;
  }
}

// ---- --workers -------------------------------------------------------------------------------------

/** At most this many workers per core (more only adds threads fighting for the same cores)... */
export const WORKERS_PER_CORE = 4;
/** ...and at most this many in all. */
export const MAX_WORKERS = 64;

export function maxWorkers(cores: number): number {
  return Math.max(1, Math.min(MAX_WORKERS, WORKERS_PER_CORE * Math.max(1, cores)));
}

// ---- memory ------------------------------------------------------------------------------------------

/** A wasm32 instance addresses at most 4 GiB (65536 pages of 64 KiB). */
export const WASM32_MEMORY_LIMIT = 4 * 1024 ** 3;
const FLOAT = 4;
/** Rows of the core's sampling passes (crate/src/sampler.rs CHUNK_ROWS) and of a full-sum training pass (FULL_PASS_ROWS). */
const SAMPLE_CHUNK_ROWS = 1024;
const FULL_PASS_ROWS = 256;

type ModelKeys = Pick<RunConfig['model'], 'T' | 'architecture' | 'hidden' | 'layers' | 'time_embedding' | 'kernel'> &
  Partial<Pick<RunConfig['model'], 'channels' | 'max_channels' | 'levels' | 'blocks' | 'padding' | 'position_embedding' | 'shape'>>;

/** The U-Net's geometry (crate/src/network/unet.rs): the grid [H, W] ([1, L] for sequences), taps per convolution, the positions of each level. */
function unetGeometry(model: ModelKeys, length: number, dataShape?: readonly number[]) {
  const shape = model.shape ?? dataShape ?? [length];
  const grid = shape.length === 2 ? [shape[0], shape[1]] : [1, length];
  const circular = model.padding === 'circular';
  const levels = model.levels || unetDefaultLevels(grid);
  // K = 3 taps along every axis longer than 1
  const taps = (grid[0] > 1 ? 3 : 1) * (grid[1] > 1 ? 3 : 1);
  // zero padding halves the grid (ceil) per level; circular (à trous) keeps the full grid
  const positions: number[] = [];
  for (let j = 0, g = grid.slice(); j < levels; j++) {
    positions.push(g[0] * g[1]);
    if (!circular) g = [Math.ceil(g[0] / 2), Math.ceil(g[1] / 2)];
  }
  const position = model.position_embedding === 'on' || (model.position_embedding !== 'off' && !circular);
  const widths = unetLevelWidths(model.channels ?? DEFAULTS.model.channels, model.max_channels ?? DEFAULTS.model.max_channels, levels);
  return { levels, taps, positions, position, widths };
}

/**
 * Parameters of a network, from the layouts in crate/src/network/ (a test checks these against the
 * core for every architecture); undefined for an architecture this file does not know yet.
 */
export function parameterCountOf(model: ModelKeys, length: number, dataShape?: readonly number[]): number | undefined {
  const { T, hidden: H, layers: n, time_embedding: E } = model;
  const L = length;
  switch (model.architecture as string) {
    case 'mlp': // input [2L, H] + [H], time [E, H], blocks n × 2 × ([H, H] + [H]), output [H, L] + [L]
      return 2 * L * H + H + E * H + n * 2 * (H * H + H) + H * L + L;
    case 'paper': // shared layers [L or H, H] + [H], readout [T, H, L] + [T, L]
      return L * H + H + (n - 1) * (H * H + H) + T * H * L + T * L;
    case 'circular': {
      // input [2, C] + [C], time [E, (n+1)C], blocks n × (conv [k, C] + [C], 2 × ([C, C] + [C])), output [C, 1] + [1]
      const k = model.kernel === 0 ? L : model.kernel;
      return 3 * H + E * (n + 1) * H + n * (k * H + H + 2 * (H * H + H)) + H + 1;
    }
    case 'unet': {
      // C_j channels at level j (C = C_0), D = 2C, K taps, n levels, B blocks per level: stem [K, 2, C] + [C],
      // position [P, C] (if on), time [E, D] + [D], [D, D] + [D], [D, S] + [S] with S = Σ_blocks C_j;
      // conv = [K, C_in, C_out] + [C_out]
      const B = model.blocks ?? 1;
      const { levels: nl, taps: K, positions, position, widths } = unetGeometry(model, length, dataShape);
      const C = widths[0];
      const D = 2 * C;
      const conv = (cIn: number, cOut: number) => K * cIn * cOut + cOut;
      const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
      const tauWidth = B * (sum(widths) + sum(widths.slice(0, nl - 1)));
      const time = E * D + D + D * D + D + D * tauWidth + tauWidth;
      let down = 0;
      let up = 0;
      widths.forEach((w, j) => {
        down += B * 2 * conv(w, w); // blocks, then a downsampling conv below every level but the last
        if (j + 1 < nl) {
          down += conv(w, widths[j + 1]);
          // up: an upsampling conv, then B blocks; the first takes [h, skip] (2C_j) with a 1x1 skip [2C_j, C_j]
          up += conv(widths[j + 1], w) + conv(2 * w, w) + conv(w, w) + 2 * w * w + (B - 1) * 2 * conv(w, w);
        }
      });
      return conv(2, C) + (position ? positions[0] * C : 0) + time + down + up + C + 1;
    }
    default:
      return undefined;
  }
}

/** Floats of activations and their gradients per row of a network pass (a little above what the core allocates: measured 0.7–1× for mlp, circular and paper). */
function activationFloatsPerRow(model: ModelKeys, length: number, dataShape?: readonly number[]): number {
  const { hidden: H, layers: n, time_embedding: E } = model;
  const L = length;
  switch (model.architecture as string) {
    case 'unet': {
      // Every stream kept for the backward pass (P_j·C per stage, 2C after a concat) and, per block,
      // its two inner activations; gradients about as much again; plus the time MLP and 8L per row.
      // Measured: 1.3–1.4× the wasm memory after a training step (28x28, C = 32, batch 64 and 256; L = 64, batch 256).
      const B = model.blocks ?? 1;
      const { positions, widths } = unetGeometry(model, length, dataShape);
      const C = widths[0];
      let kept = positions[0] * C; // the stem's output
      positions.forEach((P, j) => {
        const w = widths[j];
        kept += B * 3 * P * w; // down blocks: output + 2 inner
        // downsample, upsample, concat, up blocks (+ first block's wider input)
        if (j + 1 < positions.length) kept += positions[j + 1] * widths[j + 1] + P * w + 2 * P * w + B * 3 * P * w + P * w;
      });
      return 2 * kept + 4 * (2 * C) * (2 * positions.length) + 4 * widths.reduce((a, b) => a + b, 0) + 8 * L;
    }
    case 'circular':
      return L * H * (3 * n + 5) + 2 * (n + 1) * H + E + 8 * L; // per position: n+1 streams, n convolved, n activations, 3 gradients
    case 'paper':
      return 2 * n * H + 2 * H + 8 * L;
    default:
      return 2 * L + E + 3 * n * H + 2 * H + 6 * L;
  }
}

export interface MemoryTerm {
  /** The config keys this part grows with, e.g. "model.hidden = 4096 (with model.layers = 6)". */
  keys: string;
  bytes: number;
  what: string;
}

export interface MemoryEstimate {
  /** Bytes of one replica's wasm memory (each worker holds one). */
  perWorker: number;
  terms: MemoryTerm[];
  parameters: number | undefined;
}

/** The memory one replica of `config` needs in the wasm core: its parts, each with the keys it grows with. */
export function estimateMemory(config: RunConfig, length: number, workers: number, dataShape?: readonly number[]): MemoryEstimate {
  const { model, training } = config;
  const parameters = parameterCountOf(model, length, dataShape);
  const terms: MemoryTerm[] = [];
  if (parameters !== undefined) {
    // weights, gradient, one shard's gradient, Adam's two moments; with the EMA: the EMA and the weights set aside while it is used; with a pool: a scratch gradient
    const copies = 5 + (training.ema_decay > 0 ? 2 : 0) + (workers > 1 ? 1 : 0);
    const keys =
      model.architecture === 'paper'
        ? `model.T = ${model.T} × model.hidden = ${model.hidden} × ${length} bits`
        : model.architecture === 'unet'
          ? `model.channels = ${model.channels}${model.max_channels ? ` (up to model.max_channels = ${model.max_channels})` : ''} (with model.blocks = ${model.blocks})`
          : `model.hidden = ${model.hidden} (with model.layers = ${model.layers})`;
    terms.push({
      keys,
      bytes: parameters * copies * FLOAT,
      what: `${formatCount(parameters)} parameters × ${copies} copies (weights, gradient and a shard's, Adam moments${training.ema_decay > 0 ? ', EMA' : ''})`,
    });
  }
  if (model.architecture !== 'paper') {
    terms.push({
      keys: `model.T = ${model.T} with model.time_embedding = ${model.time_embedding}`,
      bytes: model.T * (model.time_embedding + 1) * FLOAT,
      what: 'the time-embedding table',
    });
  }
  const batchPerWorker = Math.ceil(training.batch_size / Math.max(1, workers));
  // a step runs the network on one of its fixed shards at a time (crate/src/model.rs GRADIENT_SHARDS)
  const shardRows = Math.ceil(training.batch_size / Math.min(GRADIENT_SHARDS, training.batch_size));
  const trainingRows =
    training.objective === 'full' ? Math.max(batchPerWorker, Math.min(FULL_PASS_ROWS, batchPerWorker * model.T)) : Math.min(batchPerWorker, shardRows);
  const rows = Math.max(trainingRows, Math.min(SAMPLE_CHUNK_ROWS, Math.max(training.eval_samples, 16)));
  const rowKey =
    trainingRows >= SAMPLE_CHUNK_ROWS
      ? `training.batch_size = ${training.batch_size}${workers > 1 ? ` (${batchPerWorker} rows per worker)` : ''}`
      : model.architecture === 'unet'
        ? `model.channels = ${model.channels} (with ${length} positions)`
        : `model.hidden = ${model.hidden} (with model.layers = ${model.layers})`;
  terms.push({ keys: rowKey, bytes: rows * activationFloatsPerRow(model, length, dataShape) * FLOAT, what: `activations for ${rows} rows per pass` });
  return { perWorker: terms.reduce((sum, term) => sum + term.bytes, 0), terms, parameters };
}

function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

export function formatBytes(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / 1024 ** 2))} MB`;
}

/**
 * Refuses a run that cannot fit, before anything is written: one replica over the wasm32 limit, or
 * (when the machine's memory is known) all workers together over it. Returns the number of
 * workers to use: `workers`, or fewer when they were chosen automatically and would not fit.
 */
export function checkMemory(
  config: RunConfig,
  length: number,
  workers: number,
  options: { requested: boolean; machineBytes?: number; dataShape?: readonly number[] },
): number {
  const estimate = estimateMemory(config, length, workers, options.dataShape);
  const largest = estimate.terms.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  if (estimate.perWorker > WASM32_MEMORY_LIMIT) {
    throw new UserError(
      `${largest.keys}: needs about ${formatBytes(estimate.perWorker)} of memory per worker (${largest.what}: ${formatBytes(largest.bytes)}), ` +
        `over the ${formatBytes(WASM32_MEMORY_LIMIT)} a wasm worker can address; make it smaller`,
    );
  }
  const machine = options.machineBytes;
  if (machine === undefined || machine <= 0) return workers;
  // The checkpoint is assembled outside the core too: weights, two moments and the EMA, once;
  // a pool's shared gradient slots (at most 8, one per shard) are outside the cores as well.
  const hostBytes = (estimate.parameters ?? 0) * (4 + (workers > 1 ? 8 : 0)) * FLOAT;
  const total = (n: number) => n * estimateMemory(config, length, n, options.dataShape).perWorker + hostBytes;
  if (total(workers) <= machine) return workers;
  if (!options.requested) {
    let fitting = workers;
    while (fitting > 1 && total(fitting) > machine) fitting--;
    if (total(fitting) <= machine) return fitting;
  }
  throw new UserError(
    `${workers > 1 && total(1) <= machine ? `--workers ${workers}` : largest.keys}: needs about ${formatBytes(total(workers))} of memory ` +
      `(${workers > 1 ? `${workers} workers × ` : ''}${formatBytes(estimate.perWorker)}), more than this machine's ${formatBytes(machine)}; ` +
      `${workers > 1 && total(1) <= machine ? 'use fewer --workers' : 'make the model or the batch smaller'}`,
  );
}
