/**
 * Loading the one wasm build (pkg/, wasm-pack --target web). Bundlers and browsers fetch it by URL
 * (the glue's `new URL('…_bg.wasm', import.meta.url)`, which vite understands); Node reads the file,
 * through a loader that the Node entry registers (so no Node-only import is reachable from here).
 */
import initGlue from '../pkg/bernoulli_diffusion_core.js';

/**
 * Where `init` may get the wasm: a URL (string or URL), a fetch Response, the bytes, or a compiled
 * WebAssembly.Module. (The glue's own InitInput, written out so that the package's types do not
 * load the generated glue's declarations, which need lib esnext.disposable.)
 */
export type WasmSource = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

let defaultSource: (() => Promise<WasmSource>) | undefined;
let ready: Promise<void> | undefined;

/** Where `init()` gets the wasm bytes when called without a source (the Node entry sets this). */
export function setDefaultWasmSource(loader: () => Promise<WasmSource>): void {
  defaultSource = loader;
}

/**
 * Instantiates the wasm core once; later calls return the same promise. `source` may be a URL,
 * a Response, bytes or a compiled module; without it, the registered default or the glue's URL.
 */
export function init(source?: WasmSource): Promise<void> {
  ready ??= (async () => {
    const resolved = source ?? (defaultSource ? await defaultSource() : undefined);
    await initGlue(resolved === undefined ? undefined : { module_or_path: resolved });
  })().catch((error: unknown) => {
    ready = undefined; // let a later call retry, e.g. with another source
    throw error;
  });
  return ready;
}
