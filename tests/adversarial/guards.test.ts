// Issue 16, in process: the guards themselves (divergence checks in the training loop, run
// names, flags repeated on --resume, run config against model, memory estimates, short writes,
// metrics records). The CLI cases are in the other files of this folder.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { coreModelConfig, DEFAULTS, resolveConfig, valuesLayer, type RunConfig } from '../../src/config.js';
import { checkEvaluationBound, checkStepReport, DivergenceError, likelyCause } from '../../src/divergence.js';
import { writeAll } from '../../src/node/io.js';
import { checkMetricsRecord } from '../../src/run/metrics-check.js';
import {
  checkMemory,
  checkResumeFlags,
  checkRunConfigAgainstModel,
  estimateMemory,
  maxWorkers,
  parameterCountOf,
  validateRunName,
  WASM32_MEMORY_LIMIT,
} from '../../src/run-guards.js';
import { runTraining, type TrainableModel } from '../../src/training.js';
import { UserError } from '../../src/errors.js';

const root = resolve(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'pkg', 'bernoulli_diffusion_core_bg.wasm'));

function config(overrides: Record<string, unknown> = {}): RunConfig {
  return resolveConfig([valuesLayer(overrides, () => 'test')]).config;
}

describe('divergence checks', () => {
  it('a non-finite loss, gradient norm or state stops at that step with exit code 3', () => {
    expect(() => checkStepReport(7, { loss: 1.5, gradNorm: 0.2, finite: true })).not.toThrow();
    expect(() => checkStepReport(7, { loss: 1.5, gradNorm: 0.2 })).not.toThrow(); // a step function that does not say
    const cases: [object, RegExp][] = [
      [{ loss: Number.NaN, gradNorm: 1 }, /^training diverged at step 7: the training loss is NaN; /],
      [{ loss: Number.POSITIVE_INFINITY, gradNorm: 1 }, /the training loss is infinite/],
      [{ loss: 1, gradNorm: Number.NaN }, /the gradient norm is NaN/],
      [{ loss: 1, gradNorm: 1, finite: false }, /the update left NaN or infinite weights/],
    ];
    for (const [report, message] of cases) {
      let error: unknown;
      try {
        checkStepReport(7, report as never);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DivergenceError);
      expect((error as DivergenceError).exitCode).toBe(3);
      expect((error as Error).message).toMatch(message);
    }
    expect(() => checkEvaluationBound(3, { bound_bits: Number.NaN })).toThrow(/step 3: the bound on the validation data is NaN/);
    expect(likelyCause({ lr: 10, weight_decay: 10, clip_norm: 1 })).toBe(
      'the learning rate (training.lr = 10) or the weight decay (training.weight_decay = 10) is likely too large',
    );
    expect(likelyCause({ lr: 3, weight_decay: 0, clip_norm: 0 })).toMatch(/training\.lr = 3\) is likely too large, with gradient clipping off/);
  });

  /** A model whose steps and bounds are scripted: step s reports losses[s-1], evaluation k bounds[k]. */
  function scripted(losses: number[], bounds: number[], finite: boolean[] = []): TrainableModel {
    let step = 0;
    let evaluations = 0;
    return {
      get step() {
        return step;
      },
      length: 2,
      trainStep: () => {
        step += 1;
        return { loss: losses[step - 1], gradNorm: 1, lr: 0.1, finite: finite[step - 1] ?? true };
      },
      sample: (n: number) => ({ samples: new Uint8Array(2 * n), frames: [] }),
      evaluate: () => {
        const bound = bounds[evaluations++];
        return { boundBits: bound, stderr: 0, sequenceStderr: 0, perSequence: new Float64Array([bound, bound]), repeats: 1 };
      },
    } as unknown as TrainableModel;
  }

  const data = { length: 2, rows: 2, bits: new Uint8Array([0, 1, 1, 0]) };
  const settings = {
    totalSteps: 10,
    batchSize: 2,
    seed: 1,
    logEvery: 1,
    evalEvery: 2,
    evalRepeats: 1,
    evalSequences: 0,
    evalSamples: 2,
    evalStrata: 0,
    gridSize: 2,
    checkpointEvery: 2,
    earlyStopping: 3,
  };
  const trainingData = { train: data, val: data, trainSet: new Set<string>(), valSet: new Set<string>() };

  it('runTraining stops at the diverged step: nothing after it is recorded, checkpointed or chosen as best', async () => {
    const records: number[] = [];
    const checkpoints: number[] = [];
    const bests: number[] = [];
    const run = runTraining({
      model: scripted([3, 2, 2, 1, Number.NaN, 1, 1, 1, 1, 1], [5, 4, 3, 2, 1]),
      data: trainingData,
      settings,
      now: () => 0,
      yieldToEventLoop: async () => {},
      hooks: { onRecord: (r) => void records.push(r.step), onCheckpoint: (_, s) => void checkpoints.push(s.step), onBest: (s) => void bests.push(s.step) },
    });
    await expect(run).rejects.toThrow(/^training diverged at step 5: the training loss is NaN/);
    expect(records).toEqual([1, 2, 3, 4]);
    expect(checkpoints).toEqual([2, 4]);
    expect(bests).toEqual([2, 4]);
  });

  it('a NaN bound is never the best: the run stops at that evaluation', async () => {
    const bests: number[] = [];
    const run = runTraining({
      model: scripted(Array(10).fill(1), [5, Number.NaN, 1]),
      data: trainingData,
      settings,
      now: () => 0,
      yieldToEventLoop: async () => {},
      hooks: { onBest: (s) => void bests.push(s.step) },
    });
    await expect(run).rejects.toThrow(/^training diverged at step 4: the bound on the validation data is NaN/);
    expect(bests).toEqual([2]);
  });

  it('a step that leaves non-finite weights (the core says) stops the run', async () => {
    const run = runTraining({
      model: scripted(Array(10).fill(1), [5, 4, 3, 2, 1], [true, true, false]),
      data: trainingData,
      settings,
      now: () => 0,
      yieldToEventLoop: async () => {},
    });
    await expect(run).rejects.toThrow(/^training diverged at step 3: the update left NaN or infinite weights/);
  });
});

describe('run names', () => {
  it('accepts plain names and refuses ., .., separators, control characters and empty ones', () => {
    for (const name of ['run1', 'my run', 'ünïcode', '.hidden', 'a..b']) expect(validateRunName(name)).toBe(name);
    for (const [name, why] of [
      ['', 'it is empty'],
      ['  ', 'it is empty'],
      ['.', 'not a new one'],
      ['..', 'not a new one'],
      ['a/b', 'path separator'],
      ['a\\b', 'path separator'],
      ['a\nb', 'control character'],
      ['a\u0000b', 'control character'],
      ['tab\there', 'control character'],
    ]) {
      expect(() => validateRunName(name), JSON.stringify(name)).toThrow(new RegExp(`^--name: expected a plain folder name, got .* \\(.*${why}.*\\)$`));
    }
  });
});

describe('--resume with repeated flags', () => {
  const stored = config({ 'model.T': 10, 'training.steps': 20, 'training.lr': 0.01 });
  const keys = { T: 'model.T', steps: 'training.steps', lr: 'training.lr', epochs: 'training.epochs', data: 'data.train' };
  const resumable = new Set(['data']);
  it('accepts the values already in the checkpoint and refuses different ones', () => {
    expect(() => checkResumeFlags({ T: 10, steps: 20, lr: 0.01, data: 'x.txt' }, keys, resumable, stored)).not.toThrow();
    expect(() => checkResumeFlags({ T: 50 }, keys, resumable, stored)).toThrow(/^--T cannot be changed when resuming: .*\(model\.T = 10, --T 50\)$/);
    expect(() => checkResumeFlags({ steps: 21 }, keys, resumable, stored)).toThrow(/--steps cannot be changed/);
    expect(() => checkResumeFlags({ epochs: 2 }, keys, resumable, stored)).toThrow(/training\.epochs = null, --epochs 2/);
  });
});

describe('run config against the model in a checkpoint', () => {
  const run = config({ 'model.T': 100, 'training.steps': 20 });
  const modelConfig = coreModelConfig(run.model, 20) as unknown as Record<string, unknown>; // the model as the core describes it
  const trainingConfig = { lr: run.training.lr, lr_schedule: run.training.lr_schedule, warmup_steps: 100, total_steps: 20, objective: run.training.objective };
  it('refuses a run config that describes another model', () => {
    expect(() =>
      checkRunConfigAgainstModel(
        run,
        { length: 20, modelConfig, trainingConfig: { ...trainingConfig, warmup_steps: run.training.warmup_steps } },
        'ck.safetensors',
      ),
    ).not.toThrow();
    expect(() => checkRunConfigAgainstModel(run, { length: 20, modelConfig: { ...modelConfig, T: 50 }, trainingConfig }, 'ck.safetensors')).toThrow(
      /^ck\.safetensors: the run configuration says model\.T = 100 but the model in the checkpoint has 50$/,
    );
    expect(() =>
      checkRunConfigAgainstModel(run, { length: 20, modelConfig, trainingConfig: { ...trainingConfig, warmup_steps: run.training.warmup_steps, lr: 9 } }, 'c'),
    ).toThrow(/training\.lr = 0\.002 but .* has 9/);
    expect(() =>
      checkRunConfigAgainstModel(
        run,
        { length: 20, modelConfig, trainingConfig: { ...trainingConfig, warmup_steps: run.training.warmup_steps, total_steps: 40 } },
        'c',
      ),
    ).toThrow(/training\.steps = 20 but .* has 40/);
    // an older state without a field is not a mismatch
    const { kernel: _, ...older } = modelConfig;
    expect(() =>
      checkRunConfigAgainstModel(run, { length: 20, modelConfig: older, trainingConfig: { ...trainingConfig, warmup_steps: run.training.warmup_steps } }, 'c'),
    ).not.toThrow();
  });
});

describe('memory before work starts', () => {
  it.skipIf(!built)('the parameter count of every architecture matches the core', async () => {
    const { DiffusionModel } = await import('../../src/model.js');
    const { coreModelConfig, coreTrainingConfig } = await import('../../src/config.js');
    // the architectures the config accepts, from its own error message (a new one must be added here)
    let architectures: string[] = [];
    try {
      config({ 'model.architecture': 'none-such' });
    } catch (error) {
      architectures = /expected one of ([\w, ]+?), got/.exec((error as Error).message)![1].split(', ');
    }
    expect(architectures.length).toBeGreaterThanOrEqual(3);
    for (const architecture of architectures) {
      for (const [length, extra] of [
        [20, { 'model.hidden': 12, 'model.layers': 2, 'model.T': 7, 'model.time_embedding': 6 }],
        [9, { 'model.hidden': 5, 'model.layers': 3, 'model.T': 4, 'model.kernel': 3 }],
      ] as const) {
        const c = config({ 'model.architecture': architecture, ...extra, 'training.steps': 10, 'training.warmup_steps': 1 });
        const model = await DiffusionModel.create(coreModelConfig(c.model, length), coreTrainingConfig(c.training, 10), 0);
        expect(parameterCountOf(c.model, length), `${architecture} L=${length}`).toBe(model.parameterCount);
        model.free();
      }
    }
  });

  it('refuses a model too big for a wasm worker, naming the key and the estimate', () => {
    const big = config({ 'model.hidden': 4096, 'model.layers': 6 }); // issue 16: 16 GB RSS, then "unreachable"
    const estimate = estimateMemory(big, 20, 1);
    expect(estimate.parameters).toBeGreaterThan(200e6);
    expect(estimate.perWorker).toBeGreaterThan(WASM32_MEMORY_LIMIT);
    expect(() => checkMemory(big, 20, 1, { requested: false })).toThrow(
      /^model\.hidden = 4096 \(with model\.layers = 6\): needs about \d+\.\d GB of memory per worker \(.*parameters × 7 copies.*\), over the 4\.0 GB a wasm worker can address; make it smaller$/,
    );
    // the defaults fit easily, and a time-embedding table or a batch can be the part that is too big
    expect(checkMemory(DEFAULTS, 20, 2, { requested: false, machineBytes: 8 * 1024 ** 3 })).toBe(2);
    expect(() =>
      checkMemory(config({ 'model.T': 100_000, 'model.time_embedding': 4096, 'model.hidden': 8 }), 20, 1, { requested: false, machineBytes: 1024 ** 3 }),
    ).toThrow(/^model\.T = 100000 with model\.time_embedding = 4096: needs about 1\.5 GB/);
    // (a step runs one of its 8 fixed shards at a time, so a batch's activations are an eighth of it)
    expect(() => checkMemory(config({ 'training.batch_size': 65536, 'model.hidden': 4096, 'model.layers': 8 }), 20, 1, { requested: false })).toThrow(
      /^(training\.batch_size = 65536|model\.hidden = 4096).*over the 4\.0 GB/,
    );
  });

  it('uses fewer workers than the cores when they would not fit, and refuses a requested number that does not', () => {
    const medium = config({ 'model.hidden': 1024, 'model.layers': 4 }); // ~8.4 M parameters: ~0.2 GB per worker
    const perWorker = estimateMemory(medium, 20, 3).perWorker;
    const machine = 3.5 * perWorker;
    expect(checkMemory(medium, 20, 8, { requested: false, machineBytes: machine })).toBeLessThan(4);
    expect(() => checkMemory(medium, 20, 8, { requested: true, machineBytes: machine })).toThrow(
      /^--workers 8: needs about .* \(8 workers × .*\), more than this machine's .*; use fewer --workers$/,
    );
  });

  it('caps --workers at 4 per core and 64 in all', () => {
    expect(maxWorkers(2)).toBe(8);
    expect(maxWorkers(1)).toBe(4);
    expect(maxWorkers(64)).toBe(64);
    expect(maxWorkers(0)).toBe(4);
  });
});

describe('short writes', () => {
  /** A file handle that writes at most `chunk` bytes per call, then nothing once `capacity` bytes are written. */
  function handle(chunk: number, capacity: number) {
    const file = new Uint8Array(capacity);
    let size = 0;
    const calls: number[] = [];
    return {
      file: () => file.subarray(0, size),
      calls,
      write: async (buffer: Uint8Array, offset: number, length: number, position: number) => {
        const n = Math.max(0, Math.min(chunk, length, capacity - position));
        file.set(buffer.subarray(offset, offset + n), position);
        size = Math.max(size, position + n);
        calls.push(n);
        return { bytesWritten: n, buffer };
      },
    };
  }
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 256);

  it('writeAll loops until every byte is written, in place', async () => {
    const h = handle(97, 4096);
    await writeAll(h as never, bytes, 0, bytes.length);
    expect(Buffer.from(h.file()).equals(Buffer.from(bytes))).toBe(true);
    expect(h.calls.length).toBe(Math.ceil(1000 / 97));
  });

  it('a write that makes no progress is a full disk (ENOSPC), not a silent truncation', async () => {
    const h = handle(300, 741);
    await expect(writeAll(h as never, bytes, 0, bytes.length)).rejects.toMatchObject({ code: 'ENOSPC' });
  });
});

describe('metrics records for the pictures', () => {
  it('refuses fields of the wrong type with file:line', () => {
    expect(() => checkMetricsRecord({ step: 5, loss: 1, grid: ['0101', '1100'], bound_bits: 2, prop_train: null }, 'm:1')).not.toThrow();
    expect(() => checkMetricsRecord({ step: 5, loss: 1, grid: 'abc' }, 'm:3')).toThrow(/^m:3: "grid" must be a list of 0\/1 strings$/);
    expect(() => checkMetricsRecord({ step: 5, loss: 1, grid: ['01', '011'] }, 'm:3')).toThrow(/differ in length/);
    expect(() => checkMetricsRecord({ step: 5, loss: 1, bound_bits: 'x' }, 'm:4')).toThrow(/^m:4: "bound_bits" must be a number, got "x"$/);
    expect(() => checkMetricsRecord({ step: 2.5, loss: 1 }, 'm:1')).toThrow(/"step" must be a whole number/);
  });

  it('every guard error is a UserError (one line, no stack trace at the CLI)', () => {
    for (const thrower of [
      () => validateRunName('..'),
      () => checkMetricsRecord({ step: -1 }, 'm:1'),
      () => checkStepReport(1, { loss: Number.NaN, gradNorm: 1 }),
    ]) {
      try {
        thrower();
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(UserError);
        expect((error as Error).message).not.toContain('\n');
      }
    }
  });
});

describe('the U-Net in the memory guard and the checkpoint check', () => {
  it.skipIf(!built)(
    'its parameter count matches the core for 1-D and 2-D shapes, padding, levels, blocks, growing channels and the position embedding',
    async () => {
      const { DiffusionModel } = await import('../../src/model.js');
      const { coreModelConfig, coreTrainingConfig } = await import('../../src/config.js');
      const cases: [number, number[] | undefined, Record<string, unknown>][] = [
        [784, [28, 28], {}],
        [24, [4, 6], { 'model.channels': 5, 'model.blocks': 2, 'model.levels': 2 }],
        [21, [7, 3], { 'model.channels': 4, 'model.padding': 'circular', 'model.position_embedding': 'on' }],
        [30, [1, 30], { 'model.channels': 3, 'model.position_embedding': 'off', 'model.levels': 1 }],
        [64, undefined, { 'model.channels': 6, 'model.blocks': 3, 'model.padding': 'circular' }],
        // channels growing with depth: 3, 6, 10, 10, 10 (1-D) and 4, 8, 16, 16 (2-D)
        [64, undefined, { 'model.channels': 3, 'model.max_channels': 10, 'model.blocks': 2 }],
        [784, [28, 28], { 'model.channels': 4, 'model.max_channels': 16 }],
        [20, undefined, { 'model.channels': 2, 'model.max_channels': 8, 'model.padding': 'circular' }],
      ];
      for (const [length, shape, extra] of cases) {
        const c = config({ 'model.architecture': 'unet', 'model.T': 5, ...extra, 'training.steps': 10, 'training.warmup_steps': 1 });
        const model = await DiffusionModel.create(coreModelConfig(c.model, length, shape), coreTrainingConfig(c.training, 10), 0);
        expect(parameterCountOf(c.model, length, shape), `${JSON.stringify(shape)} ${JSON.stringify(extra)}`).toBe(model.parameterCount);
        model.free();
      }
    },
  );

  it('a run config with shape null (from the data) and position_embedding auto matches the core form of the model', () => {
    const run = config({ 'model.architecture': 'unet', 'training.steps': 20 });
    const modelConfig = { ...run.model, length: 24, position_embedding: null, shape: [4, 6] };
    expect(() => checkRunConfigAgainstModel(run, { length: 24, modelConfig, trainingConfig: {} }, 'ck')).not.toThrow();
    const fixed = config({ 'model.architecture': 'unet', 'model.shape': '6x4', 'training.steps': 20 });
    expect(() => checkRunConfigAgainstModel(fixed, { length: 24, modelConfig, trainingConfig: {} }, 'ck')).toThrow(
      /^ck: the run configuration says model\.shape = \[6,4\] but the model in the checkpoint has \[4,6\]$/,
    );
  });
});

describe('the U-Net memory estimate', () => {
  it.skipIf(!built)('is above what the core allocates for a training step, and within 2x of it', async () => {
    const { DiffusionModel } = await import('../../src/model.js');
    const { wasmMemory } = await import('../../pkg/bernoulli_diffusion_core.js');
    const { coreModelConfig, coreTrainingConfig } = await import('../../src/config.js');
    const { estimateMemory } = await import('../../src/run-guards.js');
    // a model big enough that its activations dominate the wasm memory it starts with
    const c = config({
      'model.architecture': 'unet',
      'model.T': 10,
      'model.channels': 16,
      'training.batch_size': 256,
      'training.eval_samples': 16,
      'training.steps': 10,
      'training.warmup_steps': 1,
    });
    const [length, shape] = [400, [20, 20]];
    const model = await DiffusionModel.create(coreModelConfig(c.model, length, shape), coreTrainingConfig(c.training, 10), 0);
    const before = (wasmMemory() as WebAssembly.Memory).buffer.byteLength;
    model.trainStep(new Uint8Array(256 * length).map((_, i) => ((i * 7919) % 3 === 0 ? 1 : 0)));
    const after = (wasmMemory() as WebAssembly.Memory).buffer.byteLength;
    model.free();
    const estimate = estimateMemory(c, length, 1, shape).perWorker;
    expect(after - before).toBeGreaterThan(10 * 2 ** 20); // the step did allocate its activations here
    expect(estimate).toBeGreaterThan(after - before);
    expect(estimate).toBeLessThan(2 * after);
  });
});
