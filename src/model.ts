/**
 * DiffusionModel: the typed API over the wasm core's RawModel (browser-safe). Batches cross the
 * boundary as typed arrays, once per call. Bits are Uint8Array rows × L of 0/1; patterns use
 * 2 for an unknown bit; losses and bounds are bits per sequence.
 */
import { RawModel, wasmMemory } from '../pkg/bernoulli_diffusion_core.js';
import { encodeSafetensors, readSafetensorsHeader, type TensorToEncode } from './checkpoint.js';
import type { CoreModelConfig, CoreTrainingConfig } from './config.js';
import { UserError } from './errors.js';
import { init } from './wasm.js';

export type ModelConfig = CoreModelConfig;
export type TrainingConfig = CoreTrainingConfig;

/** Metadata keys this class writes into a checkpoint (callers may add their own). */
export const CHECKPOINT_FORMAT = 'bernoulli-diffusion';
export const META_FORMAT = 'format';
export const META_STATE = 'model_state';

export interface TrainStepReport {
  /** The batch mean of the estimated bound, bits per sequence. */
  loss: number;
  /** Global norm of the mean gradient before clipping. */
  gradNorm: number;
  lr: number;
  /** The weights, optimiser moments and EMA are all finite after the step (false: diverged; the core always says). */
  finite?: boolean;
}

/** [loss, gradNorm, lr, finite] from the core as a report. */
function stepReport(values: Float64Array | number[]): TrainStepReport {
  return { loss: values[0], gradNorm: values[1], lr: values[2], finite: values[3] === 1 };
}

/**
 * Frees a RawModel without letting the free hide the error that got us here: after a call that
 * trapped (a panic) wasm-bindgen still counts the model as borrowed and `free()` throws
 * "attempted to take ownership of Rust value while it was borrowed". Such a model's memory goes
 * with the module instance.
 */
function freeQuietly(raw: RawModel | undefined): void {
  try {
    raw?.free();
  } catch {
    // see above
  }
}

export interface SampleResult {
  samples: Uint8Array;
  /** With recordEvery > 0: the state of all n sequences at every recorded t (T first, 0 last). */
  frames: { t: number; bits: Uint8Array }[];
}

export interface BoundEvaluation {
  /** Mean over the given sequences of the Monte-Carlo bound, bits per sequence. */
  boundBits: number;
  /** Monte-Carlo standard error of boundBits for this fixed set of sequences. */
  stderr: number;
  /** Standard error as an estimate over the data distribution (spread across sequences). */
  sequenceStderr: number;
  perSequence: Float64Array;
  repeats: number;
}

export interface ExactLikelihood {
  /** Mean over the given sequences of -log2 p(x0). */
  meanBits: number;
  perSequence: Float64Array;
  /** Sum of p(x) over all 2^L sequences (1 up to rounding): a check of the computation. */
  totalMass: number;
}

/**
 * How the known bits of an inpainting pattern condition the reverse chain (crate/src/inpaint.rs):
 * - 'smc' (default): twisted sequential Monte Carlo: `particles` chains per completion (default 8,
 *   that many times the work of `sample`), reweighted by the model's own prediction of the known
 *   bits; completions follow the model's conditional distribution given the known bits.
 * - 'clamp': the paper's §2.5: known bits clamped at every reverse step. Cheap, but the other bits
 *   often disagree with them (on the heartbeat only 65–80% of completions are valid).
 */
export type InpaintMode = 'smc' | 'clamp';

export interface InpaintOptions {
  seed?: number | bigint;
  mode?: InpaintMode;
  /** Particles per completion of mode 'smc' (1..4096, default 8). */
  particles?: number;
}

/** The mode and particle count as the core takes them (undefined: the core's default). */
function inpaintMode(opts: InpaintOptions): [string | undefined, number | undefined] {
  const { mode, particles } = opts;
  if (mode !== undefined && mode !== 'smc' && mode !== 'clamp') throw new UserError(`the inpainting mode must be 'smc' or 'clamp', got '${mode}'`);
  if (particles !== undefined) {
    if (mode === 'clamp') throw new UserError("particles apply to the inpainting mode 'smc' only");
    if (!Number.isInteger(particles) || particles < 1 || particles > 4096) throw new UserError(`particles must be an integer in 1..4096, got ${particles}`);
  }
  return [mode, particles];
}

export interface LayoutEntry {
  name: string;
  shape: number[];
  offset: number;
  decay: boolean;
}

function toSeed(seed: number | bigint, what = 'seed'): bigint {
  if (typeof seed === 'bigint') return BigInt.asUintN(64, seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UserError(`${what} must be a non-negative integer, got ${seed}`);
  return BigInt(seed);
}

/** Runs a core call, turning its errors (JS Error from a Rust Err) into UserError messages. */
function core<T>(what: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export class DiffusionModel {
  readonly modelConfig: ModelConfig;
  readonly trainingConfig: TrainingConfig;
  private raw: RawModel | undefined;

  private constructor(raw: RawModel, modelConfig: ModelConfig, trainingConfig: TrainingConfig) {
    this.raw = raw;
    this.modelConfig = modelConfig;
    this.trainingConfig = trainingConfig;
  }

  /** A freshly initialised model (weights drawn from `seed`). */
  static async create(model: ModelConfig, training: TrainingConfig, seed: number | bigint): Promise<DiffusionModel> {
    await init();
    const raw = core('invalid model', () => new RawModel(JSON.stringify(model), JSON.stringify(training), toSeed(seed)));
    return new DiffusionModel(raw, { ...model }, { ...training });
  }

  /** A model from a safetensors checkpoint written by `toBytes` (or the CLI). */
  static async fromBytes(bytes: Uint8Array, source = 'checkpoint'): Promise<DiffusionModel> {
    await init();
    const header = readSafetensorsHeader(bytes, source);
    const state = header.metadata[META_STATE];
    if (header.metadata[META_FORMAT] !== CHECKPOINT_FORMAT || state === undefined) {
      throw new UserError(`${source}: not a bernoulli-diffusion checkpoint (its metadata has no '${META_STATE}')`);
    }
    let parsed: { model: ModelConfig; training: TrainingConfig };
    try {
      parsed = JSON.parse(state);
    } catch {
      throw new UserError(`${source}: corrupt checkpoint metadata ('${META_STATE}' is not JSON)`);
    }
    const raw = core(source, () => RawModel.fromState(state));
    try {
      for (const [name, info] of header.tensors) {
        if (info.dtype !== 'F32') throw new UserError(`${source}: tensor '${name}' has dtype ${info.dtype}, expected F32`);
      }
      const directory = [...header.tensors].map(([name, info]) => ({ name, shape: info.shape }));
      core(source, () => raw.checkTensorDirectory(JSON.stringify(directory)));
      // The file's little-endian f32 bytes go straight into the model's storage (the wasm memory
      // is little-endian too), with no copy in between.
      const targets: { name: string; shape: number[]; pointer: number }[] = JSON.parse(raw.tensorPointers());
      const memory = (wasmMemory() as WebAssembly.Memory).buffer; // after the last call into the core
      const bytesOf = (name: string): Uint8Array | undefined => {
        const info = header.tensors.get(name);
        return info && bytes.subarray(header.dataStart + info.dataOffsets[0], header.dataStart + info.dataOffsets[1]);
      };
      for (const { name, shape, pointer } of targets) {
        // a missing EMA starts at the weights; missing optimiser moments keep their initial zeros
        const values = bytesOf(name) ?? (name.startsWith('ema.') ? bytesOf(name.slice('ema.'.length)) : undefined);
        if (values) new Uint8Array(memory, pointer, 4 * shape.reduce((a, b) => a * b, 1)).set(values);
      }
      core(source, () => raw.checkFiniteState()); // NaN or infinite weights, moments or EMA
    } catch (error) {
      freeQuietly(raw);
      throw error;
    }
    return new DiffusionModel(raw, parsed.model, parsed.training);
  }

  private get core(): RawModel {
    if (!this.raw) throw new Error('this DiffusionModel was freed');
    return this.raw;
  }

  /** Optimiser steps taken so far. */
  get step(): number {
    return Number(this.core.step);
  }

  /** L, the bits per sequence. */
  get length(): number {
    return this.modelConfig.length;
  }

  get parameterCount(): number {
    return this.core.parameterCount;
  }

  private rows(bits: Uint8Array, what: string): number {
    const L = this.length;
    if (bits.length === 0 || bits.length % L !== 0) {
      throw new UserError(`${what} must hold whole sequences of ${L} bits, got ${bits.length} values`);
    }
    return bits.length / L;
  }

  /** One optimiser step on a batch (rows × L bits). */
  trainStep(batch: Uint8Array): TrainStepReport {
    const rows = this.rows(batch, 'a training batch');
    return stepReport(core('training step', () => this.core.trainStep(batch, rows)));
  }

  /**
   * For a pool of workers: the loss sum (bits) and gradient sum over a shard that holds examples
   * exampleOffset.. of optimiser step `step`; combine the shards' sums with `applyGradient`.
   */
  computeGradient(batch: Uint8Array, exampleOffset: number, step: number): { lossSum: number; gradient: Float32Array } {
    const rows = this.rows(batch, 'a training batch');
    const lossSum = core('gradient', () => this.core.computeGradient(batch, rows, BigInt(exampleOffset), BigInt(step)));
    return { lossSum, gradient: this.core.lastGradient() };
  }

  /** One optimiser step from gradient and loss sums over `totalRows` examples. */
  applyGradient(gradientSum: Float32Array, lossSum: number, totalRows: number): TrainStepReport {
    return stepReport(core('optimiser step', () => this.core.applyGradient(gradientSum, lossSum, totalRows)));
  }

  /**
   * `computeGradient` without copying the gradient: it stays in the core's gradient buffer, read
   * (or overwritten with the sum over all shards) through `gradientView()`. Returns the loss sum.
   */
  computeGradientInPlace(batch: Uint8Array, exampleOffset: number, step: number): number {
    const rows = this.rows(batch, 'a training batch');
    return core('gradient', () => this.core.computeGradientInPlace(batch, rows, BigInt(exampleOffset), BigInt(step)));
  }

  /**
   * The core's gradient buffer (parameterCount values) as a view on the wasm memory: valid until
   * the next call into this model (the memory may grow), so take a fresh view each time.
   */
  gradientView(): Float32Array {
    const memory = wasmMemory() as WebAssembly.Memory;
    return new Float32Array(memory.buffer, this.core.gradientPointer(), this.parameterCount);
  }

  /**
   * A scratch buffer beside the gradient (parameterCount values, a view on the wasm memory, valid
   * until the next call into this model): a pool copies another shard's gradient into it and adds
   * it with `addScratchToGradient()` (vectorised f32 additions, the same results as in JavaScript).
   */
  gradientScratchView(): Float32Array {
    const pointer = this.core.gradientScratchPointer();
    return new Float32Array((wasmMemory() as WebAssembly.Memory).buffer, pointer, this.parameterCount);
  }

  /** gradient[i] += scratch[i] for every i (see `gradientScratchView`). */
  addScratchToGradient(): void {
    core('gradient', () => this.core.addScratchToGradient());
  }

  /** One optimiser step from the gradient sums written into `gradientView()`. */
  applyGradientInPlace(lossSum: number, totalRows: number): TrainStepReport {
    return stepReport(core('optimiser step', () => this.core.applyGradientInPlace(lossSum, totalRows)));
  }

  /** Importance objective: the (t, term) observations of this step's shards so far, flat [t, term, ...]. */
  pendingObservations(): Float64Array {
    return this.core.pendingObservations();
  }

  /** Replaces the pending observations (a pool gives every replica those of all shards, in order). */
  setPendingObservations(flat: Float64Array): void {
    core('observations', () => this.core.setPendingObservations(flat));
  }

  /** Sequences first..first+n of `sample(first + n, opts)` (same seed), for a pool of workers. */
  sampleRange(first: number, n: number, opts: { seed?: number | bigint; recordEvery?: number } = {}): SampleResult {
    const recordEvery = opts.recordEvery ?? 0;
    const samples = core('sampling', () => this.core.sampleRange(BigInt(first), n, toSeed(opts.seed ?? 0), recordEvery));
    return { samples, frames: recordEvery > 0 ? this.recordedFrames(n) : [] };
  }

  /** Completions first..first+n of `inpaint(pattern, first + n, opts)`. */
  inpaintRange(pattern: Uint8Array, first: number, n: number, opts: InpaintOptions = {}): Uint8Array {
    if (pattern.length !== this.length) {
      throw new UserError(`the pattern has ${pattern.length} positions, the model's sequences have ${this.length}`);
    }
    const [mode, particles] = inpaintMode(opts);
    return core('inpainting', () => this.core.inpaintRange(pattern, BigInt(first), n, toSeed(opts.seed ?? 0), mode, particles));
  }

  /**
   * The Monte-Carlo totals behind `evaluate` for rows that are sequences firstIndex.. of the data:
   * totals[i·repeats + r] in bits (`summariseBound` of all rows' totals gives `evaluate`'s result).
   */
  boundTotals(data: Uint8Array, firstIndex: number, opts: { repeats?: number; seed?: number | bigint } = {}): Float64Array {
    const rows = this.rows(data, 'evaluation data');
    const repeats = opts.repeats ?? 8;
    return core('evaluation', () => this.core.boundTotals(data, rows, repeats, toSeed(opts.seed ?? 0), BigInt(firstIndex)));
  }

  /** n sequences from the reverse chain x_T ~ B(0.5) → x_0, optionally with frames every k steps. */
  sample(n: number, opts: { seed?: number | bigint; recordEvery?: number } = {}): SampleResult {
    const recordEvery = opts.recordEvery ?? 0;
    const samples = core('sampling', () => this.core.sample(n, toSeed(opts.seed ?? 0), recordEvery));
    return { samples, frames: recordEvery > 0 ? this.recordedFrames(n) : [] };
  }

  /** The frames the last sampling call recorded, for its n sequences (the core keeps them frame-major). */
  private recordedFrames(n: number): SampleResult['frames'] {
    const all = this.core.lastFrames();
    const size = n * this.length;
    const frames: SampleResult['frames'] = [];
    this.core.lastFrameTimes().forEach((t, k) => frames.push({ t, bits: all.slice(k * size, (k + 1) * size) }));
    return frames;
  }

  /**
   * n completions of `pattern` (L values: 0, 1, or 2 = unknown); known bits are never changed.
   * opts.mode: 'smc' (default, the model's conditional) or 'clamp' (the paper's), see `InpaintMode`.
   */
  inpaint(pattern: Uint8Array, n: number, opts: InpaintOptions = {}): Uint8Array {
    if (pattern.length !== this.length) {
      throw new UserError(`the pattern has ${pattern.length} positions, the model's sequences have ${this.length}`);
    }
    const [mode, particles] = inpaintMode(opts);
    return core('inpainting', () => this.core.inpaint(pattern, n, toSeed(opts.seed ?? 0), mode, particles));
  }

  /** The negative log-likelihood bound (full sum over t, `repeats` Monte-Carlo draws of x_t). */
  evaluate(data: Uint8Array, opts: { repeats?: number; seed?: number | bigint } = {}): BoundEvaluation {
    const rows = this.rows(data, 'evaluation data');
    const repeats = opts.repeats ?? 8;
    const out = core('evaluation', () => this.core.evaluateBound(data, rows, repeats, toSeed(opts.seed ?? 0)));
    return { boundBits: out[0], stderr: out[1], sequenceStderr: out[2], perSequence: out.slice(3), repeats };
  }

  /** Exact -log2 p(x0) by the forward algorithm over all 2^L states (L <= 12). */
  exactNll(data: Uint8Array): ExactLikelihood {
    const rows = this.rows(data, 'data');
    const out = core('exact likelihood', () => this.core.exactNll(data, rows));
    const perSequence = out.slice(1);
    const meanBits = perSequence.reduce((s, v) => s + v, 0) / rows;
    return { meanBits, perSequence, totalMass: out[0] };
  }

  /** The bound's per-row terms (bits) and the gradient of their sum, for given (x0, x_t, t). */
  lossAndGradientGiven(x0: Uint8Array, xt: Uint8Array, t: Uint32Array): { rowLoss: Float64Array; gradient: Float32Array } {
    const rowLoss = core('loss', () => this.core.lossAndGradientGiven(x0, xt, t));
    return { rowLoss, gradient: this.core.lastGradient() };
  }

  /** The parameter tensors, in the order of `parameters()`. */
  layout(): LayoutEntry[] {
    return JSON.parse(this.core.layoutJson());
  }

  /** Current (not EMA) weights, flat in layout order. */
  parameters(): Float32Array {
    return this.core.parameters();
  }

  setParameters(values: Float32Array): void {
    core('parameters', () => this.core.setParameters(values));
  }

  /** A safetensors checkpoint: weights, optimiser moments, EMA, and the state (step, seed, configs). */
  toBytes(metadata: Record<string, string> = {}): Uint8Array {
    const stateJson = this.core.stateJson();
    // Views on the model's own storage (valid until the next call into the core): no copies
    // besides the checkpoint's bytes themselves.
    const entries: { name: string; shape: number[]; pointer: number }[] = JSON.parse(this.core.tensorPointers());
    const memory = (wasmMemory() as WebAssembly.Memory).buffer;
    const tensors: TensorToEncode[] = entries.map(({ name, shape, pointer }) => ({
      name,
      dtype: 'F32',
      shape,
      data: new Float32Array(memory, pointer, shape.reduce((a, b) => a * b, 1)),
    }));
    return encodeSafetensors(tensors, { ...metadata, [META_FORMAT]: CHECKPOINT_FORMAT, [META_STATE]: stateJson });
  }


  /** Releases the wasm memory; the model cannot be used afterwards. */
  free(): void {
    freeQuietly(this.raw);
    this.raw = undefined;
  }
}
