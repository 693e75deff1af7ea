/**
 * bernoulli-diffusion — the core entry on Node (the package's "node" condition): the exports of
 * src/index.ts, with `init()` reading the wasm from the package folder (Node's fetch cannot read
 * file: URLs). No top-level await in this graph, so `require('bernoulli-diffusion')` works too.
 *
 * @packageDocumentation
 */
import './node/wasm-file.js';

export * from './index.js';
