/**
 * The package as a user gets it: the built .wasm uses SIMD128, the package resolves itself by name
 * through its `exports` (Node condition → dist/index.node.js), and the model API runs against the wasm
 * build, loaded once however often init is called.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DiffusionModel, init } from '../src/index.node.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const wasmPath = fileURLToPath(new URL('../pkg/bernoulli_diffusion_core_bg.wasm', import.meta.url));
const objdump = spawnSync('wasm-objdump', ['--version'], { encoding: 'utf8' });

describe('the wasm build', () => {
  it.skipIf(objdump.error !== undefined)('contains SIMD128 instructions (wasm-objdump)', () => {
    const disassembly = execFileSync('wasm-objdump', ['-d', wasmPath], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const simd = disassembly.match(/\b(f32x4|i32x4|v128)\.[a-z_]+/g) ?? [];
    expect(simd.length).toBeGreaterThan(50);
    // The register-blocked kernels multiply-add in f32x4 lanes.
    expect(simd.filter((op) => op === 'f32x4.mul' || op === 'f32x4.add').length).toBeGreaterThan(10);
  });

  it('validates as WebAssembly with SIMD', async () => {
    const bytes = readFileSync(wasmPath);
    expect(WebAssembly.validate(bytes)).toBe(true);
  });

  it('initialises once, however often init is called', async () => {
    await Promise.all([init(), init(), init()]);
    const model = await DiffusionModel.create(
      { length: 6, T: 10, schedule: 'paper', architecture: 'mlp', parameterisation: 'x0', hidden: 8, layers: 1, time_embedding: 4, kernel: 0 },
      {
        lr: 0.01,
        lr_schedule: 'constant',
        warmup_steps: 0,
        total_steps: 10,
        min_lr_ratio: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0,
        clip_norm: 1,
        ema_decay: 0,
        objective: 'sampled',
      },
      1,
    );
    await init();
    const report = model.trainStep(new Uint8Array([1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1]));
    expect(Number.isFinite(report.loss)).toBe(true);
    expect(model.step).toBe(1);
    model.free();
    expect(() => model.step).toThrow(/freed/);
  });
});

describe('the package', () => {
  it.skipIf(!existsSync(`${root}/dist/index.node.js`))(
    'imports itself by name from the repository root (exports, Node condition), without the CLI or the Node pool',
    () => {
      const script = `const m = await import('bernoulli-diffusion');
      const model = await m.DiffusionModel.create(m.coreModelConfig(m.DEFAULTS.model, 20), m.coreTrainingConfig(m.DEFAULTS.training, 3000), 0);
      const { samples } = model.sample(3, { seed: 1 });
      console.log(JSON.stringify({ n: samples.length, keys: ['DiffusionModel', 'init', 'runCli', 'createNodePool', 'config'].filter((k) => k in m) }));`;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
      expect(JSON.parse(out)).toEqual({ n: 60, keys: ['DiffusionModel', 'init'] });
    },
  );

  it.skipIf(!existsSync(`${root}/dist/index.node.js`))('works with require() (no top-level await in the core graph)', () => {
    const script = `const m = require('bernoulli-diffusion'); console.log(JSON.stringify([typeof m.DiffusionModel, typeof m.init]));`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual(['function', 'function']);
  });
});
