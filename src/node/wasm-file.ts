/**
 * Node: the wasm core is read from pkg/ beside the package (Node's fetch cannot read file: URLs).
 * BERNOULLI_DIFFUSION_WASM=simd128 | relaxed-simd | auto (default) chooses the build (src/wasm.ts).
 */
import { readFile } from 'node:fs/promises';
import v8 from 'node:v8';
import { UserError } from '../errors.js';
import { relaxedSimdSupported, setDefaultWasmSource, useWasmBuild, WASM_FILES, type WasmBuild } from '../wasm.js';

/** The file of a build in pkg/. */
export function wasmFileUrl(build: WasmBuild): URL {
  return new URL(`../../pkg/${WASM_FILES[build]}`, import.meta.url);
}

const BUILD_VARIABLE = 'BERNOULLI_DIFFUSION_WASM';
const requested = process.env[BUILD_VARIABLE]?.trim() || 'auto';
const badRequest = requested === 'auto' || requested in WASM_FILES ? undefined : `${BUILD_VARIABLE}=${requested}: expected simd128, relaxed-simd or auto`;

// Node 20's V8 (11.3) has relaxed SIMD, finished but behind a flag (on by default from Node 22,
// V8 11.4). V8 reads wasm feature flags when it compiles a module, so turning the flag on here,
// before the first compile, is enough; the flags are per process, so worker threads share it.
if (!badRequest && requested !== 'simd128' && !relaxedSimdSupported()) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
if (!badRequest) useWasmBuild(requested as WasmBuild | 'auto');

/** The bytes of a build (a bad BERNOULLI_DIFFUSION_WASM is reported here, as a user error). */
export async function readWasm(build: WasmBuild): Promise<Uint8Array<ArrayBuffer>> {
  if (badRequest) throw new UserError(badRequest);
  return readFile(wasmFileUrl(build));
}

setDefaultWasmSource(readWasm);
