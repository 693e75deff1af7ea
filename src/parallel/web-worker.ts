/**
 * Browser entry of a pool worker (a module Web Worker): serves the pool's requests on `self`.
 * The wasm core comes from the pool (a compiled module) or, without one, from the glue's URL.
 */
import { serveWorker } from './worker.js';

const scope = globalThis as unknown as {
  postMessage(message: unknown, transfer: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
};
serveWorker({
  postMessage: (message, transfer) => scope.postMessage(message, transfer ?? []),
  onMessage: (handler) => scope.addEventListener('message', (event) => handler(event.data)),
});
