/**
 * The worker side of a pool (browser-safe): one model replica per worker, answering the pool's
 * requests in order. The environment-specific entry points are tiny: src/parallel/web-worker.ts
 * (Web Workers) and src/node/pool-worker.ts (Node worker_threads) only adapt the message port.
 */
import { InternalError, UserError } from '../errors.js';
import { DiffusionModel } from '../model.js';
import { init, loadedWasmBuild, useWasmBuild } from '../wasm.js';
import { sumShards, wasmAdder } from './gradients.js';
import { ModelReplica } from './replica.js';
import type { ApplyResult, ComputeResult, Envelope, InitResult, Reply, Request, SampleRangeResult, WorkerPort } from './protocol.js';

interface Answer {
  result: unknown;
  transfer?: Transferable[];
}

/** Serves pool requests on `port` until it is closed. */
export function serveWorker(port: WorkerPort): void {
  let model: DiffusionModel | undefined;
  let slots: Float32Array[] = [];
  let queue: Promise<void> = Promise.resolve();

  const replica = (): ModelReplica => {
    if (!model) throw new Error('the worker has no model yet (init first)');
    return new ModelReplica(model);
  };

  async function handle(request: Request): Promise<Answer> {
    switch (request.type) {
      case 'init': {
        if (!request.wasm && request.wasmBuild) useWasmBuild(request.wasmBuild);
        await init(request.wasm, request.wasmBuild);
        if (request.wasmBuild && loadedWasmBuild() !== request.wasmBuild && loadedWasmBuild() !== 'custom') {
          throw new Error(`the pool runs the ${request.wasmBuild} wasm build and this worker ${loadedWasmBuild()}`);
        }
        model?.free();
        model = await DiffusionModel.fromBytes(request.checkpoint, 'pool checkpoint');
        slots = [];
        if (request.slots) {
          const size = model.parameterCount;
          const count = request.slots.byteLength / (4 * size);
          for (let k = 0; k < count; k++) slots.push(new Float32Array(request.slots, 4 * k * size, size));
        }
        const result: InitResult = { step: model.step, parameterCount: model.parameterCount };
        return { result };
      }
      case 'compute': {
        const m = replica();
        const { buffers, slots: partSlots } = request;
        const lossSums = m.computeParts(request.batch, request.exampleOffset, request.step, request.shardRows, request.first, (part, gradient) => {
          if (buffers) new Float32Array(buffers[part]).set(gradient);
          else slots[partSlots![part]].set(gradient);
        });
        const observations = m.pendingObservations();
        const result: ComputeResult = { lossSums, observations, buffers };
        return { result, transfer: [...(buffers ?? []), observations.buffer] };
      }
      case 'apply': {
        const m = replica();
        if (request.observations) m.setPendingObservations(request.observations);
        if (request.buffer) {
          m.gradientView().set(new Float32Array(request.buffer));
        } else {
          const add = wasmAdder(m); // may allocate the scratch buffer: views after it
          // all parts in slot order; the gradient buffer still holds part `holds` (-1: none)
          sumShards(m.gradientView(), slots.slice(0, request.parts ?? 0), request.holds ?? -1, add);
        }
        const report = m.applyGradientInPlace(request.lossSum, request.totalRows);
        const result: ApplyResult = { ...report, buffer: request.buffer };
        return { result, transfer: request.buffer ? [request.buffer] : [] };
      }
      case 'sample': {
        const out = replica().sampleRange(request.first, request.n, { seed: request.seed, recordEvery: request.recordEvery, steps: request.steps });
        const result: SampleRangeResult = out;
        return { result, transfer: [out.samples.buffer, ...out.frames.map((f) => f.bits.buffer)] };
      }
      case 'inpaint': {
        const bits = replica().inpaintRange(request.pattern, request.first, request.n, request.options);
        return { result: bits, transfer: [bits.buffer] };
      }
      case 'boundTotals': {
        const totals = replica().boundTotals(
          request.data,
          request.firstIndex,
          { repeats: request.repeats, strata: request.strata, seed: request.seed },
          request.items,
        );
        return { result: totals, transfer: [totals.buffer] };
      }
      case 'toBytes': {
        const bytes = replica().model.toBytes(request.metadata);
        return { result: bytes, transfer: [bytes.buffer] };
      }
      case 'parameters': {
        const values = replica().model.parameters();
        return { result: values, transfer: [values.buffer] };
      }
      case 'close': {
        model?.free();
        model = undefined;
        return { result: null };
      }
    }
  }

  port.onMessage((message) => {
    const { id, request } = message as Envelope;
    queue = queue.then(async () => {
      let reply: Reply;
      let transfer: Transferable[] = [];
      try {
        const answer = await handle(request);
        reply = { id, ok: true, result: answer.result };
        transfer = answer.transfer ?? [];
      } catch (error) {
        const internalError = error instanceof InternalError;
        const text = internalError ? error.detail : error instanceof Error ? error.message : String(error);
        reply = { id, ok: false, message: text, userError: error instanceof UserError, internalError };
      }
      port.postMessage(reply, transfer);
    });
  });
}
