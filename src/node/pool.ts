/**
 * Node's side of the worker pool (src/parallel/pool.ts): workers are worker_threads running
 * src/node/pool-worker; the compiled wasm module is shared with them (no recompilation).
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DiffusionModel } from '../model.js';
import { ParallelModel, type PoolWorker } from '../parallel/pool.js';
import { selectedWasmBuild, type WasmBuild } from '../wasm.js';
import { readWasm } from './wasm-file.js';

/** Cores this process may use (the default number of workers). */
export function availableCores(): number {
  return availableParallelism();
}

// Running from the TypeScript sources (tests, tsx): the worker compiles its .ts through tsx,
// registered inside the worker thread (execArgv's --import does not reach workers in Node 20).
const fromSource = import.meta.url.endsWith('.ts');
const workerUrl = new URL(fromSource ? './pool-worker.ts' : './pool-worker.js', import.meta.url);

/** Starts one pool worker thread. */
export function spawnNodeWorker(): PoolWorker {
  let worker: Worker;
  // No inherited Node flags: the parent's may be about its own entry (--input-type, --eval) or
  // V8 options, which a worker refuses when they are passed explicitly.
  const execArgv: string[] = [];
  if (fromSource) {
    // tsx's ESM API (its CommonJS build cannot register the ESM hooks from an eval'd worker)
    const tsxApi = pathToFileURL(
      createRequire(import.meta.url)
        .resolve('tsx/esm/api')
        .replace(/\.cjs$/, '.mjs'),
    ).href;
    const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(workerUrl.href)}); });`;
    worker = new Worker(bootstrap, { eval: true, execArgv });
  } else {
    worker = new Worker(workerUrl, { execArgv });
  }
  const errorHandlers: ((error: Error) => void)[] = [];
  let exited = false;
  worker.on('error', (error) => errorHandlers.forEach((h) => h(error)));
  worker.on('exit', (code) => {
    exited = true;
    errorHandlers.forEach((h) => h(new Error(`the worker thread exited (code ${code})`)));
  });
  return {
    postMessage: (message, transfer) => worker.postMessage(message, transfer as ArrayBuffer[] | undefined),
    onMessage: (handler) => worker.on('message', handler),
    onError: (handler) => errorHandlers.push(handler),
    terminate: () => (exited ? undefined : worker.terminate()),
  };
}

const compiled = new Map<WasmBuild, Promise<WebAssembly.Module>>();

/** The wasm core (the build this process uses) compiled once per process, for the workers. */
export function compiledWasm(build: WasmBuild = selectedWasmBuild()): Promise<WebAssembly.Module> {
  let module = compiled.get(build);
  if (!module) {
    module = readWasm(build).then((bytes) => WebAssembly.compile(bytes));
    compiled.set(build, module);
  }
  return module;
}

/**
 * A pool of `workers` worker threads (and `local` as one more replica, if given) for a model:
 * `workers + (local ? 1 : 0)` replicas share every step.
 */
export async function createNodePool(options: { workers: number; local?: DiffusionModel; checkpoint?: Uint8Array; shared?: boolean }): Promise<ParallelModel> {
  const build = selectedWasmBuild();
  return ParallelModel.create({ ...options, spawn: spawnNodeWorker, wasm: await compiledWasm(build), wasmBuild: build });
}
