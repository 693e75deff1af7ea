/** Node entry of a pool worker (worker_threads): the wasm from pkg/, the port of `parentPort`. */
import { parentPort } from 'node:worker_threads';
import './wasm-file.js';
import { serveWorker } from '../parallel/worker.js';

const port = parentPort;
if (!port) throw new Error('pool-worker must run in a worker thread');
serveWorker({
  postMessage: (message, transfer) => port.postMessage(message, transfer as ArrayBuffer[] | undefined),
  onMessage: (handler) => port.on('message', handler),
});
