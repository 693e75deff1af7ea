/**
 * Messages between a pool (pool.ts, the main thread) and its workers (worker.ts). Browser-safe.
 *
 * Every request carries an id; the worker answers each with a Reply of the same id, in order.
 * Big arrays travel as transferables (moved, not copied) or through a SharedArrayBuffer.
 */

import type { InpaintOptions } from '../model.js';
import type { WasmBuild } from '../wasm.js';

/** The environment-neutral face of a worker, as the pool sees it (src/node/pool.ts and browser.ts adapt the real ones). */
export interface PoolWorker {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onMessage(handler: (message: unknown) => void): void;
  /** Called when the worker fails or exits unexpectedly. */
  onError(handler: (error: Error) => void): void;
  // biome-ignore lint/suspicious/noConfusingVoidType: a Web Worker's terminate returns nothing, worker_threads' a promise
  terminate(): void | Promise<unknown>;
}

/** Starts worker number `index` of a pool. */
export type SpawnWorker = (index: number) => PoolWorker;

/** The worker's side of the channel (a Web Worker's `self`, a Node worker's `parentPort`). */
export interface WorkerPort {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onMessage(handler: (message: unknown) => void): void;
}

export type Seed = number | bigint;

export type Request =
  | {
      type: 'init';
      /** The compiled core (shared, not recompiled); absent: the worker loads it itself. */
      wasm?: WebAssembly.Module;
      /** The build of the core every replica runs (`wasm`'s, or the one to load). */
      wasmBuild?: WasmBuild;
      /** The replica's starting state: a safetensors checkpoint (`DiffusionModel.toBytes`). */
      checkpoint: Uint8Array;
      /** Shared gradient slots, one per part of a step (slotCount × parameterCount f32), or absent (transfer mode). */
      slots?: SharedArrayBuffer;
    }
  | {
      type: 'compute';
      /** The rows of this replica's shards (consecutive), examples exampleOffset.. of the step. */
      batch: Uint8Array;
      exampleOffset: number;
      step: number;
      /** Rows of each of this replica's shards. */
      shardRows: number[];
      /**
       * The first replica: its shards' gradients are added in order into one part (the sum of
       * shards 0..); the others send one part per shard.
       */
      first: boolean;
      /** Shared mode: the slot of each part. */
      slots?: number[];
      /** Transfer mode: one buffer per part, filled and sent back. */
      buffers?: ArrayBuffer[];
    }
  | {
      type: 'apply';
      lossSum: number;
      totalRows: number;
      /** All shards' importance observations in shard order (importance objective only). */
      observations?: Float64Array;
      /** Shared mode: the number of parts, in slots 0..parts-1, added in this order. */
      parts?: number;
      /** Shared mode: the slot whose part this replica's gradient buffer still holds (-1: none). */
      holds?: number;
      /** Transfer mode: the summed gradient. */
      buffer?: ArrayBuffer;
    }
  | { type: 'sample'; first: number; n: number; seed: Seed; recordEvery: number; steps?: number }
  | { type: 'inpaint'; pattern: Uint8Array; first: number; n: number; options: InpaintOptions }
  | { type: 'boundTotals'; data: Uint8Array; firstIndex: number; repeats: number; strata: number; seed: Seed; items: { first: number; count: number } }
  | { type: 'toBytes'; metadata: Record<string, string> }
  | { type: 'parameters' }
  | { type: 'close' };

export interface Envelope {
  id: number;
  request: Request;
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; message: string; userError: boolean; internalError: boolean };

export interface InitResult {
  step: number;
  parameterCount: number;
}

export interface ComputeResult {
  /** The loss sum of each part (the first replica: of all its shards, added in order). */
  lossSums: number[];
  /** Flat (t, term) pairs of the replica's shards in order; empty unless the objective is importance sampling. */
  observations: Float64Array;
  /** Transfer mode: each part's gradient. */
  buffers?: ArrayBuffer[];
}

export interface ApplyResult {
  loss: number;
  gradNorm: number;
  lr: number;
  /** The replica's state is finite after the step. */
  finite?: boolean;
  /** Transfer mode: the worker's buffer, handed back for the next step. */
  buffer?: ArrayBuffer;
}

export interface SampleRangeResult {
  samples: Uint8Array;
  frames: { t: number; bits: Uint8Array }[];
}
