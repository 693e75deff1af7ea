/**
 * bernoulli-diffusion — the Node entry: everything of the browser entry, the wasm read from the
 * package's pkg/ folder, and the Node-only parts (file I/O with atomic writes, picture rendering,
 * the CLI).
 */
import './node/wasm-file.js';

export * from './index.js';
export { main as runCli } from './node/cli.js';
export { NodeIo, writeFileAtomic } from './node/io.js';
export * as plots from './plots/node.js';
export { createNodePool, spawnNodeWorker, availableCores } from './node/pool.js';
