// The run module (src/run/) and the boundary contracts: the configs TypeScript sends carry exactly
// the fields the Rust core reads (training defaults have one source, DEFAULTS), the checkpoint's
// contents are read in one place, and wasm errors map to user and internal errors.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../src/checkpoint.js';
import { coreModelConfig, coreTrainingConfig, DEFAULTS, resolveConfig, valuesLayer } from '../src/config.js';
import { fromWasmError, HOW_TO_REPORT, InternalError, UserError } from '../src/errors.js';
import {
  checkpointSummary,
  isWeightTensor,
  loopStateOf,
  META_LOOP_STATE,
  META_RUN_CONFIG,
  modelStateOf,
  runConfigOf,
  runMetadata,
  runMetadataOf,
  standInFor,
} from '../src/run/checkpoint.js';
import { loopSettings } from '../src/run/settings.js';

/** The serde field names of `pub struct NAME { … }` in a Rust source file (renames applied). */
function rustFields(file: string, struct: string): string[] {
  const source = readFileSync(new URL(`../crate/src/${file}`, import.meta.url), 'utf8');
  const start = source.indexOf(`pub struct ${struct} {`);
  expect(start, `${struct} in crate/src/${file}`).toBeGreaterThanOrEqual(0);
  const body = source.slice(start, source.indexOf('\n}', start));
  const fields: string[] = [];
  let rename: string | undefined;
  for (const line of body.split('\n').slice(1)) {
    const renamed = /#\[serde\(.*rename = "([^"]+)"/.exec(line);
    if (renamed) rename = renamed[1];
    const field = /^\s*pub (\w+):/.exec(line);
    if (field) {
      fields.push(rename ?? field[1]);
      rename = undefined;
    }
  }
  return fields.sort();
}

describe('the configs sent to the core', () => {
  it("send exactly the fields of Rust's TrainingConfig, min_lr_ratio from DEFAULTS", () => {
    const sent = JSON.parse(JSON.stringify(coreTrainingConfig(DEFAULTS.training, 1000)));
    expect(Object.keys(sent).sort()).toEqual(rustFields('optimiser.rs', 'TrainingConfig'));
    expect(sent.min_lr_ratio).toBe(0.1);
    expect(rustFields('optimiser.rs', 'TrainingConfig')).toContain('min_lr_ratio'); // the parser finds it
  });

  it("send exactly the fields of Rust's ModelConfig (time_embedding and kernel included)", () => {
    const sent = JSON.parse(JSON.stringify(coreModelConfig(DEFAULTS.model, 20)));
    const fields = rustFields('config.rs', 'ModelConfig');
    expect(fields).toContain('T'); // the serde rename of `timesteps`
    expect(Object.keys(sent).sort()).toEqual(fields);
  });

  it('take training.min_lr_ratio from the config, validated to [0, 1]', () => {
    const resolved = resolveConfig([valuesLayer({ 'training.min_lr_ratio': 0.25 }, () => 'test.yaml:3')]);
    expect(coreTrainingConfig(resolved.config.training, 10).min_lr_ratio).toBe(0.25);
    expect(() => resolveConfig([valuesLayer({ 'training.min_lr_ratio': 1.5 }, () => 'test.yaml:3')])).toThrow(
      'test.yaml:3: training.min_lr_ratio: out of range: must be >= 0 and <= 1, got 1.5',
    );
  });
});

describe('the loop settings of a run', () => {
  it('come from the run config', () => {
    const config = resolveConfig([valuesLayer({ 'training.eval_every': 7, 'training.checkpoint_every': 3, 'training.seed': 9 }, () => 'x')]).config;
    expect(loopSettings(config, 50, 20)).toEqual({
      totalSteps: 50,
      batchSize: DEFAULTS.training.batch_size,
      seed: 9,
      logEvery: DEFAULTS.training.log_every,
      evalEvery: 7,
      evalRepeats: DEFAULTS.training.eval_repeats,
      evalSequences: DEFAULTS.training.eval_sequences,
      evalSamples: DEFAULTS.training.eval_samples,
      evalStrata: 0,
      sampleSteps: undefined,
      gridSize: 16,
      checkpointEvery: 3,
      earlyStopping: DEFAULTS.training.early_stopping,
    });
  });

  it('sum over all t when a pass over t is cheap (T · L <= 65,536), else over 64 strata of t, unless eval_strata says', () => {
    const config = resolveConfig([valuesLayer({ 'model.T': 1000 }, () => 'x')]).config;
    expect(loopSettings(config, 50, 65).evalStrata).toBe(0);
    expect(loopSettings(config, 50, 66).evalStrata).toBe(64);
    expect(loopSettings(config, 50, 784).evalStrata).toBe(64);
    const given = resolveConfig([valuesLayer({ 'model.T': 1000, 'training.eval_strata': 40 }, () => 'x')]).config;
    expect(loopSettings(given, 50, 20).evalStrata).toBe(40);
    expect(loopSettings(given, 50, 784).evalStrata).toBe(40);
  });

  it('draw samples from every step when a pass over t is cheap, else from a 100-step chain (x0 models), unless sample_steps says', () => {
    const config = resolveConfig([valuesLayer({ 'model.T': 1000 }, () => 'x')]).config;
    expect(loopSettings(config, 50, 65).sampleSteps).toBeUndefined();
    expect(loopSettings(config, 50, 784).sampleSteps).toBe(100);
    const direct = resolveConfig([valuesLayer({ 'model.T': 1000, 'model.parameterisation': 'direct' }, () => 'x')]).config;
    expect(loopSettings(direct, 50, 784).sampleSteps).toBeUndefined(); // a direct model cannot jump
    const short = resolveConfig([valuesLayer({ 'model.T': 80 }, () => 'x')]).config;
    expect(loopSettings(short, 50, 1000).sampleSteps).toBeUndefined(); // T <= 100 already
    const given = resolveConfig([valuesLayer({ 'model.T': 1000, 'training.sample_steps': 250 }, () => 'x')]).config;
    expect(loopSettings(given, 50, 20).sampleSteps).toBe(250);
    const all = resolveConfig([valuesLayer({ 'model.T': 1000, 'training.sample_steps': 5000 }, () => 'x')]).config;
    expect(loopSettings(all, 50, 784).sampleSteps).toBeUndefined(); // >= T: every step
    expect(() => resolveConfig([valuesLayer({ 'training.sample_steps': 0 }, () => 'test.yaml:4')])).toThrow('test.yaml:4: training.sample_steps');
  });

  it('record an 8 x 8 sample grid for images (a 2-D shape from the data or the config), 16 sequences otherwise', () => {
    const plain = resolveConfig([valuesLayer({}, () => 'x')]).config;
    expect([loopSettings(plain, 5, 784, [28, 28]).gridSize, loopSettings(plain, 5, 20, [20]).gridSize, loopSettings(plain, 5, 20, null).gridSize]).toEqual([
      64, 16, 16,
    ]);
    const images = resolveConfig([valuesLayer({ 'model.shape': '4x6' }, () => 'x')]).config;
    expect(loopSettings(images, 5, 24).gridSize).toBe(64);
  });
});

describe('what a checkpoint holds', () => {
  const state = { model: coreModelConfig(DEFAULTS.model, 4), training: coreTrainingConfig(DEFAULTS.training, 10), step: 3 };
  const file = (metadata: Record<string, string>) =>
    encodeSafetensors(
      [
        { name: 'w', dtype: 'F32', shape: [2, 3], data: new Float32Array(6) },
        { name: 'optimiser.m.w', dtype: 'F32', shape: [2, 3], data: new Float32Array(6) },
        { name: 'optimiser.v.w', dtype: 'F32', shape: [2, 3], data: new Float32Array(6) },
        { name: 'ema.w', dtype: 'F32', shape: [2, 3], data: new Float32Array(6) },
        { name: 'b', dtype: 'F32', shape: [5], data: new Float32Array(5) },
      ],
      metadata,
    );

  it('summarises configs, step and weight count from the header (weights only)', () => {
    const summary = checkpointSummary(file({ format: 'bernoulli-diffusion', model_state: JSON.stringify(state) }), 'c.safetensors');
    expect(summary.parameterCount).toBe(11);
    expect(summary.step).toBe(3);
    expect(summary.model).toEqual(state.model);
    expect(summary.training).toEqual(state.training);
  });

  it('names the file when the model state is missing or corrupt', () => {
    expect(() => checkpointSummary(file({}), 'c.safetensors')).toThrow(
      "c.safetensors: not a bernoulli-diffusion checkpoint (its metadata has no 'model_state')",
    );
    expect(() => modelStateOf({ format: 'bernoulli-diffusion', model_state: '{' }, 'c')).toThrow("c: corrupt checkpoint metadata ('model_state' is not JSON)");
  });

  it('tells weights from optimiser moments and the EMA, and what stands in for a missing tensor', () => {
    expect(['w', 'layer.0.bias', 'optimiser.m.w', 'optimiser.v.w', 'ema.w'].map(isWeightTensor)).toEqual([true, true, false, false, false]);
    expect(standInFor('ema.layer.0.bias')).toBe('layer.0.bias');
    expect(standInFor('optimiser.m.w')).toBeUndefined();
  });

  it('round-trips the run metadata and keeps only its keys', () => {
    const config = DEFAULTS;
    const loop = { step: 3, bestStep: 2, bestBoundBits: 4.5, evalsSinceBest: 1, elapsedSeconds: 2.5 };
    const metadata = runMetadata(config, loop);
    expect(Object.keys(metadata)).toEqual([META_RUN_CONFIG, META_LOOP_STATE]);
    expect(runConfigOf(metadata, 'c')).toEqual(config);
    // the wall time stays out of checkpoints (same seed and steps: byte-identical files); it reads back as 0
    expect(loopStateOf(metadata, 'c')).toEqual({ ...loop, elapsedSeconds: 0 });
    expect(metadata[META_LOOP_STATE]).not.toContain('elapsed');
    expect(runMetadataOf({ ...metadata, format: 'x', other: 'y' })).toEqual(metadata);
    expect(Object.keys(runMetadata(config))).toEqual([META_RUN_CONFIG]);
    expect(loopStateOf({}, 'c')).toBeUndefined();
    expect(() => loopStateOf({ [META_LOOP_STATE]: '{"step": -1}' }, 'c.safetensors')).toThrow(
      'c.safetensors: the loop state in the checkpoint metadata is malformed',
    );
  });
});

describe('errors from the wasm core', () => {
  const named = (name: string, message: string) => Object.assign(new Error(message), { name });

  it('maps a thrown UserError to a UserError naming the operation', () => {
    const error = fromWasmError(named('UserError', 'kernel (9) must not exceed length (4)'), 'invalid model');
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toBe('invalid model: kernel (9) must not exceed length (4)');
    expect(error.exitCode).toBe(2);
  });

  it('maps an InternalError, a trap and anything else to an InternalError that says how to report it', () => {
    const cases: [unknown, string][] = [
      [named('InternalError', 'gradient buffer has 3 values, expected 4'), 'sampling: gradient buffer has 3 values, expected 4'],
      [new WebAssembly.RuntimeError('unreachable'), 'sampling: the WebAssembly core stopped (unreachable)'],
      [new Error('something else'), 'sampling: something else'],
      ['a thrown string', 'sampling: a thrown string'],
    ];
    for (const [thrown, detail] of cases) {
      const error = fromWasmError(thrown, 'sampling');
      expect(error).toBeInstanceOf(InternalError);
      expect((error as InternalError).detail).toBe(detail);
      expect(error.message).toBe(`${detail} (${HOW_TO_REPORT})`);
      expect(error.message).not.toContain('\n');
      expect(error.exitCode).toBe(70);
    }
  });

  it('passes our own errors through unchanged', () => {
    const user = new UserError('bad');
    const internal = new InternalError('broken');
    expect(fromWasmError(user, 'x')).toBe(user);
    expect(fromWasmError(internal, 'x')).toBe(internal);
  });
});
