/**
 * The two builds of the wasm core (src/wasm.ts): `simd128` (mul then add, bit-identical to the
 * native build: crate/tests/native_vs_wasm.rs) and `relaxed-simd` (the kernels' multiply-adds as
 * f32x4.relaxed_madd, fused on FMA hardware). Real Node programs, one per build, since a process
 * loads one build: each reports the build it ran, the two agree to rounding, a build is
 * deterministic, and a bad BERNOULLI_DIFFUSION_WASM is one line of error.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import '../src/node/wasm-file.js'; // the Node loader (turns relaxed SIMD on in Node 20)
import { init, loadedWasmBuild, relaxedSimdSupported, selectedWasmBuild, useWasmBuild, WASM_FILES } from '../src/wasm.js';
import { cli, expectOneLineError, skipReason, workDir } from './adversarial/helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkgFile = (name: string) => readFileSync(new URL(`../pkg/${name}`, import.meta.url));
const objdump = spawnSync('wasm-objdump', ['--version'], { encoding: 'utf8' });

/** Trains the default network 25 steps on heartbeat rows with one seed; prints the build and the losses. */
const PROGRAM = `
import { DEFAULTS, DiffusionModel, coreModelConfig, coreTrainingConfig, loadedWasmBuild } from './src/index.node.ts';
const model = await DiffusionModel.create(coreModelConfig(DEFAULTS.model, 20), coreTrainingConfig(DEFAULTS.training, 1000), 7);
const batch = new Uint8Array(64 * 20);
for (let r = 0; r < 64; r++) for (let i = r % 5; i < 20; i += 5) batch[r * 20 + i] = 1;
const losses = [];
for (let s = 0; s < 25; s++) losses.push(model.trainStep(batch).loss);
console.log(JSON.stringify({ build: loadedWasmBuild(), losses }));
`;

function runProgram(build: string): { build: string; losses: number[] } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROGRAM], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, BERNOULLI_DIFFUSION_WASM: build },
  });
  return JSON.parse(out.trim().split('\n').at(-1) as string);
}

describe.skipIf(skipReason)('the two wasm builds', () => {
  it.skipIf(objdump.error !== undefined)('only the relaxed build has fused multiply-adds (wasm-objdump)', () => {
    const count = (file: string) => {
      const path = fileURLToPath(new URL(`../pkg/${file}`, import.meta.url));
      const disassembly = execFileSync('wasm-objdump', ['-d', path], { encoding: 'utf8', maxBuffer: 1 << 28 });
      return (disassembly.match(/\bf32x4\.relaxed_madd\b/g) ?? []).length;
    };
    expect(count(WASM_FILES['relaxed-simd'])).toBeGreaterThan(0);
    expect(count(WASM_FILES.simd128)).toBe(0);
  });

  it('the probe agrees with the relaxed build, and the Node entry turned relaxed SIMD on', () => {
    expect(WebAssembly.validate(pkgFile(WASM_FILES.simd128))).toBe(true);
    expect(relaxedSimdSupported()).toBe(WebAssembly.validate(pkgFile(WASM_FILES['relaxed-simd'])));
    // Node 20 has it behind a flag the Node entry sets; Node >= 22 by default
    expect(relaxedSimdSupported()).toBe(true);
    expect(selectedWasmBuild()).toBe(process.env.BERNOULLI_DIFFUSION_WASM === 'simd128' ? 'simd128' : 'relaxed-simd');
  });

  it('each process runs the build asked for; the builds agree to rounding, and each is deterministic', () => {
    const plain = runProgram('simd128');
    const relaxed = runProgram('relaxed-simd');
    const auto = runProgram('auto');
    expect(plain.build).toBe('simd128');
    expect(relaxed.build).toBe('relaxed-simd');
    expect(auto).toEqual(relaxed); // the default where the runtime has relaxed SIMD, bit for bit
    expect(runProgram('simd128')).toEqual(plain);
    for (let s = 0; s < plain.losses.length; s++) {
      expect(Number.isFinite(relaxed.losses[s])).toBe(true);
      // one rounding instead of two per multiply-add: relative differences of ~1e-7 per product
      expect(Math.abs(relaxed.losses[s] - plain.losses[s])).toBeLessThan(1e-4 * Math.abs(plain.losses[s]));
    }
    // training moved the loss (the comparison above is not between two constants)
    expect(Math.abs(plain.losses[0] - plain.losses.at(-1)!)).toBeGreaterThan(1e-3 * plain.losses[0]);
  });

  it('the build is chosen before the core loads, and only among the two', async () => {
    await init();
    expect(loadedWasmBuild()).toBe(selectedWasmBuild());
    const other = selectedWasmBuild() === 'simd128' ? 'relaxed-simd' : 'simd128';
    expect(() => useWasmBuild(other)).toThrow(/already loaded/);
    expect(() => useWasmBuild(selectedWasmBuild())).not.toThrow();
    expect(() => useWasmBuild('fast' as never)).toThrow(/unknown wasm build "fast"/);
    expect(loadedWasmBuild()).toBe(selectedWasmBuild());
  });

  it('a bad BERNOULLI_DIFFUSION_WASM is a user error: exit 2, one line', () => {
    const work = workDir('wasm-build');
    const result = cli(work, ['train', '--config', 'tiny.yaml', '--steps', '5', '--quiet', '--no-plots'], { BERNOULLI_DIFFUSION_WASM: 'fast' });
    expectOneLineError(result, 2, /BERNOULLI_DIFFUSION_WASM=fast: expected simd128, relaxed-simd or auto/);
  });
});
