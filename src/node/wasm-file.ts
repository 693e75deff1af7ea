/** Node: the wasm core is read from pkg/ beside the package (Node's fetch cannot read file: URLs). */
import { readFile } from 'node:fs/promises';
import { setDefaultWasmSource } from '../wasm.js';

export const wasmFileUrl = new URL('../../pkg/bernoulli_diffusion_core_bg.wasm', import.meta.url);

setDefaultWasmSource(async () => readFile(wasmFileUrl));
