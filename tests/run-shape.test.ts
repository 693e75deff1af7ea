// The row shape of a run (issue 12): model.shape from a config key or --shape, else the training
// data's `# shape:` header, else [L]; checked against the data (one-line errors naming where the
// shape came from, or the file) and sent to the core, so the checkpoint records it.
import { describe, expect, it } from 'vitest';
import { configToYaml, coreModelConfig, DEFAULTS, flagsLayer, parseConfigYaml, resolveConfig, runShape, type ResolvedConfig } from '../src/config.js';
import { UserError } from '../src/errors.js';

const yaml = (text: string) => resolveConfig([parseConfigYaml(text, 'run.yaml')]);

function messageOf(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('model.shape', () => {
  it('defaults to null (from the data) and reads "HxW", L and [H, W]', () => {
    expect(DEFAULTS.model.shape).toBeNull();
    expect(resolveConfig([]).config.model.shape).toBeNull();
    expect(yaml('model:\n  shape: 28x28\n').config.model.shape).toEqual([28, 28]);
    expect(yaml('model:\n  shape: 784\n').config.model.shape).toEqual([784]);
    expect(yaml('model:\n  shape: [7, 4]\n').config.model.shape).toEqual([7, 4]);
    expect(yaml('model:\n  shape:\n    - 2\n    - 3\n').config.model.shape).toEqual([2, 3]);
    expect(resolveConfig([flagsLayer({ shape: '4x6' })]).config.model.shape).toEqual([4, 6]);
  });

  it('rejects malformed shapes, naming the line or the flag', () => {
    expect(messageOf(() => yaml('model:\n  shape: 28x\n'))).toMatch(/^run\.yaml:2: model\.shape: expected a shape such as "28x28"/);
    expect(messageOf(() => yaml('model:\n  shape: [2, 3, 4]\n'))).toMatch(/^run\.yaml:2: model\.shape: expected a shape/);
    expect(messageOf(() => yaml('model:\n  shape: [0, 3]\n'))).toMatch(/^run\.yaml:2: model\.shape/);
    expect(messageOf(() => resolveConfig([flagsLayer({ shape: 'big' })]))).toMatch(/^--shape: expected a shape/);
  });

  it('is written back to config.yaml as "HxW" and read again', () => {
    const config = yaml('model:\n  shape: [28, 28]\n').config;
    const text = configToYaml(config);
    expect(text).toMatch(/^ {2}shape: 28x28$/m);
    expect(resolveConfig([parseConfigYaml(text, 'config.yaml')]).config.model.shape).toEqual([28, 28]);
    expect(configToYaml(DEFAULTS)).toMatch(/^ {2}shape: null$/m);
  });
});

describe('the shape of a run', () => {
  const resolved = (text = ''): ResolvedConfig => yaml(text);

  it('comes from the training data header; 1-D data stays [L]', () => {
    expect(runShape(resolved(), { length: 24, shape: [4, 6], source: 'img.txt' })).toEqual([4, 6]);
    expect(runShape(resolved(), { length: 20, shape: [20], source: 'seq.txt' })).toEqual([20]);
    expect(runShape(resolved(), { length: 20, source: 'heartbeat' })).toEqual([20]);
  });

  it('model.shape overrides the header; a product other than L is an error naming the key and the file', () => {
    expect(runShape(resolved('model:\n  shape: 6x4\n'), { length: 24, shape: [4, 6], source: 'img.txt' })).toEqual([6, 4]);
    expect(runShape(resolved('model:\n  shape: 24\n'), { length: 24, shape: [4, 6], source: 'img.txt' })).toEqual([24]);
    expect(messageOf(() => runShape(resolved('model:\n  shape: 5x5\n'), { length: 24, shape: [24], source: 'seq.txt' }))).toBe(
      'run.yaml:2: model.shape: the shape 5x5 has 25 positions but the rows of seq.txt have 24 bits',
    );
    const flag = resolveConfig([flagsLayer({ shape: '5x5' })]);
    expect(messageOf(() => runShape(flag, { length: 24, source: 'seq.txt' }))).toBe(
      '--shape: the shape 5x5 has 25 positions but the rows of seq.txt have 24 bits',
    );
  });

  it('a validation file whose 2-D header differs is an error naming it; a plain one takes the run shape', () => {
    const train = { length: 24, shape: [4, 6], source: 'img.txt' };
    expect(messageOf(() => runShape(resolved(), train, { shape: [6, 4], source: 'val.txt' }))).toBe(
      "val.txt: its shape header says 6x4 but the run's shape is 4x6 (from img.txt)",
    );
    expect(runShape(resolved(), train, { shape: [24], source: 'val.txt' })).toEqual([4, 6]);
    expect(runShape(resolved(), train, { shape: [4, 6], source: 'val.txt' })).toEqual([4, 6]);
  });

  it('is sent to the core: model.shape, else the data shape, else [L]', () => {
    expect(coreModelConfig(DEFAULTS.model, 24, [4, 6]).shape).toEqual([4, 6]);
    expect(coreModelConfig(DEFAULTS.model, 20).shape).toEqual([20]);
    expect(coreModelConfig({ ...DEFAULTS.model, shape: [6, 4] }, 24, [4, 6]).shape).toEqual([6, 4]);
  });
});
