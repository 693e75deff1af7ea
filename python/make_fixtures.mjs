// Fixtures for python/test_reference.py, from the built package (dist/ and pkg/; build them with
// scripts/setup.sh): for each case, a model of that architecture trained a few steps, its export file
// and training checkpoint, and the wasm core's reverse-kernel probabilities f(x_t, t) for a batch.
//
//   node python/make_fixtures.mjs OUT_DIR
//
// writes OUT_DIR/<case>.export.safetensors, OUT_DIR/<case>.checkpoint.safetensors and
// OUT_DIR/<case>.json = { name, rows, length, T, xt: [rows·L bits], t: [rows], f: [rows·L] }.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../dist/node/wasm-file.js'; // Node reads the wasm from pkg/
import { coreTrainingConfig, DEFAULTS } from '../dist/config.js';
import { exportBytes } from '../dist/export.js';
import { DiffusionModel } from '../dist/model.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: node python/make_fixtures.mjs OUT_DIR');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

// Every architecture and parameterisation, every schedule, full and short circular kernels (odd
// and even), with and without an EMA; the U-Net 1-D (odd length, zero and circular padding) and 2-D
// (odd side; zero and circular; channels growing with depth).
const CASES = [
  { name: 'paper-direct', length: 8, T: 10, architecture: 'paper', parameterisation: 'direct', schedule: 'paper', hidden: 16, layers: 2 },
  { name: 'paper-x0-linear', length: 9, T: 12, architecture: 'paper', parameterisation: 'x0', schedule: 'linear', hidden: 12, layers: 1 },
  { name: 'mlp-x0', length: 10, T: 20, architecture: 'mlp', parameterisation: 'x0', schedule: 'paper', hidden: 16, layers: 2 },
  { name: 'mlp-direct-cosine', length: 6, T: 15, architecture: 'mlp', parameterisation: 'direct', schedule: 'cosine', hidden: 8, layers: 1 },
  { name: 'mlp-x0-no-ema', length: 7, T: 9, architecture: 'mlp', parameterisation: 'x0', schedule: 'linear', hidden: 8, layers: 2, ema: 0 },
  { name: 'circular-x0-cosine', length: 7, T: 16, architecture: 'circular', parameterisation: 'x0', schedule: 'cosine', hidden: 8, layers: 2, kernel: 0 },
  { name: 'circular-direct-k4', length: 8, T: 10, architecture: 'circular', parameterisation: 'direct', schedule: 'linear', hidden: 6, layers: 2, kernel: 4 },
  { name: 'circular-x0-k3', length: 9, T: 11, architecture: 'circular', parameterisation: 'x0', schedule: 'paper', hidden: 5, layers: 1, kernel: 3 },
  // 13 -> 7 -> 4: three levels, odd sides at two of them; two blocks per level
  {
    name: 'unet-1d-zero',
    length: 13,
    T: 12,
    architecture: 'unet',
    parameterisation: 'x0',
    schedule: 'cosine',
    channels: 6,
    levels: 0,
    blocks: 2,
    padding: 'zero',
  },
  // dilations 1, 2, 4 on 12 positions; the position embedding on
  {
    name: 'unet-1d-circular',
    length: 12,
    T: 10,
    architecture: 'unet',
    parameterisation: 'direct',
    schedule: 'linear',
    channels: 5,
    levels: 3,
    blocks: 1,
    padding: 'circular',
    position_embedding: true,
  },
  // 6x5 -> 3x3
  {
    name: 'unet-2d-zero',
    length: 30,
    T: 9,
    architecture: 'unet',
    parameterisation: 'x0',
    schedule: 'paper',
    shape: [6, 5],
    channels: 4,
    levels: 0,
    blocks: 1,
    padding: 'zero',
  },
  // channels growing with depth (max_channels): 2, 4, 6 on 9x7 -> 5x4 -> 3x2
  {
    name: 'unet-2d-zero-growing',
    length: 63,
    T: 10,
    architecture: 'unet',
    parameterisation: 'x0',
    schedule: 'paper',
    shape: [9, 7],
    channels: 2,
    max_channels: 6,
    levels: 3,
    blocks: 1,
    padding: 'zero',
  },
  {
    name: 'unet-2d-circular-no-ema',
    length: 30,
    T: 8,
    architecture: 'unet',
    parameterisation: 'x0',
    schedule: 'cosine',
    shape: [6, 5],
    channels: 4,
    levels: 2,
    blocks: 1,
    padding: 'circular',
    ema: 0,
  },
];
const STEPS = 30;
const BATCH = 16;
const ROWS = 48;

/** A small deterministic generator (xorshift32) for the data and the x_t batch. */
function generator(seed) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
}

for (const [index, spec] of CASES.entries()) {
  const { name, ema = 0.9, kernel = 0, ...rest } = spec;
  // the core takes every key (no defaults of its own)
  const modelConfig = {
    hidden: 8,
    layers: 1,
    channels: 4,
    max_channels: 0,
    levels: 0,
    blocks: 1,
    padding: 'zero',
    position_embedding: null,
    ...rest,
    kernel,
    time_embedding: 8,
  };
  const training = { ...coreTrainingConfig(DEFAULTS.training, STEPS), lr: 1e-2, warmup_steps: 2, ema_decay: ema, objective: 'sampled' };
  const model = await DiffusionModel.create(modelConfig, training, 100 + index);
  const random = generator(7 + index);
  const L = modelConfig.length;
  // heartbeat-like data: a 1 every 3 bits at a random phase
  for (let step = 0; step < STEPS; step++) {
    const batch = new Uint8Array(BATCH * L);
    for (let r = 0; r < BATCH; r++) {
      const phase = Math.floor(random() * 3);
      for (let i = 0; i < L; i++) batch[r * L + i] = i % 3 === phase ? 1 : 0;
    }
    model.trainStep(batch);
  }
  const xt = new Uint8Array(ROWS * L).map(() => (random() < 0.5 ? 1 : 0));
  // every t from 1 to T (t = 1 and t = T included), then random ones
  const t = Uint32Array.from({ length: ROWS }, (_, r) => (r < modelConfig.T ? r + 1 : 1 + Math.floor(random() * modelConfig.T)));
  const f = model.reverseProbabilities(xt, t);
  writeFileSync(join(out, `${name}.export.safetensors`), exportBytes(model));
  writeFileSync(join(out, `${name}.checkpoint.safetensors`), model.toBytes());
  writeFileSync(join(out, `${name}.json`), JSON.stringify({ name, rows: ROWS, length: L, T: modelConfig.T, ema: ema > 0, xt: [...xt], t: [...t], f: [...f] }));
  model.free();
}
console.log(`wrote ${CASES.length} cases to ${out}`);
