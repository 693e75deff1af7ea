/**
 * The worker pool's view of one DiffusionModel (internal, not exported by any package entry):
 * gradients computed and summed in the core's own buffers, the importance objective's pending
 * observations, and the shard-range forms of sample / inpaint / evaluate. Kept off the public
 * class so its API is what a user calls; the pool (pool.ts) and its workers (worker.ts) wrap
 * their models in one of these.
 */
import { wasmMemory, type RawModel } from '../../pkg/bernoulli_diffusion_core.js';
import {
  wasmCall as coreCall,
  boundStrata,
  chainSteps,
  inpaintMode,
  stepReport,
  toSeed,
  type BoundOptions,
  type DiffusionModel,
  type InpaintOptions,
  type SampleOptions,
  type SampleResult,
  type TrainStepReport,
} from '../model.js';
import { UserError } from '../errors.js';

export class ModelReplica {
  constructor(readonly model: DiffusionModel) {}

  /** The model's RawModel (throws once the model was freed). */
  private get core(): RawModel {
    // biome-ignore lint/complexity/useLiteralKeys: DiffusionModel's private members are reachable only by index (this class is its internal part)
    const raw = this.model['raw'];
    if (!raw) throw new Error('this DiffusionModel was freed');
    return raw;
  }

  private rows(bits: Uint8Array, what: string): number {
    // biome-ignore lint/complexity/useLiteralKeys: DiffusionModel's private members are reachable only by index (this class is its internal part)
    return this.model['rows'](bits, what);
  }

  /**
   * The loss sum (bits) over a shard holding examples exampleOffset.. of optimiser step `step`;
   * the shard's gradient sum stays in the core's gradient buffer (read it through `gradientView`).
   */
  computeGradientInPlace(batch: Uint8Array, exampleOffset: number, step: number): number {
    const rows = this.rows(batch, 'a training batch');
    return coreCall('gradient', () => this.core.computeGradientInPlace(batch, rows, BigInt(exampleOffset), BigInt(step)));
  }

  /**
   * Consecutive shards of a batch (shardRows[k] rows each, together examples exampleOffset.. of
   * step `step`): their gradients, each from zero, added in shard order into the core's gradient
   * buffer (read it through `gradientView`); returns their loss sum, added in the same order.
   */
  computeGradientOfShardsInPlace(batch: Uint8Array, exampleOffset: number, step: number, shardRows: readonly number[]): number {
    this.rows(batch, 'a training batch');
    const rows = Uint32Array.from(shardRows);
    return coreCall('gradient', () => this.core.computeGradientOfShardsInPlace(batch, BigInt(exampleOffset), BigInt(step), rows));
  }

  /**
   * This replica's share of a pool's step: the rows of its consecutive shards (shardRows[k] rows
   * each, examples exampleOffset..). The first replica (the one with shard 0) adds its shards'
   * gradients in order into one part; any other replica makes one part per shard, each from zero.
   * `write(part, gradient)` receives each part's gradient (a view, valid during the call); the
   * last part stays in the gradient buffer. Returns each part's loss sum.
   */
  computeParts(
    batch: Uint8Array,
    exampleOffset: number,
    step: number,
    shardRows: readonly number[],
    first: boolean,
    write: (part: number, gradient: Float32Array) => void,
  ): number[] {
    if (first) {
      const lossSum = this.computeGradientOfShardsInPlace(batch, exampleOffset, step, shardRows);
      write(0, this.gradientView());
      return [lossSum];
    }
    const L = this.model.length;
    const lossSums: number[] = [];
    let row = 0;
    shardRows.forEach((count, part) => {
      lossSums.push(this.computeGradientInPlace(batch.subarray(row * L, (row + count) * L), exampleOffset + row, step));
      write(part, this.gradientView());
      row += count;
    });
    return lossSums;
  }

  /**
   * The core's gradient buffer (parameterCount values) as a view on the wasm memory: valid until
   * the next call into this model (the memory may grow), so take a fresh view each time.
   */
  gradientView(): Float32Array {
    const memory = wasmMemory() as WebAssembly.Memory;
    return new Float32Array(memory.buffer, this.core.gradientPointer(), this.model.parameterCount);
  }

  /**
   * A scratch buffer beside the gradient (a view on the wasm memory, valid until the next call into
   * this model): the pool copies another shard's gradient into it and adds it with
   * `addScratchToGradient()` (vectorised f32 additions, the same results as in JavaScript).
   */
  gradientScratchView(): Float32Array {
    const pointer = this.core.gradientScratchPointer();
    return new Float32Array((wasmMemory() as WebAssembly.Memory).buffer, pointer, this.model.parameterCount);
  }

  /** gradient[i] += scratch[i] for every i (see `gradientScratchView`). */
  addScratchToGradient(): void {
    coreCall('gradient', () => this.core.addScratchToGradient());
  }

  /** One optimiser step from the gradient sums written into `gradientView()` over `totalRows` examples. */
  applyGradientInPlace(lossSum: number, totalRows: number): TrainStepReport {
    return stepReport(coreCall('optimiser step', () => this.core.applyGradientInPlace(lossSum, totalRows)));
  }

  /** Importance objective: the (t, term) observations of this step's shards so far, flat [t, term, ...]. */
  pendingObservations(): Float64Array {
    return this.core.pendingObservations();
  }

  /** Replaces the pending observations (a pool gives every replica those of all shards, in order). */
  setPendingObservations(flat: Float64Array): void {
    coreCall('observations', () => this.core.setPendingObservations(flat));
  }

  /** Sequences first..first+n of `sample(first + n, opts)` (same seed). */
  sampleRange(first: number, n: number, opts: SampleOptions = {}): SampleResult {
    const recordEvery = opts.recordEvery ?? 0;
    const steps = chainSteps(opts.steps, this.model.modelConfig.T);
    const samples = coreCall('sampling', () => this.core.sampleRange(BigInt(first), n, toSeed(opts.seed ?? 0), recordEvery, steps));
    // biome-ignore lint/complexity/useLiteralKeys: DiffusionModel's private members are reachable only by index (this class is its internal part)
    return { samples, frames: recordEvery > 0 ? this.model['recordedFrames'](n) : [] };
  }

  /** Completions first..first+n of `inpaint(pattern, first + n, opts)`. */
  inpaintRange(pattern: Uint8Array, first: number, n: number, opts: InpaintOptions = {}): Uint8Array {
    if (pattern.length !== this.model.length) {
      throw new UserError(`the pattern has ${pattern.length} positions, the model's sequences have ${this.model.length}`);
    }
    const [mode, particles] = inpaintMode(opts);
    const steps = chainSteps(opts.steps, this.model.modelConfig.T);
    return coreCall('inpainting', () => this.core.inpaintRange(pattern, BigInt(first), n, toSeed(opts.seed ?? 0), mode, particles, steps));
  }

  /**
   * The Monte-Carlo totals behind `evaluate` for rows that are sequences firstIndex.. of the data:
   * totals[i·repeats + r] in bits (`summariseBound` of all rows' totals gives `evaluate`'s result),
   * only items (i·repeats + r) items.first..items.first+items.count of these rows when given.
   */
  boundTotals(data: Uint8Array, firstIndex: number, opts: BoundOptions = {}, items?: { first: number; count: number }): Float64Array {
    const rows = this.rows(data, 'evaluation data');
    const repeats = opts.repeats ?? 8;
    const strata = boundStrata(opts.strata);
    return coreCall('evaluation', () =>
      this.core.boundTotals(data, rows, repeats, strata, toSeed(opts.seed ?? 0), BigInt(firstIndex), items?.first, items?.count),
    );
  }
}
