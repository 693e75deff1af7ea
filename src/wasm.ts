/**
 * Loading the wasm core (pkg/, wasm-pack --target web). There are two builds of the same crate with
 * the same exports: `simd128` (f32x4 multiply then add, bit-identical to the native Rust build on
 * every machine) and `relaxed-simd` (the matrix kernels' multiply-adds as `f32x4.relaxed_madd`,
 * which the engine fuses on FMA hardware: one rounding instead of two, so its numbers differ from
 * the plain build's in the last bits, and between FMA and non-FMA machines). `init()` takes the
 * relaxed build when the runtime validates relaxed SIMD (Node >= 22, Chrome >= 114; Node 20 with
 * the flag the Node entry sets) unless `useWasmBuild('simd128')` asked for the plain one.
 *
 * Bundlers and browsers fetch the build by URL (`new URL('…_bg.wasm', import.meta.url)`, which vite
 * understands); Node reads the file through a loader that the Node entry registers (so no
 * Node-only import is reachable from here).
 */
import initGlue from '../pkg/bernoulli_diffusion_core.js';
import { UserError } from './errors.js';

/**
 * Where `init` may get the wasm: a URL (string or URL), a fetch Response, the bytes, or a compiled
 * WebAssembly.Module. (The glue's own InitInput, written out so that the package's types do not
 * load the generated glue's declarations, which need lib esnext.disposable.)
 */
export type WasmSource = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** The two builds of the core: `simd128` (exact, portable bits) and `relaxed-simd` (fused multiply-adds, faster). */
export type WasmBuild = 'simd128' | 'relaxed-simd';

/** The file name of each build in pkg/ (the package's `./wasm` and `./wasm-relaxed` exports). */
export const WASM_FILES: Record<WasmBuild, string> = {
  simd128: 'bernoulli_diffusion_core_bg.wasm',
  'relaxed-simd': 'bernoulli_diffusion_core_relaxed_bg.wasm',
};

/**
 * A minimal module that uses f32x4.relaxed_madd: (func (drop (f32x4.relaxed_madd (v128.const 0)
 * (v128.const 0) (v128.const 0)))). `WebAssembly.validate` accepts it only where relaxed SIMD is on.
 */
const V128_ZERO = [0xfd, 0x0c, ...new Array<number>(16).fill(0)];
const RELAXED_SIMD_PROBE = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version 1
  ...[0x01, 0x04, 0x01, 0x60, 0x00, 0x00], // type section: one () -> ()
  ...[0x03, 0x02, 0x01, 0x00], // function section: one function of type 0
  ...[0x0a, 0x3e, 0x01, 0x3c, 0x00], // code section (62 bytes): one body (60 bytes), no locals
  ...V128_ZERO,
  ...V128_ZERO,
  ...V128_ZERO,
  ...[0xfd, 0x85, 0x02], // f32x4.relaxed_madd (0xfd 261)
  ...[0x1a, 0x0b], // drop, end
]);

/** Whether this runtime runs relaxed SIMD (the faster build). */
export function relaxedSimdSupported(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_SIMD_PROBE);
}

let requested: WasmBuild | 'auto' = 'auto';
let loaded: WasmBuild | 'custom' | undefined;
let defaultSource: ((build: WasmBuild) => Promise<WasmSource>) | undefined;
let ready: Promise<void> | undefined;

/**
 * Which build `init()` (without a source) loads: 'auto' (the default: relaxed-simd where the
 * runtime has it), or one build. Call it before the core is loaded; asking for relaxed-simd where
 * the runtime lacks it makes `init` fail.
 */
export function useWasmBuild(build: WasmBuild | 'auto'): void {
  if (build !== 'auto' && !(build in WASM_FILES)) throw new Error(`unknown wasm build ${JSON.stringify(build)} (simd128, relaxed-simd or auto)`);
  if (ready && chosenBuild(build) !== selectedWasmBuild()) {
    throw new Error(`the wasm core is already loaded (${selectedWasmBuild()}); choose the build before the first model is made`);
  }
  requested = build;
}

function chosenBuild(request: WasmBuild | 'auto'): WasmBuild {
  if (request !== 'auto') return request;
  return relaxedSimdSupported() ? 'relaxed-simd' : 'simd128';
}

/** The build `init()` loaded ('custom': a source passed to `init`), or undefined before. */
export function loadedWasmBuild(): WasmBuild | 'custom' | undefined {
  return loaded;
}

/** The build `init()` without a source loads (or has loaded) in this runtime. */
export function selectedWasmBuild(): WasmBuild {
  return loaded === 'simd128' || loaded === 'relaxed-simd' ? loaded : chosenBuild(requested);
}

/** Where `init()` gets a build's wasm when called without a source (the Node entry sets this). */
export function setDefaultWasmSource(loader: (build: WasmBuild) => Promise<WasmSource>): void {
  defaultSource = loader;
}

/** The browser's default: the build's file beside the glue, by URL (bundlers copy both files). */
function urlOf(build: WasmBuild): URL | undefined {
  // the plain build: the glue's own URL (undefined), so bundles that predate the relaxed build keep working
  return build === 'relaxed-simd' ? new URL('../pkg/bernoulli_diffusion_core_relaxed_bg.wasm', import.meta.url) : undefined;
}

/**
 * Instantiates the wasm core once; later calls return the same promise. `source` may be a URL,
 * a Response, bytes or a compiled module (of the build `sourceBuild`, if you know it; the worker
 * pool passes it); without it, the selected build (`useWasmBuild`) from the registered default or
 * by URL.
 */
export function init(source?: WasmSource, sourceBuild?: WasmBuild): Promise<void> {
  ready ??= (async () => {
    const build = source === undefined ? selectedWasmBuild() : undefined;
    if (build === 'relaxed-simd' && !relaxedSimdSupported()) {
      throw new UserError('the relaxed-simd build of the core was asked for, but this runtime has no relaxed SIMD (use simd128 or auto)');
    }
    const resolved = source ?? (build && defaultSource ? await defaultSource(build) : build && urlOf(build));
    await initGlue(resolved === undefined ? undefined : { module_or_path: resolved });
    loaded = build ?? sourceBuild ?? 'custom';
  })().catch((error: unknown) => {
    ready = undefined; // let a later call retry, e.g. with another source
    throw error;
  });
  return ready;
}
