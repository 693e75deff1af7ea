/**
 * DiffusionModel: the typed API over the wasm core's RawModel (browser-safe). Batches cross the
 * boundary as typed arrays, once per call. Bits are Uint8Array rows × L of 0/1; patterns use
 * 2 for an unknown bit; losses and bounds are bits per sequence.
 */
import { RawModel, wasmMemory } from '../pkg/bernoulli_diffusion_core.js';
import { encodeSafetensors, readSafetensorsHeader, type TensorToEncode } from './checkpoint.js';
import { type CoreModelConfig, type CoreTrainingConfig, completeModelConfig } from './config.js';
import { fromWasmError, UserError } from './errors.js';
import { CHECKPOINT_FORMAT, META_FORMAT, META_STATE, modelStateOf, standInFor } from './run/checkpoint.js';
import type { StepReport } from './run/records.js';
import { init } from './wasm.js';

/** The network and diffusion settings of a model: the `model:` section of a run config plus L, the sequence length (see `coreModelConfig`). */
export type ModelConfig = CoreModelConfig;
/** The optimiser settings a model trains with (see `coreTrainingConfig`). */
export type TrainingConfig = CoreTrainingConfig;

/** What a training step reports: the run's `StepReport` (src/run/records.ts), under its older name. */
export type TrainStepReport = StepReport;

/** [loss, gradNorm, lr, finite] from the core as a report. */
export function stepReport(values: Float64Array | number[]): TrainStepReport {
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

/** Options of `sample`: the seed, frames every `recordEvery` chain steps, and the chain's length. */
export interface SampleOptions {
  seed?: number | bigint;
  /** Record the state every k steps of the chain (0: none). */
  recordEvery?: number;
  /**
   * Network calls of the reverse chain, 1..T (default T: every step). Fewer jump t_k -> t_(k-1),
   * t_k = floor(k·T/K), with the exact posterior of the jump: K/T of the time, some loss of quality;
   * the x0 parameterisation only.
   */
  steps?: number;
}

/** Samples (rows × L bits) and, when asked for, frames of the reverse chain. */
export interface SampleResult {
  samples: Uint8Array;
  /** With recordEvery > 0: the state of all n sequences at every recorded t (T first, 0 last). */
  frames: { t: number; bits: Uint8Array }[];
}

/** The Monte-Carlo negative log-likelihood bound on a data set, bits per sequence. */
export interface BoundEvaluation {
  /** Mean over the given sequences of the Monte-Carlo bound, bits per sequence. */
  boundBits: number;
  /** Monte-Carlo standard error of boundBits for this fixed set of sequences. */
  stderr: number;
  /** Standard error as an estimate over the data distribution (spread across sequences). */
  sequenceStderr: number;
  perSequence: Float64Array;
  repeats: number;
  /** Strata of t the sum over t was estimated with; 0: the full sum (exact in t). */
  strata: number;
}

/** How `evaluate` estimates the bound. */
export interface BoundOptions {
  /** Monte-Carlo repeats per sequence (default 8; at least 2 for a standard error). */
  repeats?: number;
  /** Seed of the x_t (and t) draws. */
  seed?: number | bigint;
  /**
   * 0 (default): the full sum over t = 1..T, exact in t, T network rows per repeat. K > 0: K
   * strata of t with one t drawn in each, weighted by the stratum's size — unbiased, K rows per
   * repeat (K >= T is the full sum).
   */
  strata?: number;
}

/** `strata` checked: a whole number >= 0. */
export function boundStrata(strata: number | undefined): number {
  const k = strata ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new UserError(`strata must be a whole number >= 0 (0: the full sum over t), got ${k}`);
  return k;
}

/** Exact -log2 p(x0) by the forward algorithm (small L only). */
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

/** Options of `inpaint`: the seed, the mode and the particle count. */
export interface InpaintOptions {
  seed?: number | bigint;
  mode?: InpaintMode;
  /** Particles per completion of mode 'smc' (1..4096, default 8). */
  particles?: number;
  /** Network calls of the reverse chain, 1..T (default T), as `SampleOptions.steps`. */
  steps?: number;
}

/** @internal The chain length as the core takes it (undefined: every step), checked against T. */
export function chainSteps(steps: number | undefined, T: number): number | undefined {
  if (steps === undefined) return undefined;
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new UserError(`the sampling steps must be an integer in 1..${T} (T), got ${steps}`);
  return steps;
}

/** @internal The mode and particle count as the core takes them (undefined: the core's default). */
export function inpaintMode(opts: InpaintOptions): [string | undefined, number | undefined] {
  const { mode, particles } = opts;
  if (mode !== undefined && mode !== 'smc' && mode !== 'clamp') throw new UserError(`the inpainting mode must be 'smc' or 'clamp', got '${mode}'`);
  if (particles !== undefined) {
    if (mode === 'clamp') throw new UserError("particles apply to the inpainting mode 'smc' only");
    if (!Number.isInteger(particles) || particles < 1 || particles > 4096) throw new UserError(`particles must be an integer in 1..4096, got ${particles}`);
  }
  return [mode, particles];
}

/** One parameter tensor: its name, shape, offset in the flat parameter vector, and whether weight decay applies. */
export interface LayoutEntry {
  name: string;
  shape: number[];
  offset: number;
  decay: boolean;
}

/** @internal */
export function toSeed(seed: number | bigint, what = 'seed'): bigint {
  if (typeof seed === 'bigint') return BigInt.asUintN(64, seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UserError(`${what} must be a non-negative integer, got ${seed}`);
  return BigInt(seed);
}

/**
 * @internal Runs a call into the wasm core: every RawModel call goes through here, so that what it throws
 * becomes a UserError (bad input) or an InternalError (a bug, a trap) named for `what`.
 */
export function wasmCall<T>(what: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw fromWasmError(error, what);
  }
}

/** A Bernoulli diffusion model in the wasm core: train, sample, inpaint, evaluate, save. Create one with `DiffusionModel.create` or `DiffusionModel.fromBytes`; call `free()` when done (wasm memory is not garbage-collected). */
export class DiffusionModel {
  /** The model's network and diffusion settings (L included). */
  readonly modelConfig: ModelConfig;
  /** The optimiser settings it trains with. */
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
    const complete = completeModelConfig(model);
    const raw = wasmCall('invalid model', () => new RawModel(JSON.stringify(complete), JSON.stringify(training), toSeed(seed)));
    return new DiffusionModel(raw, complete, { ...training });
  }

  /** A model from a safetensors checkpoint written by `toBytes` (or the CLI). */
  static async fromBytes(bytes: Uint8Array, source = 'checkpoint'): Promise<DiffusionModel> {
    await init();
    const header = readSafetensorsHeader(bytes, source);
    const state = modelStateOf(header.metadata, source);
    const raw = wasmCall(source, () => RawModel.fromState(state.json));
    try {
      for (const [name, info] of header.tensors) {
        if (info.dtype !== 'F32') throw new UserError(`${source}: tensor '${name}' has dtype ${info.dtype}, expected F32`);
      }
      const directory = [...header.tensors].map(([name, info]) => ({ name, shape: info.shape }));
      wasmCall(source, () => raw.checkTensorDirectory(JSON.stringify(directory)));
      // The file's little-endian f32 bytes go straight into the model's storage (the wasm memory
      // is little-endian too), with no copy in between.
      const targets: { name: string; shape: number[]; pointer: number }[] = JSON.parse(wasmCall(source, () => raw.tensorPointers()));
      const memory = (wasmMemory() as WebAssembly.Memory).buffer; // after the last call into the core
      const bytesOf = (name: string): Uint8Array | undefined => {
        const info = header.tensors.get(name);
        return info && bytes.subarray(header.dataStart + info.dataOffsets[0], header.dataStart + info.dataOffsets[1]);
      };
      for (const { name, shape, pointer } of targets) {
        const standIn = standInFor(name); // a missing EMA starts at the weights; missing moments stay zero
        const values = bytesOf(name) ?? (standIn === undefined ? undefined : bytesOf(standIn));
        if (values) new Uint8Array(memory, pointer, 4 * shape.reduce((a, b) => a * b, 1)).set(values);
      }
      wasmCall(source, () => raw.checkFiniteState()); // NaN or infinite weights, moments or EMA
    } catch (error) {
      freeQuietly(raw);
      throw error;
    }
    return new DiffusionModel(raw, state.model, state.training);
  }

  /** A call into this model's core (see `wasmCall`). */
  private call<T>(what: string, body: (raw: RawModel) => T): T {
    const raw = this.raw;
    if (!raw) throw new Error('this DiffusionModel was freed');
    return wasmCall(what, () => body(raw));
  }

  /** Optimiser steps taken so far. */
  get step(): number {
    return Number(this.call('step', (raw) => raw.step));
  }

  /** L, the bits per sequence. */
  get length(): number {
    return this.modelConfig.length;
  }

  /** Number of trainable parameters (f32 values). */
  get parameterCount(): number {
    return this.call('parameter count', (raw) => raw.parameterCount);
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
    return stepReport(this.call('training step', (raw) => raw.trainStep(batch, rows)));
  }

  /** n sequences from the reverse chain x_T ~ B(0.5) → x_0, optionally with frames every k steps. */
  sample(n: number, opts: SampleOptions = {}): SampleResult {
    const recordEvery = opts.recordEvery ?? 0;
    const steps = chainSteps(opts.steps, this.modelConfig.T);
    const samples = this.call('sampling', (raw) => raw.sample(n, toSeed(opts.seed ?? 0), recordEvery, steps));
    return { samples, frames: recordEvery > 0 ? this.recordedFrames(n) : [] };
  }

  /** The frames the last sampling call recorded, for its n sequences (the core keeps them frame-major). */
  private recordedFrames(n: number): SampleResult['frames'] {
    const all = this.call('sampling', (raw) => raw.lastFrames());
    const size = n * this.length;
    const frames: SampleResult['frames'] = [];
    this.call('sampling', (raw) => raw.lastFrameTimes()).forEach((t, k) => frames.push({ t, bits: all.slice(k * size, (k + 1) * size) }));
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
    const steps = chainSteps(opts.steps, this.modelConfig.T);
    return this.call('inpainting', (raw) => raw.inpaint(pattern, n, toSeed(opts.seed ?? 0), mode, particles, steps));
  }

  /** The negative log-likelihood bound (full or stratified sum over t, `repeats` Monte-Carlo draws of x_t). */
  evaluate(data: Uint8Array, opts: BoundOptions = {}): BoundEvaluation {
    const rows = this.rows(data, 'evaluation data');
    const repeats = opts.repeats ?? 8;
    const strata = boundStrata(opts.strata);
    const out = this.call('evaluation', (raw) => raw.evaluateBound(data, rows, repeats, strata, toSeed(opts.seed ?? 0)));
    return { boundBits: out[0], stderr: out[1], sequenceStderr: out[2], perSequence: out.slice(3), repeats, strata };
  }

  /** Exact -log2 p(x0) by the forward algorithm over all 2^L states (L <= 12). */
  exactNll(data: Uint8Array): ExactLikelihood {
    const rows = this.rows(data, 'data');
    const out = this.call('exact likelihood', (raw) => raw.exactNll(data, rows));
    const perSequence = out.slice(1);
    const meanBits = perSequence.reduce((s, v) => s + v, 0) / rows;
    return { meanBits, perSequence, totalMass: out[0] };
  }

  /**
   * The reverse kernel f(x_t, t) = p(x_{t-1} = 1 | x_t) of every bit of the given rows (xt: rows × L
   * bits; t: one step in 1..T per row), with the sampling weights (the EMA when it is on): the
   * probabilities the reverse chain draws each bit from, rows × L values.
   */
  reverseProbabilities(xt: Uint8Array, t: Uint32Array): Float32Array {
    const rows = this.rows(xt, 'x_t');
    if (t.length !== rows) throw new UserError(`x_t holds ${rows} sequences but t has ${t.length} steps`);
    return this.call('reverse kernel', (raw) => raw.reverseProbabilities(xt, t));
  }

  /** The weights used for sampling and evaluation (the EMA when it is on), flat in layout order. */
  inferenceParameters(): Float32Array {
    return this.call('inference parameters', (raw) => raw.inferenceParameters());
  }

  /** The parameter tensors, in the order of `parameters()`. */
  layout(): LayoutEntry[] {
    return JSON.parse(this.call('layout', (raw) => raw.layoutJson()));
  }

  /** Current (not EMA) weights, flat in layout order. */
  parameters(): Float32Array {
    return this.call('parameters', (raw) => raw.parameters());
  }

  /** Replaces the current weights (flat, in layout order; parameterCount values). */
  setParameters(values: Float32Array): void {
    this.call('parameters', (raw) => raw.setParameters(values));
  }

  /** A safetensors checkpoint: weights, optimiser moments, EMA, and the state (step, seed, configs). */
  toBytes(metadata: Record<string, string> = {}): Uint8Array {
    const stateJson = this.call('checkpoint', (raw) => raw.stateJson());
    // Views on the model's own storage (valid until the next call into the core): no copies
    // besides the checkpoint's bytes themselves.
    const entries: { name: string; shape: number[]; pointer: number }[] = JSON.parse(this.call('checkpoint', (raw) => raw.tensorPointers()));
    const memory = (wasmMemory() as WebAssembly.Memory).buffer;
    const tensors: TensorToEncode[] = entries.map(({ name, shape, pointer }) => ({
      name,
      dtype: 'F32',
      shape,
      data: new Float32Array(
        memory,
        pointer,
        shape.reduce((a, b) => a * b, 1),
      ),
    }));
    return encodeSafetensors(tensors, { ...metadata, [META_FORMAT]: CHECKPOINT_FORMAT, [META_STATE]: stateJson });
  }

  /** Releases the wasm memory; the model cannot be used afterwards. */
  free(): void {
    const raw = this.raw;
    this.raw = undefined;
    freeQuietly(raw); // after a trap, free() throws; the error that got us here is the one to report
  }
}
