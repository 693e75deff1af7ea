// Cross-language: the wasm core (pkg/, RawModel) and the plain-TypeScript reference compute the
// same paper network, terms, gradients, training steps and samples for the same parameters and
// inputs. Skipped when pkg/ has not been built (scripts/test.sh builds it first).
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lossAndGradientGiven, ReferenceTrainer, type Parameterisation } from '../src/reference/objective.js';
import { initialisationRng, PaperNetwork, tensorsFromFlat } from '../src/reference/paper-network.js';
import { Rng } from '../src/reference/rng.js';
import { sample } from '../src/reference/sampler.js';
import { makeSchedule, type ScheduleKind } from '../src/reference/schedule.js';

const wasmPath = new URL('../pkg/bernoulli_diffusion_core_bg.wasm', import.meta.url);
const gluePath = new URL('../pkg/bernoulli_diffusion_core.js', import.meta.url);
const built = existsSync(wasmPath) && existsSync(gluePath);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function loadCore(): Promise<any> {
  const glue = await import(/* @vite-ignore */ gluePath.href);
  glue.initSync({ module: readFileSync(wasmPath) });
  return glue;
}

const L = 7;
const T = 8;
const H = 6;
const SEED = 5n;

describe.runIf(built).each([
  ['direct', 'paper'],
  ['x0', 'cosine'],
  ['x0', 'linear'],
] as [Parameterisation, ScheduleKind][])('wasm core vs reference (%s, %s schedule)', (parameterisation, scheduleKind) => {
  const modelConfig = { length: L, T, schedule: scheduleKind, architecture: 'paper', parameterisation, hidden: H, layers: 2, time_embedding: 32, kernel: 0, channels: 32, levels: 0, blocks: 1, padding: 'zero', position_embedding: null };
  const trainingConfig = {
    ...{ lr: 0.01, lr_schedule: 'constant', warmup_steps: 0, total_steps: 0, min_lr_ratio: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    ...{ weight_decay: 0.01, clip_norm: 1, ema_decay: 0, objective: 'full' },
  };
  const settings = { lr: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, clipNorm: 1 };
  const shape = { length: L, hidden: H, timesteps: T };

  async function rawModel() {
    const core = await loadCore();
    return new core.RawModel(JSON.stringify(modelConfig), JSON.stringify(trainingConfig), SEED);
  }

  /** The reference network holding the wasm model's current weights, loaded by layout name. */
  function referenceOf(raw: { layoutJson(): string; parameters(): Float32Array }): PaperNetwork {
    return PaperNetwork.fromTensors(shape, tensorsFromFlat(JSON.parse(raw.layoutJson()), raw.parameters()));
  }

  it('same layout and the same initial weights from the same seed', async () => {
    const raw = await rawModel();
    const fromSeed = new PaperNetwork(shape, initialisationRng(SEED));
    expect(JSON.parse(raw.layoutJson()).map((g: { name: string; shape: number[] }) => [g.name, g.shape])).toEqual(
      fromSeed.layout.map((g) => [g.name, g.shape]),
    );
    const wasm = raw.parameters() as Float32Array;
    let differing = 0;
    for (let i = 0; i < wasm.length; i++) {
      if (wasm[i] !== fromSeed.parameters[i]) differing++;
      // Math.log/Math.cos may differ from the crate's ln/cos in the last f64 bit: at most 1 f32 ulp
      expect(Math.abs(wasm[i] - fromSeed.parameters[i])).toBeLessThanOrEqual(1.2e-7 * Math.abs(wasm[i]));
    }
    expect(differing).toBeLessThanOrEqual(wasm.length / 1000);
    raw.free();
  });

  it('same terms and gradient for given (x0, x_t, t) rows', async () => {
    const raw = await rawModel();
    const reference = referenceOf(raw);
    const rng = new Rng(77);
    const rows = 10;
    const x0 = Uint8Array.from({ length: rows * L }, () => (rng.bernoulli(0.4) ? 1 : 0));
    const xt = Uint8Array.from({ length: rows * L }, () => (rng.bernoulli(0.5) ? 1 : 0));
    const t = Uint32Array.from({ length: rows }, (_, r) => 1 + ((3 * r) % T));
    const wasmRows = raw.lossAndGradientGiven(x0, xt, t) as Float64Array;
    const wasmGrad = raw.lastGradient() as Float32Array;
    const grad = new Float32Array(reference.parameters.length);
    const { rowLossBits } = lossAndGradientGiven(reference, parameterisation, makeSchedule(scheduleKind, T), x0, xt, t, grad);
    for (let r = 0; r < rows; r++) expect(Math.abs(wasmRows[r] - rowLossBits[r])).toBeLessThan(1e-6 * (1 + rowLossBits[r]));
    for (let i = 0; i < grad.length; i++) expect(Math.abs(wasmGrad[i] - grad[i]), `grad[${i}]`).toBeLessThan(1e-5 * (1 + Math.abs(grad[i])));
    raw.free();
  });

  it('same full-sum training steps (same noise draws) and the same samples', async () => {
    const raw = await rawModel();
    const reference = referenceOf(raw);
    const trainer = new ReferenceTrainer(reference, makeSchedule(scheduleKind, T), parameterisation, SEED, settings, 'full');
    const batch = Uint8Array.from({ length: 4 * L }, (_, i) => (i % 5 === 0 ? 1 : 0));
    for (let step = 0; step < 2; step++) {
      const [lossBits, gradNorm] = raw.trainStep(batch, 4) as Float64Array;
      const ours = trainer.trainStep(batch, 4);
      expect(Math.abs(lossBits - ours.lossBits)).toBeLessThan(1e-5 * lossBits);
      expect(Math.abs(gradNorm - ours.gradNorm)).toBeLessThan(1e-5 * gradNorm);
    }
    const wasm = raw.parameters() as Float32Array;
    for (let i = 0; i < wasm.length; i++) expect(Math.abs(wasm[i] - reference.parameters[i])).toBeLessThan(1e-5);
    // Sampling with the same weights draws the same bits (f compared at f32, same streams).
    const same = PaperNetwork.fromTensors(shape, tensorsFromFlat(JSON.parse(raw.layoutJson()), wasm));
    expect(Array.from(raw.sample(5, 3n, 0) as Uint8Array)).toEqual(Array.from(sample(same, parameterisation, makeSchedule(scheduleKind, T), 5, 3)));
    raw.free();
  });
});
