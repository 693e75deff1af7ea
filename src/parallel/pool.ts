/**
 * Data-parallel training, sampling and evaluation over a pool of workers (browser-safe; the
 * environment-specific part is the `spawn` function: src/node/pool.ts for Node worker_threads,
 * src/parallel/browser.ts for Web Workers).
 *
 * Every worker holds a replica of the model in its own wasm instance, all started from the same
 * checkpoint; optionally the calling thread holds one more (`local`), which then takes part as
 * shard 0 and stays a usable, up-to-date DiffusionModel (the Node CLI checkpoints it).
 *
 * A training step on a batch of B rows:
 *  1. the rows are cut into the core's fixed shards (`gradientShardRows`: at most eight, whatever
 *     the number of replicas), and the shards into contiguous shares of the replicas (larger
 *     first). Replica 0 adds its shards' gradients, each from zero, in order into one part (the
 *     core's `computeGradientOfShardsInPlace`); every other replica computes one part per shard,
 *     each from zero, as examples offset.. of the step (each example draws its noise from its own
 *     counter-based stream);
 *  2. the parts are added in order (`sumShards`) — the same f32 additions as one model's
 *     `trainStep` (g_0 + g_1, then + g_2, ...), in every replica — and every replica applies that
 *     sum (clipping, AdamW, EMA): the replicas stay bit-identical without ever sending weights.
 *     Importance-sampling observations of all shards are handed to every replica in shard order,
 *     so their histories stay identical too.
 * Gradients move through a SharedArrayBuffer (one slot per part; each replica sums the slots
 * itself) when there is one, else as transferred ArrayBuffers summed here and sent back.
 *
 * Results against one worker: training steps, sampling, inpainting and the bound's evaluation are
 * bit-identical for any number of workers (the fixed shards; per-sequence streams; per-row network
 * results do not depend on the other rows): tests/parallel.test.ts.
 */
import { summariseBound as coreSummariseBound, gradientShardRows, gradientShards } from '../../pkg/bernoulli_diffusion_core.js';
import {
  boundStrata,
  type BoundEvaluation,
  type BoundOptions,
  type DiffusionModel,
  type InpaintOptions,
  type ModelConfig,
  type SampleOptions,
  type SampleResult,
  type TrainingConfig,
} from '../model.js';
import { InternalError, UserError } from '../errors.js';
import { checkpointSummary } from '../run/checkpoint.js';
import type { StepReport } from '../run/records.js';
import type { AsyncTrainableModel } from '../training.js';
import { init, loadedWasmBuild, selectedWasmBuild, type WasmBuild } from '../wasm.js';
import { splitEvenly, sumShards, wasmAdder } from './gradients.js';
import { ModelReplica } from './replica.js';
import type { ApplyResult, ComputeResult, Envelope, InitResult, PoolWorker, Reply, Request, SampleRangeResult, SpawnWorker } from './protocol.js';

export type { PoolWorker, SpawnWorker, WorkerPort } from './protocol.js';

/** Options of `ParallelModel.create`: how to start workers, how many, and the replicas' starting state. */
export interface PoolOptions {
  /** Starts one worker (see src/node/pool.ts, src/parallel/browser.ts). */
  spawn: SpawnWorker;
  /** Number of workers to start (>= 0; with no local model at least 1). */
  workers: number;
  /** A replica in this thread that computes shard 0 and is kept in step (optional). */
  local?: DiffusionModel;
  /** The replicas' starting state (safetensors bytes); default: `local.toBytes()`. */
  checkpoint?: Uint8Array;
  /** The compiled wasm core to hand to the workers (else each loads its own). */
  wasm?: WebAssembly.Module;
  /** Which build `wasm` is (default: the build this thread selects, `selectedWasmBuild`). */
  wasmBuild?: WasmBuild;
  /** Gradients through a SharedArrayBuffer (default: when SharedArrayBuffer exists). */
  shared?: boolean;
}

/** One worker and its pending requests. */
class WorkerChannel {
  private nextId = 0;
  private pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  failure: Error | undefined;

  constructor(
    readonly worker: PoolWorker,
    readonly index: number,
  ) {
    worker.onMessage((message) => {
      const reply = message as Reply;
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.result);
      else if (reply.userError) waiter.reject(new UserError(reply.message));
      else waiter.reject(reply.internalError ? new InternalError(`worker ${index}: ${reply.message}`) : new Error(`worker ${index}: ${reply.message}`));
    });
    worker.onError((error) => this.fail(error));
  }

  fail(error: Error): void {
    this.failure ??= new Error(`worker ${this.index} failed: ${error.message}`);
    for (const waiter of this.pending.values()) waiter.reject(this.failure);
    this.pending.clear();
  }

  call<T>(request: Request, transfer: Transferable[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      const envelope: Envelope = { id, request };
      this.worker.postMessage(envelope, transfer);
    });
  }
}

/**
 * The mean bound and both standard errors from totals[i·repeats + r]: the core's one definition
 * (`evaluate::summarise`). Needs the wasm core loaded (`init()`, or any model created).
 */
export function summariseBound(totals: Float64Array, rows: number, repeats: number, strata = 0): BoundEvaluation {
  const out = coreSummariseBound(totals, rows, repeats);
  return { boundBits: out[0], stderr: out[1], sequenceStderr: out[2], perSequence: out.slice(3), repeats, strata };
}

/** A DiffusionModel replicated over workers: data-parallel training steps, and sampling, inpainting and evaluation split across replicas (bit-identical to one model's results). */
export class ParallelModel implements AsyncTrainableModel {
  /** The replicas' model config. */
  readonly modelConfig: ModelConfig;
  /** The replicas' training config. */
  readonly trainingConfig: TrainingConfig;
  /** Number of trainable parameters of each replica. */
  readonly parameterCount: number;
  private stepCount: number;
  private broken: Error | undefined;
  /** Shared mode: slot p holds part p of a step (part 0: replica 0's shards added in order). */
  private slotViews: Float32Array[] = [];
  /** Transfer mode: gradient buffers not lent to a worker, and the sum. */
  private spareBuffers: ArrayBuffer[] = [];
  private sum: Float32Array | undefined;
  private busy = false;

  private constructor(
    private readonly channels: WorkerChannel[],
    private readonly local: ModelReplica | undefined,
    configs: { model: ModelConfig; training: TrainingConfig },
    parameterCount: number,
    step: number,
    private readonly shared: boolean,
  ) {
    this.modelConfig = configs.model;
    this.trainingConfig = configs.training;
    this.parameterCount = parameterCount;
    this.stepCount = step;
  }

  /** Starts the workers and loads the same checkpoint into every replica. */
  static async create(options: PoolOptions): Promise<ParallelModel> {
    const { spawn, workers, local } = options;
    if (!Number.isInteger(workers) || workers < 0) throw new UserError(`workers must be a non-negative integer, got ${workers}`);
    if (workers === 0 && !local) throw new UserError('a pool needs at least one worker or a local model');
    const checkpoint = options.checkpoint ?? local?.toBytes();
    if (!checkpoint) throw new UserError('a pool needs a checkpoint or a local model to start its replicas from');
    // Every replica runs one build: the two round differently, so a mixed pool would not be bit-identical.
    const wasmBuild = options.wasmBuild ?? (options.wasm ? undefined : selectedWasmBuild());
    await init(options.wasm, wasmBuild); // this thread summarises the bound with the core (`summariseBound`)
    const here = loadedWasmBuild();
    if (wasmBuild && here !== 'custom' && here !== wasmBuild) throw new Error(`the workers would run the ${wasmBuild} wasm build and this thread runs ${here}`);
    const start = checkpointSummary(checkpoint, 'pool checkpoint');
    const configs = local ? { model: local.modelConfig, training: local.trainingConfig } : start;
    const parameterCount = start.parameterCount;
    const step = start.step;
    if (local && (local.parameterCount !== parameterCount || local.step !== step)) throw new Error("the checkpoint is not the local model's state");
    const shared = (options.shared ?? true) && typeof SharedArrayBuffer !== 'undefined';
    const replicas = workers + (local ? 1 : 0);
    // Parts of a step: replica 0's one, plus one per shard of the others (most with all shards).
    const shards = gradientShards();
    const slotCount = 1 + shards - Math.ceil(shards / replicas);
    const slots = shared ? new SharedArrayBuffer(4 * parameterCount * slotCount) : undefined;
    const channels: WorkerChannel[] = [];
    try {
      for (let k = 0; k < workers; k++) channels.push(new WorkerChannel(spawn(k), k));
      const answers = await Promise.all(
        channels.map((channel) => {
          const copy = checkpoint.slice();
          return channel.call<InitResult>({ type: 'init', wasm: options.wasm, wasmBuild, checkpoint: copy, slots }, [copy.buffer]);
        }),
      );
      for (const answer of answers) {
        if (answer.step !== step || answer.parameterCount !== parameterCount) throw new Error("a replica did not start from the checkpoint's state");
      }
      const pool = new ParallelModel(channels, local && new ModelReplica(local), configs, parameterCount, step, shared);
      if (slots) {
        for (let k = 0; k < slotCount; k++) pool.slotViews.push(new Float32Array(slots, 4 * k * parameterCount, parameterCount));
      } else {
        pool.sum = new Float32Array(parameterCount);
      }
      return pool;
    } catch (error) {
      await Promise.all(channels.map((c) => c.worker.terminate()));
      throw error;
    }
  }

  /** Optimiser steps taken. */
  get step(): number {
    return this.stepCount;
  }

  /** L, the bits per sequence. */
  get length(): number {
    return this.modelConfig.length;
  }

  /** Replicas that take shards (the local model, if any, and the workers). */
  get replicas(): number {
    return this.channels.length + (this.local ? 1 : 0);
  }

  private usable(): void {
    if (this.broken) throw this.broken;
    if (this.busy) throw new Error('the pool is busy: await each call before the next');
  }

  /** Runs `body` with the pool marked busy; a failure during a step leaves the replicas unusable. */
  private async exclusive<T>(body: () => Promise<T>, breaksOnFailure: boolean): Promise<T> {
    this.usable();
    this.busy = true;
    try {
      return await body();
    } catch (error) {
      if (breaksOnFailure) this.broken = new Error(`the pool stopped after a failed training step: ${error instanceof Error ? error.message : String(error)}`);
      throw error;
    } finally {
      this.busy = false;
    }
  }

  private rowsOf(bits: Uint8Array, what: string): number {
    const L = this.length;
    if (bits.length === 0 || bits.length % L !== 0) throw new UserError(`${what} must hold whole sequences of ${L} bits, got ${bits.length} values`);
    return bits.length / L;
  }

  /** Shard ranges over all replicas (local first); empty shards are skipped by the callers. */
  private shards(n: number): { start: number; count: number }[] {
    return splitEvenly(n, this.replicas);
  }

  /** One optimiser step on a batch (rows × L bits), data-parallel over the replicas. */
  async trainStep(batch: Uint8Array): Promise<StepReport> {
    const rows = this.rowsOf(batch, 'a training batch');
    return this.exclusive(() => this.trainStepNow(batch, rows), true);
  }

  /** Transfer mode: a gradient buffer to lend to a worker. */
  private takeBuffer(): ArrayBuffer {
    return this.spareBuffers.pop() ?? new ArrayBuffer(4 * this.parameterCount);
  }

  private async trainStepNow(batch: Uint8Array, rows: number): Promise<StepReport> {
    const L = this.length;
    const step = this.stepCount;
    const shardRows = Array.from(gradientShardRows(rows));
    const shardStarts = [0];
    for (const count of shardRows) shardStarts.push(shardStarts.at(-1)! + count);
    // replica r (local first) takes shards owned[r]; replica 0 always has at least one
    const owned = splitEvenly(shardRows.length, this.replicas);
    const partCount = 1 + shardRows.length - owned[0].count;
    // the part index of replica r's first part (replica 0: one part, 0)
    const firstPart = (r: number) => (r === 0 ? 0 : 1 + owned[r].start - owned[0].count);
    const partsOf = (r: number) => (r === 0 ? 1 : owned[r].count);
    const offset = this.local ? 1 : 0;
    // Workers first, so they run while this thread computes its own shards.
    const computing = this.channels.map((channel, k) => {
      const r = k + offset;
      const { start, count } = owned[r];
      if (count === 0) return Promise.resolve(undefined);
      const from = shardStarts[start];
      const shard = batch.slice(from * L, shardStarts[start + count] * L);
      const parts = Array.from({ length: partsOf(r) }, (_, p) => firstPart(r) + p);
      const buffers = this.shared ? undefined : parts.map(() => this.takeBuffer());
      const request: Request = {
        type: 'compute',
        batch: shard,
        exampleOffset: from,
        step,
        shardRows: shardRows.slice(start, start + count),
        first: r === 0,
        slots: this.shared ? parts : undefined,
        buffers,
      };
      return channel.call<ComputeResult>(request, [shard.buffer, ...(buffers ?? [])]);
    });
    let localResult: ComputeResult | undefined;
    if (this.local) {
      const count = owned[0].count;
      try {
        const lossSums = this.local.computeParts(batch.subarray(0, shardStarts[count] * L), 0, step, shardRows.slice(0, count), true, (part, gradient) => {
          if (this.shared) this.slotViews[part].set(gradient);
        });
        localResult = { lossSums, observations: this.local.pendingObservations() };
      } catch (error) {
        await Promise.allSettled(computing);
        throw error;
      }
    }
    const results = [...(this.local ? [localResult] : []), ...(await Promise.all(computing))];
    // Replica order is shard order: loss sums and observations as one model adds them.
    let lossSum = 0;
    for (const result of results) for (const part of result?.lossSums ?? []) lossSum += part;
    const observationCount = results.reduce((n, r) => n + (r?.observations.length ?? 0), 0);
    let observations: Float64Array | undefined;
    if (observationCount > 0) {
      observations = new Float64Array(observationCount);
      let at = 0;
      for (const result of results) {
        if (!result) continue;
        observations.set(result.observations, at);
        at += result.observations.length;
      }
    }

    let applying: Promise<ApplyResult>[];
    let localReport: StepReport | undefined;
    if (this.shared) {
      // the part a replica's gradient buffer still holds: its last one (-1: it had no shards)
      const holds = (r: number) => (owned[r].count === 0 ? -1 : firstPart(r) + partsOf(r) - 1);
      applying = this.channels.map((channel, k) =>
        channel.call<ApplyResult>({ type: 'apply', lossSum, totalRows: rows, observations, parts: partCount, holds: holds(k + offset) }),
      );
      if (this.local) {
        if (observations) this.local.setPendingObservations(observations);
        const add = wasmAdder(this.local); // may allocate the scratch buffer: views after it
        sumShards(this.local.gradientView(), this.slotViews.slice(0, partCount), 0, add); // it holds part 0
        localReport = this.local.applyGradientInPlace(lossSum, rows);
      }
    } else {
      const sum = this.sum!;
      const parts = results.flatMap((result, r) =>
        this.local && r === 0 ? [this.local.gradientView()] : (result?.buffers ?? []).map((b) => new Float32Array(b)),
      );
      sumShards(sum, parts);
      for (const result of results) this.spareBuffers.push(...(result?.buffers ?? []));
      applying = this.channels.map((channel) => {
        const buffer = this.takeBuffer();
        new Float32Array(buffer).set(sum);
        return channel.call<ApplyResult>({ type: 'apply', lossSum, totalRows: rows, observations, buffer }, [buffer]);
      });
      if (this.local) {
        if (observations) this.local.setPendingObservations(observations);
        this.local.gradientView().set(sum);
        localReport = this.local.applyGradientInPlace(lossSum, rows);
      }
    }
    const reports = await Promise.all(applying);
    for (const report of reports) if (report.buffer) this.spareBuffers.push(report.buffer);
    const all = [...(localReport ? [localReport] : []), ...reports.map(({ loss, gradNorm, lr, finite }) => ({ loss, gradNorm, lr, finite }))];
    const first = all[0];
    // Object.is: a diverged step's NaN loss is the same on every replica (NaN !== NaN).
    if (all.some((r) => !Object.is(r.loss, first.loss) || !Object.is(r.gradNorm, first.gradNorm) || r.lr !== first.lr || r.finite !== first.finite)) {
      throw new Error('the replicas reported different optimiser steps (they are no longer identical)');
    }
    this.stepCount += 1;
    return first;
  }

  /** n sequences from the reverse chain, split over the replicas (the same bits as one worker). */
  sample(n: number, opts: SampleOptions = {}): Promise<SampleResult> {
    return this.exclusive(async () => {
      const seed = opts.seed ?? 0;
      const recordEvery = opts.recordEvery ?? 0;
      const steps = opts.steps;
      const parts = await this.spread<SampleRangeResult>(
        n,
        (start, count) => ({ type: 'sample', first: start, n: count, seed, recordEvery, steps }),
        (start, count) => this.local!.sampleRange(start, count, { seed, recordEvery, steps }),
      );
      const L = this.length;
      const samples = new Uint8Array(n * L);
      parts.forEach(({ start, value }) => samples.set(value.samples, start * L));
      const frames = (parts[0]?.value.frames ?? []).map(({ t }, f) => {
        const bits = new Uint8Array(n * L);
        parts.forEach(({ start, value }) => bits.set(value.frames[f].bits, start * L));
        return { t, bits };
      });
      return { samples, frames };
    }, false);
  }

  /**
   * n completions of `pattern` (L values: 0, 1, 2 = unknown), split over the replicas; options as
   * `DiffusionModel.inpaint` (seed, mode, particles).
   */
  async inpaint(pattern: Uint8Array, n: number, opts: InpaintOptions = {}): Promise<Uint8Array> {
    if (pattern.length !== this.length) throw new UserError(`the pattern has ${pattern.length} positions, the model's sequences have ${this.length}`);
    return this.exclusive(async () => {
      const options: InpaintOptions = { ...opts, seed: opts.seed ?? 0 };
      const parts = await this.spread<Uint8Array>(
        n,
        (start, count) => ({ type: 'inpaint', pattern, first: start, n: count, options }),
        (start, count) => this.local!.inpaintRange(pattern, start, count, options),
      );
      const out = new Uint8Array(n * this.length);
      parts.forEach(({ start, value }) => out.set(value, start * this.length));
      return out;
    }, false);
  }

  /**
   * The bound (full or stratified sum over t, `repeats` Monte-Carlo draws), split over the
   * replicas by (sequence, repeat) item — each item draws from its own stream — so that 5
   * sequences × 8 repeats split 20/20 over two replicas, not 24/16 as by sequence.
   */
  async evaluate(data: Uint8Array, opts: BoundOptions = {}): Promise<BoundEvaluation> {
    const rows = this.rowsOf(data, 'evaluation data');
    const repeats = opts.repeats ?? 8;
    const strata = boundStrata(opts.strata);
    return this.exclusive(async () => {
      const seed = opts.seed ?? 0;
      const L = this.length;
      // items start..start+count lie in rows first..last; the call takes those rows and the
      // items' place among them
      const share = (start: number, count: number) => {
        const first = Math.floor(start / repeats);
        const last = Math.floor((start + count - 1) / repeats);
        return { first, end: last + 1, items: { first: start - first * repeats, count } };
      };
      const parts = await this.spread<Float64Array>(
        rows * repeats,
        (start, count) => {
          const { first, end, items } = share(start, count);
          return { type: 'boundTotals', data: data.slice(first * L, end * L), firstIndex: first, repeats, strata, seed, items };
        },
        (start, count) => {
          const { first, end, items } = share(start, count);
          return this.local!.boundTotals(data.subarray(first * L, end * L), first, { repeats, strata, seed }, items);
        },
      );
      const totals = new Float64Array(rows * repeats);
      parts.forEach(({ start, value }) => totals.set(value, start));
      return summariseBound(totals, rows, repeats, strata);
    }, false);
  }

  /** Runs a ranged request on every replica with a non-empty share of n items, the local one here. */
  private async spread<T>(
    n: number,
    request: (start: number, count: number) => Request,
    localCall: (start: number, count: number) => T,
  ): Promise<{ start: number; value: T }[]> {
    const ranges = this.shards(n);
    const offset = this.local ? 1 : 0;
    const remote = this.channels.map(async (channel, k) => {
      const { start, count } = ranges[k + offset];
      return count === 0 ? undefined : { start, value: await channel.call<T>(request(start, count)) };
    });
    const here = this.local && ranges[0].count > 0 ? { start: ranges[0].start, value: localCall(ranges[0].start, ranges[0].count) } : undefined;
    const all = [here, ...(await Promise.all(remote))];
    return all.filter((part): part is { start: number; value: T } => part !== undefined);
  }

  /** A checkpoint of the (identical) replicas: the local model's, else worker 0's. */
  toBytes(metadata: Record<string, string> = {}): Promise<Uint8Array> {
    if (this.local) return Promise.resolve(this.local.model.toBytes(metadata));
    return this.exclusive(() => this.channels[0].call<Uint8Array>({ type: 'toBytes', metadata }), false);
  }

  /** The current weights of every replica (local first): for checking that they agree. */
  replicaParameters(): Promise<Float32Array[]> {
    return this.exclusive(async () => {
      const remote = await Promise.all(this.channels.map((c) => c.call<Float32Array>({ type: 'parameters' })));
      return [...(this.local ? [this.local.model.parameters()] : []), ...remote];
    }, false);
  }

  /** Stops the workers (the local model, if any, stays usable and is not freed). */
  async close(): Promise<void> {
    this.broken ??= new Error('the pool is closed');
    await Promise.all(
      this.channels.map(async (channel) => {
        try {
          if (!channel.failure) await channel.call({ type: 'close' });
        } catch {
          // a failed worker is terminated all the same
        }
        await channel.worker.terminate();
      }),
    );
  }
}
