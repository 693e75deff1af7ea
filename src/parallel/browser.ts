/**
 * Web Workers for the pool (browser-safe). `webWorker` adapts any module Worker that runs
 * src/parallel/web-worker.ts (or calls `serveWorker` itself); `spawnWebWorker` starts the
 * package's own worker entry, located beside this module (bundlers such as vite follow the
 * `new Worker(new URL(…, import.meta.url))` pattern and bundle it).
 */
import type { PoolWorker, SpawnWorker } from './protocol.js';

/** The pool's view of a Web Worker. */
export function webWorker(worker: Worker): PoolWorker {
  return {
    postMessage: (message, transfer) => worker.postMessage(message, transfer ?? []),
    onMessage: (handler) => worker.addEventListener('message', (event) => handler(event.data)),
    onError: (handler) => {
      worker.addEventListener('error', (event) => handler(new Error(event.message || 'the worker failed')));
      worker.addEventListener('messageerror', () => handler(new Error('a message from the worker could not be read')));
    },
    terminate: () => worker.terminate(),
  };
}

/** Starts the package's worker entry (src/parallel/web-worker) as a module Web Worker. */
export const spawnWebWorker: SpawnWorker = () => webWorker(new Worker(new URL('./web-worker.js', import.meta.url), { type: 'module' }));

/** Cores the browser reports (the default number of workers). */
export function browserCores(): number {
  return Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
}
