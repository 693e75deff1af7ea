// Config: defaults, YAML with line numbers, flag overrides, exclusive pairs, validation messages.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  configFromJson,
  configToYaml,
  DEFAULTS,
  flagsLayer,
  parseConfigYaml,
  resolveConfig,
  totalSteps,
  coreTrainingConfig,
  checkAgainstLength,
  type Layer,
} from '../src/config.js';
import { UserError } from '../src/errors.js';

const yamlLayer = (text: string) => parseConfigYaml(text, 'run.yaml', '/cfg');
const resolveYaml = (text: string) => resolveConfig([yamlLayer(text)], (base, p) => (p.startsWith('/') ? p : `${base}/${p}`)).config;

function errorOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a UserError');
}
const yamlError = (text: string) => errorOf(() => resolveYaml(text));

describe('config', () => {
  it('resolves to the defaults with no layers', () => {
    expect(resolveConfig([]).config).toEqual(DEFAULTS);
  });

  it('config.example.yaml states every key with its default value', () => {
    const text = readFileSync(new URL('../config.example.yaml', import.meta.url), 'utf8');
    const layer = parseConfigYaml(text, 'config.example.yaml');
    expect(resolveConfig([layer]).config).toEqual(DEFAULTS);
    // every key of every section appears in the file (set, or commented out for the exclusive ones)
    const keys = [...Object.keys(DEFAULTS.model), ...Object.keys(DEFAULTS.training), 'train', 'val', 'heartbeat', ...Object.keys(DEFAULTS.data.heartbeat!)];
    for (const key of keys) expect(text).toMatch(new RegExp(`^\\s*#?\\s*${key}:`, 'm'));
  });

  it('takes values from YAML, merging sections with the defaults', () => {
    const config = resolveYaml('model:\n  T: 100\n  architecture: circular\ntraining:\n  lr: 1e-3\n');
    expect(config.model).toEqual({ ...DEFAULTS.model, T: 100, architecture: 'circular' });
    expect(config.training.lr).toBe(0.001);
    expect(config.data).toEqual(DEFAULTS.data);
  });

  it('flags override the file; paths resolve against the file folder or the working directory', () => {
    const file = yamlLayer('training:\n  lr: 0.01\n  batch_size: 8\ndata:\n  train: t.txt\n  val: /abs/v.txt\n');
    const flags = flagsLayer({ lr: 0.5, T: 50, arch: 'paper', 'batch-size': undefined }, '/cwd');
    const resolved = resolveConfig([file, flags], (base, p) => (p.startsWith('/') ? p : `${base}/${p}`));
    expect(resolved.config.training.lr).toBe(0.5);
    expect(resolved.config.training.batch_size).toBe(8);
    expect(resolved.config.model.T).toBe(50);
    expect(resolved.config.model.architecture).toBe('paper');
    expect(resolved.config.data).toEqual({ train: '/cfg/t.txt', val: '/abs/v.txt' });
    expect(resolved.origin('training.lr')).toBe('--lr');
    expect(resolved.origin('training.batch_size')).toBe('run.yaml:3');
    const withDataFlag = resolveConfig([file, flagsLayer({ data: 'd.txt' }, '/cwd')], (base, p) => `${base}/${p}`);
    expect(withDataFlag.config.data.train).toBe('/cwd/d.txt');
  });

  it('steps and epochs exclude each other; so do data.train and data.heartbeat', () => {
    const epochs = resolveYaml('training:\n  epochs: 2.5\n');
    expect(epochs.training.epochs).toBe(2.5);
    expect(epochs.training.steps).toBeNull();
    expect(totalSteps(epochs.training, 1000)).toBe(Math.ceil((2.5 * 1000) / epochs.training.batch_size));
    const flagSteps = resolveConfig([yamlLayer('training:\n  epochs: 3\n'), flagsLayer({ steps: 7 })]).config.training;
    expect(flagSteps).toMatchObject({ steps: 7, epochs: null });
    expect(totalSteps(flagSteps, 100)).toBe(7);
    expect(yamlError('training:\n  steps: 5\n  epochs: 2\n')).toBe('run.yaml:3: give one of training.steps and training.epochs, not both');
    expect(errorOf(() => resolveConfig([flagsLayer({ steps: 5, epochs: 2 })]))).toBe(
      '--steps and --epochs: give one of training.steps and training.epochs, not both',
    );
    expect(resolveYaml('data:\n  train: a.txt\n').data).toEqual({ train: '/cfg/a.txt' });
    expect(resolveYaml('data:\n  heartbeat:\n    period: 4\n').data).toEqual({ heartbeat: { length: 20, period: 4, holdout: 0, count: 1000 } });
    expect(yamlError('data:\n  train: a.txt\n  heartbeat:\n    period: 4\n')).toBe('run.yaml:3: give one of data.train and data.heartbeat, not both');
    // a file's heartbeat is replaced by --data
    const overridden = resolveConfig([yamlLayer('data:\n  heartbeat:\n    period: 4\n'), flagsLayer({ data: 'x.txt' })]).config;
    expect(overridden.data).toEqual({ train: 'x.txt' });
  });

  it('names file, line, key and problem', () => {
    expect(yamlError('model:\n  T: 100\n  hiden: 3\n')).toBe('run.yaml:3: unknown key model.hiden (did you mean model.hidden?)');
    expect(yamlError('modle:\n  T: 1\n')).toBe('run.yaml:1: unknown key modle (did you mean model?)');
    expect(yamlError('training:\n  zzz: 1\n')).toMatch(/^run\.yaml:2: unknown key training\.zzz \(known keys: steps, epochs,/);
    expect(yamlError('model:\n  T: "2000"\n')).toBe('run.yaml:2: model.T: expected an integer, got the text "2000"');
    expect(yamlError('model:\n  T: 2.5\n')).toBe('run.yaml:2: model.T: expected an integer, got 2.5');
    expect(yamlError('model:\n  T: 0\n')).toBe('run.yaml:2: model.T: out of range: must be >= 1 and <= 100000, got 0');
    expect(yamlError('model:\n  T:\n')).toBe('run.yaml:2: model.T: expected an integer, got nothing (an empty value)');
    expect(yamlError('model:\n  T: [1, 2]\n')).toBe('run.yaml:2: model.T: expected an integer, got a list');
    expect(yamlError('model:\n  architecture: transformer\n')).toBe(
      'run.yaml:2: model.architecture: expected one of mlp, paper, circular, unet, got the text "transformer"',
    );
    expect(yamlError('model:\n  time_embedding: 7\n')).toBe('run.yaml:2: model.time_embedding: expected an even integer, got 7');
    expect(yamlError('training:\n  lr: 0\n')).toBe('run.yaml:2: training.lr: out of range: must be > 0 and <= 10, got 0');
    expect(yamlError('training:\n  lr: .inf\n')).toBe('run.yaml:2: training.lr: out of range: must be > 0 and <= 10, got Infinity');
    expect(yamlError('training:\n  ema_decay: 1\n')).toBe('run.yaml:2: training.ema_decay: out of range: must be >= 0 and < 1, got 1');
    expect(yamlError('training:\n  lr: yes\n')).toBe('run.yaml:2: training.lr: expected a number, got the text "yes"');
    expect(yamlError('model: 3\n')).toBe('run.yaml:1: model: expected a mapping of keys, got 3');
    expect(yamlError('- 1\n- 2\n')).toBe('run.yaml:1: the file: expected a mapping of keys, got a list');
    expect(yamlError('data:\n  heartbeat:\n    period: 30\n')).toBe(
      'run.yaml:3: data.heartbeat.period: out of range: the period (30) must not exceed the length (20)',
    );
    expect(yamlError('data:\n  heartbeat:\n    holdout: 5\n')).toBe(
      'run.yaml:3: data.heartbeat.holdout: out of range: must be less than the period (5), got 5',
    );
    expect(yamlError('training:\n  early_stopping: 3\n  eval_every: 0\n')).toBe(
      'run.yaml:2: training.early_stopping: early stopping needs evaluations: set training.eval_every > 0',
    );
    expect(yamlError('model:\n  architecture: unet\n  dropout: 1\n')).toBe('run.yaml:3: model.dropout: out of range: must be >= 0 and < 1, got 1');
    expect(yamlError('model:\n  dropout: 0.1\n')).toBe('run.yaml:2: model.dropout: dropout is implemented by the unet only (architecture is mlp); use 0');
    expect(resolveYaml('model:\n  architecture: unet\n  dropout: 0.1\n').model).toMatchObject({ architecture: 'unet', dropout: 0.1 });
    expect(yamlError('model:\n  architecture: unet\n  channels: 16\n  max_channels: 8\n')).toBe(
      'run.yaml:4: model.max_channels: max_channels (8) must be 0 (channels at every level) or at least model.channels (16)',
    );
    expect(yamlError('model:\n  max_channels: 2000\n')).toBe('run.yaml:2: model.max_channels: out of range: must be >= 0 and <= 1024, got 2000');
    expect(resolveYaml('model:\n  channels: 16\n  max_channels: 64\n').model).toMatchObject({ channels: 16, max_channels: 64 });
    // the default early stopping just has nothing to act on without evaluations
    expect(resolveYaml('training:\n  eval_every: 0\n').training).toMatchObject({ eval_every: 0, early_stopping: 0 });
  });

  it('reports YAML syntax errors and duplicate keys with their line', () => {
    expect(yamlError('model:\n  T: 1\n  T: 2\n')).toMatch(/^run\.yaml:3: YAML syntax error: Map keys must be unique/);
    expect(yamlError('model:\n  T: [1, 2\n')).toMatch(/^run\.yaml:\d: YAML syntax error: /);
    expect(yamlError('model:\n\tT: 1\n')).toMatch(/^run\.yaml:2: YAML syntax error: /);
  });

  it('accepts empty files and empty sections', () => {
    expect(resolveYaml('')).toEqual(DEFAULTS);
    expect(resolveYaml('# only a comment\n')).toEqual(DEFAULTS);
    expect(resolveYaml('model:\ntraining:\n')).toEqual(DEFAULTS);
  });

  it('reports a bad value in the file even when a flag overrides it', () => {
    expect(errorOf(() => resolveConfig([yamlLayer('model:\n  T: 0\n'), flagsLayer({ T: 8 })]))).toBe(
      'run.yaml:2: model.T: out of range: must be >= 1 and <= 100000, got 0',
    );
  });

  it('validates flags by flag name', () => {
    const flagError = (flags: Record<string, unknown>) => errorOf(() => resolveConfig([flagsLayer(flags)]));
    expect(flagError({ lr: -1 })).toBe('--lr: out of range: must be > 0 and <= 10, got -1');
    expect(flagError({ lr: Number.NaN })).toBe('--lr: expected a number, got something that is not a number');
    expect(flagError({ T: 1.5 })).toBe('--T: expected an integer, got 1.5');
    expect(flagError({ arch: 'cnn' })).toBe('--arch: expected one of mlp, paper, circular, unet, got the text "cnn"');
    expect(flagError({ hidden: 0 })).toBe('--hidden: out of range: must be >= 1 and <= 4096, got 0');
    expect(resolveConfig([flagsLayer({ hidden: 32, arch: 'circular' })]).config.model).toMatchObject({ hidden: 32, architecture: 'circular' });
    expect(flagError({ seed: -3 })).toBe('--seed: out of range: must be >= 0 and <= 4294967295, got -3');
    expect(flagsLayer({ lr: [0.1, 0.2] }).leaves.get('training.lr')!.value).toBe(0.2);
  });

  it('checks the kernel against the data length', () => {
    const resolved = resolveConfig([yamlLayer('model:\n  architecture: circular\n  kernel: 9\n')]);
    expect(() => checkAgainstLength(resolved, 9, 'd.txt')).not.toThrow();
    expect(errorOf(() => checkAgainstLength(resolved, 8, 'd.txt'))).toBe(
      'run.yaml:3: model.kernel: out of range: the kernel (9) must not exceed the sequence length (8)',
    );
    expect(errorOf(() => checkAgainstLength(resolveConfig([]), 5000, 'd.txt'))).toBe('d.txt: sequences of 5000 bits are longer than the 4096-bit limit');
  });

  it('writes a resolved config that loads back to the same config', () => {
    for (const layers of [[], [yamlLayer('training:\n  epochs: 4\ndata:\n  train: /x/t.txt\n  val: /x/v.txt\n')]] as Layer[][]) {
      const config = resolveConfig(layers).config;
      const text = configToYaml(config, ['resolved']);
      expect(text.startsWith('# resolved\n')).toBe(true);
      expect(resolveConfig([parseConfigYaml(text, 'config.yaml')]).config).toEqual(config);
      expect(configFromJson(JSON.stringify(config), 'ckpt')).toEqual(config);
    }
  });

  it('gives the core its training config', () => {
    const core = coreTrainingConfig(DEFAULTS.training, 123);
    expect(core).toEqual({
      lr: 0.002,
      lr_schedule: 'cosine',
      warmup_steps: 100,
      total_steps: 123,
      min_lr_ratio: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weight_decay: 0,
      clip_norm: 1,
      ema_decay: 0.995,
      objective: 'importance',
    });
  });
});
