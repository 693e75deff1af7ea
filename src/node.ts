/**
 * bernoulli-diffusion/node — Node-only helpers: a worker-thread pool for data-parallel training,
 * sampling and evaluation, and file I/O with atomic writes (the CLI's `Io`). The model itself
 * comes from the core entry, `bernoulli-diffusion`.
 *
 * @packageDocumentation
 */
import './node/wasm-file.js';

export { createNodePool, spawnNodeWorker, availableCores } from './node/pool.js';
export { NodeIo, writeFileAtomic, type NodeIoOptions } from './node/io.js';
