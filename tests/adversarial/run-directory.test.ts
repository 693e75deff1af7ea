// Issue 16, "runs collide" and "writes whole or absent": run directories are claimed by one train
// at a time, names are validated, killed writes leave only temporaries that the next train on
// the directory removes, a hint names only files that exist, a stale best.safetensors is never
// reused, and --out on a file system that refuses folders fails at once.
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../../src/checkpoint.js';
import { cli, expectOneLineError, filesUnder, QUICK, runMain, skipReason, startCli, temporariesUnder, workDir } from './helpers.js';

function sameTensors(a: string, b: string): boolean {
  const first = decodeSafetensors(new Uint8Array(readFileSync(a)), a).tensors;
  const second = decodeSafetensors(new Uint8Array(readFileSync(b)), b).tensors;
  return [...first].every(([name, t]) =>
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(
      Buffer.from(second.get(name)!.data.buffer, second.get(name)!.data.byteOffset, second.get(name)!.data.byteLength),
    ),
  );
}

describe.skipIf(skipReason !== '')('run directories', () => {
  let work: string;
  beforeAll(() => {
    work = workDir('dir');
  });

  it('bad --name values are refused with one line, creating nothing', async () => {
    for (const name of ['..', '.', 'a/b', 'line\nbreak', '']) {
      expectOneLineError(
        await runMain(work, ['train', '--config', 'tiny.yaml', '--out', 'names', '--name', name, '--steps', '5', ...QUICK]),
        2,
        /^error: --name: expected a plain folder name, got /,
      );
    }
    expect(existsSync(join(work, 'names'))).toBe(false);
  });

  it('a second train on the same run directory fails with one line; a kill before the first checkpoint leaves a hint naming only what exists', async () => {
    // the first run holds the directory, paused in its first write (config.yaml): the second one
    // got past every check a run makes before it writes, as two runs started together do
    const first = startCli(work, ['train', '--config', 'tiny.yaml', '--steps', '20', '--name', 'same', ...QUICK], {
      BERNOULLI_DIFFUSION_TEST_PAUSE_WRITE: 'results/same/',
    });
    await first.waitFor('config.yaml after');
    const runDir = join(work, 'results', 'same');
    const before = filesUnder(runDir);
    expect(before).toContain('.lock');
    expectOneLineError(
      cli(work, ['train', '--config', 'tiny.yaml', '--steps', '20', '--name', 'same', ...QUICK]),
      2,
      /^error: results\/same is in use by another train \(process \d+\); wait for it, or choose another --name/,
    );
    expect(filesUnder(runDir)).toEqual(before);
    // let it write config.yaml, then kill it in its first metrics write (before any checkpoint)
    first.child.kill('SIGUSR2');
    await first.waitFor('metrics.jsonl after');
    first.child.kill('SIGKILL');
    await first.exit;
    expect(temporariesUnder(runDir)).toHaveLength(1); // the metrics write it was killed in
    // the killed run wrote config.yaml but no checkpoint: the hint must not name a step-<n> file
    const again = expectOneLineError(
      await runMain(work, ['train', '--config', 'tiny.yaml', '--steps', '20', '--name', 'same', ...QUICK]),
      2,
      /^error: results\/same already holds a run: /,
    );
    expect(again).toMatch(/remove results\/same: it has no checkpoint to resume from/);
    expect(again).not.toMatch(/step-/);
  });

  it('a kill -9 mid-write leaves the previous checkpoint and a temporary; --resume removes the temporary and finishes bit-identically', async () => {
    const full = await runMain(work, ['train', '--config', 'tiny.yaml', '--steps', '30', '--name', 'full', '--seed', '3', ...QUICK]);
    expect(full.status, full.stderr).toBe(0);
    const killed = startCli(work, ['train', '--config', 'tiny.yaml', '--steps', '30', '--name', 'killed', '--seed', '3', ...QUICK], {
      BERNOULLI_DIFFUSION_TEST_PAUSE_WRITE: 'step-20.safetensors',
    });
    await killed.waitFor('paused writing');
    killed.child.kill('SIGKILL');
    await killed.exit;
    const runDir = join(work, 'results', 'killed');
    expect(filesUnder(join(runDir, 'checkpoints')).filter((n) => !n.startsWith('.'))).toEqual(['step-10.safetensors']);
    expect(temporariesUnder(runDir)).toEqual([expect.stringMatching(/^checkpoints\/\.step-20\.safetensors\.\d+\.[0-9a-f]{8}\.tmp$/)]);
    // the hint names the checkpoint that exists
    expectOneLineError(
      await runMain(work, ['train', '--config', 'tiny.yaml', '--name', 'killed', ...QUICK]),
      2,
      /continue it with --resume results\/killed\/checkpoints\/step-10\.safetensors$/,
    );
    // the same command line plus --resume, repeating --steps and --seed with the checkpoint's values, is accepted
    const resumed = await runMain(work, ['train', '--resume', join(runDir, 'checkpoints', 'step-10.safetensors'), '--steps', '30', '--seed', '3', ...QUICK]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/removed 1 unfinished file of an earlier, killed write/);
    expect(temporariesUnder(runDir)).toEqual([]);
    expect(existsSync(join(runDir, '.lock'))).toBe(false);
    expect(sameTensors(join(work, 'results', 'full', 'model.safetensors'), join(runDir, 'model.safetensors'))).toBe(true);
    // a different value is still an error
    expectOneLineError(
      await runMain(work, ['train', '--resume', join(runDir, 'checkpoints', 'step-10.safetensors'), '--steps', '31', ...QUICK]),
      2,
      /^error: --steps cannot be changed when resuming: .*\(training\.steps = 30, --steps 31\)$/,
    );
  });

  it('resuming an older checkpoint in place never reuses a best.safetensors from a later step', async () => {
    writeFileSync(
      join(work, 'early.yaml'),
      'model:\n  T: 10\n  hidden: 16\n  layers: 1\n  time_embedding: 8\ntraining:\n  batch_size: 8\n  eval_samples: 8\n  eval_repeats: 1\n  eval_every: 5\n  checkpoint_every: 5\n  log_every: 5\n  warmup_steps: 2\n  early_stopping: 50\n  lr: 0.01\n',
    );
    const trained = await runMain(work, ['train', '--config', 'early.yaml', '--steps', '30', '--name', 'early', ...QUICK]);
    expect(trained.status, trained.stderr).toBe(0);
    const runDir = join(work, 'results', 'early');
    const bestStep = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')).best.step as number;
    expect(bestStep).toBeGreaterThan(5);
    const reference = join(work, 'early-model.safetensors');
    copyFileSync(join(runDir, 'model.safetensors'), reference);
    // resume from step 5: its best is step 5, best.safetensors is from the later bestStep
    const resumed = await runMain(work, ['train', '--resume', join(runDir, 'checkpoints', 'step-5.safetensors'), ...QUICK]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/warning: not using results\/early\/checkpoints\/best\.safetensors: it is not the model of the run's best step 5/);
    // the resumed run repeats the same steps and finds the same best: the same model
    expect(JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')).best.step).toBe(bestStep);
    expect(sameTensors(reference, join(runDir, 'model.safetensors'))).toBe(true);
  });

  it('--out where no folder can be made fails at once with one line (no endless mkdir)', () => {
    if (!existsSync('/proc/self')) return; // no procfs here: nothing to test
    const result = cli(work, ['train', '--config', 'tiny.yaml', '--out', '/proc/bd-adversarial', '--steps', '5', ...QUICK], {}, 30_000);
    expect(result.status, 'timed out: the mkdir loops').not.toBeNull();
    expectOneLineError(result, 2, /^error: cannot create the run directory \/proc\/bd-adversarial\/[\w-]+: permission denied$/);
  });

  it('--workers far above the cores is refused before anything starts', async () => {
    expectOneLineError(
      await runMain(work, ['train', '--config', 'tiny.yaml', '--out', 'w', '--workers', '1000', '--steps', '5', ...QUICK]),
      2,
      /^error: --workers: at most \d+ \(4 per core on these \d+ cores, and never more than 64\), got 1000$/,
    );
    expect(existsSync(join(work, 'w'))).toBe(false);
  });
});
