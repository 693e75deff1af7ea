// Issue 16, "a diverged model is reported as perfect": divergence stops the run (exit 3, one
// line naming the step and the likely cause) with the last good checkpoint as the model; broken
// checkpoints (NaN/Inf tensors, negative moments, tampered importance state, a run config that
// describes another model) are refused at load with one line naming the file and the tensor/key.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../../src/checkpoint.js';
import { cli, editJson, expectOneLineError, filesUnder, QUICK, runMain, skipReason, tamper, temporariesUnder, workDir } from './helpers.js';

const DIVERGING_YAML =
  'model:\n  T: 10\n  hidden: 16\n  layers: 1\n  time_embedding: 8\n' +
  'training:\n  batch_size: 8\n  eval_samples: 16\n  eval_repeats: 1\n  eval_every: 0\n  checkpoint_every: 4\n  log_every: 2\n  early_stopping: 0\n' +
  '  lr: 10\n  weight_decay: 10\n  lr_schedule: constant\n  warmup_steps: 0\n  ema_decay: 0.5\n';

describe.skipIf(skipReason !== '')('divergence and broken checkpoints', () => {
  let work: string;
  let good: string;
  beforeAll(async () => {
    work = workDir('div');
    writeFileSync(join(work, 'diverging.yaml'), DIVERGING_YAML);
    // one good importance-sampling checkpoint (T = 10) to break in many ways
    const trained = await runMain(work, ['train', '--config', 'tiny.yaml', '--steps', '10', '--name', 'good', ...QUICK]);
    expect(trained.status, trained.stderr).toBe(0);
    good = join(work, 'results', 'good', 'model.safetensors');
  });

  it('lr 10 with weight decay 10: exit 3, one line with the step and the cause, the last good checkpoint kept', async () => {
    const result = cli(work, ['train', '--config', 'diverging.yaml', '--steps', '60', '--name', 'diverged', ...QUICK]);
    const line = expectOneLineError(
      result,
      3,
      /^error: training diverged at step \d+: .*; the learning rate \(training\.lr = 10\) or the weight decay \(training\.weight_decay = 10\) is likely too large; /,
    );
    const step = Number(/at step (\d+)/.exec(line)![1]);
    const runDir = join(work, 'results', 'diverged');
    expect(result.stdout).not.toMatch(/bound on .* data: 0\.0000/);
    expect(existsSync(join(runDir, 'results.json'))).toBe(false); // no summary of a run that did not finish
    const records = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    for (const record of records) {
      expect(Number.isFinite(record.loss), JSON.stringify(record)).toBe(true);
      expect(record.step).toBeLessThan(step);
    }
    const kept = Math.floor((step - 1) / 4) * 4; // the last checkpoint before the diverged step
    if (kept === 0) {
      expect(line).toMatch(/no checkpoint was written before it, so the run has no model$/);
      expect(existsSync(join(runDir, 'model.safetensors'))).toBe(false);
    } else {
      expect(line).toMatch(
        new RegExp(`results/diverged/model\\.safetensors is the last good model \\(results/diverged/checkpoints/step-${kept}\\.safetensors\\)$`),
      );
      expect(readFileSync(join(runDir, 'model.safetensors')).equals(readFileSync(join(runDir, 'checkpoints', `step-${kept}.safetensors`)))).toBe(true);
      // and it is a working model
      const evaluated = await runMain(work, ['evaluate', join(runDir, 'model.safetensors'), '--samples', '4', '--repeats', '1', '--json']);
      expect(evaluated.status, evaluated.stderr).toBe(0);
      expect(Number.isFinite(JSON.parse(evaluated.stdout).bound_bits)).toBe(true);
    }
    expect(filesUnder(join(runDir, 'checkpoints')).every((name) => Number(/step-(\d+)/.exec(name)?.[1] ?? 0) < step)).toBe(true);
    expect(temporariesUnder(runDir)).toEqual([]);
    expect(existsSync(join(runDir, '.lock'))).toBe(false);
  });

  it('with two workers the diverged step is caught the same way (the replicas agree on NaN)', async () => {
    const result = await runMain(work, ['train', '--config', 'diverging.yaml', '--steps', '60', '--name', 'diverged-pool', '--workers', '2', ...QUICK]);
    expectOneLineError(result, 3, /^error: training diverged at step \d+: .*is the last good model/);
  });

  it('checkpoints with NaN or infinite weights, EMA or optimiser moments are refused by every command', async () => {
    const names = [...decodeSafetensors(new Uint8Array(readFileSync(good)), good).tensors.keys()];
    const weight = names.find((n) => !n.includes('.') || n.startsWith('input.'))!;
    const cases: [string, string, number][] = [
      ['nan-weight.safetensors', weight, Number.NaN],
      ['inf-ema.safetensors', `ema.${weight}`, Number.POSITIVE_INFINITY],
      ['nan-moment.safetensors', `optimiser.m.${weight}`, Number.NaN],
      ['negative-moment.safetensors', `optimiser.v.${weight}`, -1],
    ];
    for (const [file, tensor, value] of cases) {
      expect(names, tensor).toContain(tensor);
      tamper(good, join(work, file), (tensors) => {
        tensors.get(tensor)![0] = value;
      });
    }
    for (const [file, tensor, value] of cases) {
      const why = value < 0 ? 'a negative second moment' : 'a non-finite value';
      const pattern = new RegExp(`^error: ${file.replace('.', '\\.')}: tensor '${tensor.replace(/\./g, '\\.')}' holds ${why}`);
      expectOneLineError(await runMain(work, ['evaluate', file, '--samples', '4', '--repeats', '1']), 2, pattern);
      if (file === 'nan-weight.safetensors') {
        expectOneLineError(await runMain(work, ['generate', file, '-n', '2']), 2, pattern);
        expectOneLineError(await runMain(work, ['train', '--resume', file, '--name', 'never', ...QUICK]), 2, pattern);
      }
    }
    expect(existsSync(join(work, 'results', 'never'))).toBe(false);
  });

  it('a tampered importance state fails at load as a user error naming the file (no "borrowed" crash)', async () => {
    tamper(good, join(work, 'importance-next.safetensors'), (_, metadata) => editJson(metadata, 'model_state', (state) => (state.importance.next[0] = 100000)));
    tamper(good, join(work, 'importance-short.safetensors'), (_, metadata) => editJson(metadata, 'model_state', (state) => state.importance.values.splice(5)));
    expectOneLineError(
      await runMain(work, ['train', '--resume', 'importance-next.safetensors', '--name', 'never', ...QUICK]),
      2,
      /^error: importance-next\.safetensors: .*importance state has a count or position of 100000/,
    );
    expectOneLineError(
      await runMain(work, ['evaluate', 'importance-short.safetensors']),
      2,
      /^error: importance-short\.safetensors: .*the importance state holds \d+ values, expected 2560/,
    );
    expect(existsSync(join(work, 'results', 'never'))).toBe(false);
  });

  it('a run config that describes another model (T = 100 for a T = 10 model) is refused', async () => {
    tamper(good, join(work, 'other-T.safetensors'), (_, metadata) => editJson(metadata, 'run_config', (config) => (config.model.T = 100)));
    tamper(good, join(work, 'best-later.safetensors'), (_, metadata) => editJson(metadata, 'loop_state', (state) => (state.bestStep = state.step + 5)));
    expectOneLineError(
      await runMain(work, ['train', '--resume', 'other-T.safetensors', '--name', 'never', ...QUICK]),
      2,
      /^error: other-T\.safetensors: the run configuration says model\.T = 100 but the model in the checkpoint has 10$/,
    );
    expectOneLineError(
      await runMain(work, ['evaluate', 'best-later.safetensors']),
      2,
      /^error: best-later\.safetensors: the loop state in the checkpoint metadata is malformed$/,
    );
    expect(existsSync(join(work, 'results', 'never'))).toBe(false);
  });
});
