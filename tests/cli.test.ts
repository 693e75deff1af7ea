// End to end: spawn the real CLI (bin/bernoulli-diffusion.js, from source through tsx) for every
// command and every bad input of the CLI contract (issue 4): exit code 2 and one line for user
// errors, nothing written for a bad train; exact resume; a kill during a checkpoint write.
// Runs are tiny (T = 8, a few dozen steps) to keep the suite fast.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/checkpoint.js';
import { parseConfigYaml, resolveConfig } from '../src/config.js';
import { parseSequences, rowStrings } from '../src/data.js';
import { startCli as startCliIn } from './adversarial/helpers.js';

const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'bernoulli-diffusion.js');
const missing = ['src/model.ts', 'pkg/bernoulli_diffusion_core_bg.wasm'].filter((path) => !existsSync(join(root, path)));
const skipReason = missing.length > 0 ? `the wasm model is not built yet (missing ${missing.join(', ')})` : '';
if (skipReason) console.log(`skipping the CLI end-to-end tests: ${skipReason}`);
const python = spawnSync('python3', ['-c', 'import safetensors'], { encoding: 'utf8' });
const pythonReason = python.error !== undefined || python.status !== 0 ? 'python3 with the safetensors module is not available' : '';
if (pythonReason && !skipReason) console.log(`skipping the Python check of a CLI checkpoint: ${pythonReason}`);

const env = { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '1', FORCE_COLOR: '0' };
delete (env as Record<string, string | undefined>).BERNOULLI_DIFFUSION_TEST_PAUSE_WRITE;

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(cwd: string, args: string[], extraEnv: Record<string, string> = {}): Result {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A user error: exit 2, exactly one line on stderr, `error: …`, no stack trace. */
function expectUserError(result: Result, pattern: RegExp): void {
  expect(result.status, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(2);
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

function tensorsOf(path: string) {
  return decodeSafetensors(new Uint8Array(readFileSync(path)), path);
}

/** Same tensors bit for bit, and the same metadata apart from the loop state's timings. */
function expectSameModel(a: string, b: string): void {
  const first = tensorsOf(a);
  const second = tensorsOf(b);
  expect([...second.tensors.keys()]).toEqual([...first.tensors.keys()]);
  for (const [name, tensor] of first.tensors) {
    const other = second.tensors.get(name)!;
    expect(other.shape, name).toEqual(tensor.shape);
    const bytes = (t: typeof tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    expect(bytes(other).equals(bytes(tensor)), `tensor ${name} differs`).toBe(true);
  }
  const strip = (metadata: Record<string, string>) => {
    const { loop_state: loopState, ...rest } = metadata;
    const state = JSON.parse(loopState ?? '{}');
    delete state.elapsedSeconds;
    return { ...rest, loop_state: state };
  };
  expect(strip(second.metadata)).toEqual(strip(first.metadata));
}

const tiny = ['--T', '8', '--batch-size', '8', '--quiet', '--no-plots'];

describe.skipIf(skipReason !== '')('CLI end to end', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bd-cli-'));
    writeFileSync(
      join(work, 'tiny.yaml'),
      'model:\n  hidden: 16\n  layers: 1\n  time_embedding: 8\ntraining:\n  eval_samples: 20\n  eval_every: 20\n  checkpoint_every: 20\n  log_every: 5\n  warmup_steps: 5\n  early_stopping: 0\n',
    );
  });

  it('--help on every command lists its flags with a description and the default', () => {
    const expectations: [string[], string[]][] = [
      [[], ['train', 'generate', 'evaluate', 'data', 'plot']],
      [
        ['train'],
        [
          '--config',
          '--data',
          '--val',
          '--out',
          '--name',
          '--seed',
          '--resume',
          '-T',
          '--epochs',
          '--steps',
          '--lr',
          '--batch-size',
          '--arch',
          '--checkpoint-every',
          '--quiet',
        ],
      ],
      [['generate'], ['-n', '--given', '--inpaint-mode', '--particles', '--steps', '--seed', '--json', '--workers']],
      [['evaluate'], ['--data', '--train', '--samples', '--repeats', '--strata', '--exact', '--seed', '--json']],
      [
        ['data', 'heartbeat'],
        ['--length', '--period', '--holdout', '--out'],
      ],
      [['plot'], ['run']],
    ];
    for (const [command, flags] of expectations) {
      const result = cli(work, [...command, '--help']);
      expect(result.status, result.stderr).toBe(0);
      for (const flag of flags) expect(result.stdout, `${command.join(' ')} --help: ${flag}`).toMatch(new RegExp(`${flag.replace(/[-]/g, '\\-')}\\b`));
      if (command.length > 0 && command[0] !== 'plot') expect(result.stdout).toMatch(/\[default: /);
    }
    expect(cli(work, ['train', '--help']).stdout).toMatch(/--steps\s+optimiser steps\s+\[number\] \[default: 2000\]/);
    expect(cli(work, ['data', 'heartbeat', '--help']).stdout).toMatch(/--period\s+P: one 1 every P bits\s+\[number\] \[default: 5\]/);
  });

  it('data heartbeat writes train.txt and val.txt with K phases held out', () => {
    const result = cli(work, ['data', 'heartbeat', '--length', '12', '--period', '4', '--holdout', '1', '--count', '30', '--out', 'hb']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^wrote hb\/train\.txt \(30 sequences/m);
    const train = rowStrings(parseSequences(readFileSync(join(work, 'hb', 'train.txt'), 'utf8'), 'train.txt'));
    const val = rowStrings(parseSequences(readFileSync(join(work, 'hb', 'val.txt'), 'utf8'), 'val.txt'));
    expect(train).toHaveLength(30);
    expect(new Set(train)).toEqual(new Set(['100010001000', '010001000100', '001000100010']));
    expect(val).toEqual(['000100010001']);
    expectUserError(cli(work, ['data', 'heartbeat', '--period', '30']), /^error: --period: out of range: the period \(30\) must not exceed the length \(20\)$/);
    expectUserError(cli(work, ['data', 'heartbeat', '--holdout', '5']), /--holdout: out of range: must be less than the period \(5\), got 5/);
    expectUserError(cli(work, ['data']), /give a data command: heartbeat/);
  });

  it('train writes the run directory and ends with the samples, the bound and the run path', () => {
    const result = cli(work, ['train', '--config', 'tiny.yaml', '--steps', '40', '--name', 'basic', ...tiny]);
    expect(result.status, result.stderr).toBe(0);
    const runDir = join(work, 'results', 'basic');
    expect(lastLine(result.stdout)).toBe('run: results/basic');
    expect(result.stdout).toMatch(/^bound on val data: \d+\.\d+ ± \d+\.\d+ bits\/sequence/m);
    expect(result.stdout).toMatch(/^ {2}[01]{20} {2}(train|val|other)$/m);
    expect(result.stderr).toMatch(/step 40\/40 \(100%\)/); // the plain progress line (not a terminal)

    expect(readdirSync(runDir).sort()).toEqual(['checkpoints', 'config.yaml', 'metrics.jsonl', 'model.safetensors', 'results.json']);
    expect(readdirSync(join(runDir, 'checkpoints')).sort()).toEqual(['step-20.safetensors', 'step-40.safetensors']);
    const records = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(records.map((r) => r.step)).toEqual([5, 10, 15, 20, 25, 30, 35, 40]);
    for (const record of records) {
      for (const key of ['step', 'epoch', 'loss', 'lr', 'elapsed']) expect(typeof record[key], key).toBe('number');
    }
    const evaluations = records.filter((r) => r.bound_bits !== undefined);
    expect(evaluations.map((r) => r.step)).toEqual([20, 40]);
    for (const point of evaluations) {
      expect(point.prop_train + point.prop_val + point.prop_other).toBeCloseTo(1, 9);
      expect(point.grid).toHaveLength(16);
      expect(typeof point.distinct).toBe('number');
    }
    const results = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8'));
    expect(results).toMatchObject({ stopped: 'completed', step: 40, total_steps: 40, model_step: 40 });
    expect(results.final.bound_bits).toBe(evaluations[1].bound_bits);
    expect(results.samples).toHaveLength(16);
    expect(typeof results.timings.train_seconds).toBe('number');

    // config.yaml is the resolved config and loads back as a config file
    const config = resolveConfig([parseConfigYaml(readFileSync(join(runDir, 'config.yaml'), 'utf8'), 'config.yaml')]).config;
    expect(config.model).toMatchObject({ T: 8, hidden: 16, layers: 1 });
    expect(config.training).toMatchObject({ steps: 40, batch_size: 8, eval_every: 20 });
    expect(config.data.heartbeat).toEqual({ length: 20, period: 5, holdout: 0, count: 1000 });

    // checkpoints are complete safetensors files carrying the run config and the loop state
    const checkpoint = tensorsOf(join(runDir, 'checkpoints', 'step-20.safetensors'));
    expect(JSON.parse(checkpoint.metadata.run_config).training.steps).toBe(40);
    expect(JSON.parse(checkpoint.metadata.loop_state).step).toBe(20);
  });

  it.skipIf(pythonReason !== '')("Python's safetensors loads a checkpoint written by train", () => {
    const path = join(work, 'results', 'basic', 'model.safetensors');
    const script = 'import sys, safetensors\nfor name, t in safetensors.deserialize(open(sys.argv[1], "rb").read()): print(name, t["dtype"], list(t["shape"]))';
    const listed = execFileSync('python3', ['-c', script, path], { encoding: 'utf8' }).trim().split('\n');
    const ours = [...tensorsOf(path).tensors].map(([name, t]) => `${name} ${t.dtype} [${t.shape.join(', ')}]`);
    expect(listed.sort()).toEqual(ours.sort());
  });

  it('generate prints N lines (or JSON), reproducibly, and keeps --given bits', () => {
    const model = join(work, 'results', 'basic', 'model.safetensors');
    const plain = cli(work, ['generate', model, '-n', '5', '--seed', '3']);
    expect(plain.status, plain.stderr).toBe(0);
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    for (const line of lines) expect(line).toMatch(/^[01]{20}$/);
    expect(cli(work, ['generate', model, '-n', '5', '--seed', '3']).stdout).toBe(plain.stdout);
    // two workers draw the same samples and completions as one
    expect(cli(work, ['generate', model, '-n', '5', '--seed', '3', '--workers', '2']).stdout).toBe(plain.stdout);
    const givenFlags = ['--given', '1????0????1????0????', '--particles', '3'];
    expect(cli(work, ['generate', model, '-n', '4', '--seed', '3', ...givenFlags, '--workers', '2']).stdout).toBe(
      cli(work, ['generate', model, '-n', '4', '--seed', '3', ...givenFlags, '--workers', '1']).stdout,
    );
    expectUserError(cli(work, ['generate', model, '--workers', '0']), /^error: --workers: expected a whole number of at least 1, got 0$/);
    const json = cli(work, ['generate', model, '-n', '3', '--seed', '3', '--json']);
    const array = JSON.parse(json.stdout) as string[];
    expect(array).toHaveLength(3);
    for (const line of array) expect(line).toMatch(/^[01]{20}$/);
    const pattern = '1????0????1????0????';
    const given = cli(work, ['generate', model, '-n', '20', '--given', pattern, '--seed', '1']);
    expect(given.status, given.stderr).toBe(0);
    for (const line of given.stdout.trimEnd().split('\n')) {
      for (let i = 0; i < pattern.length; i++) if (pattern[i] !== '?') expect(line[i]).toBe(pattern[i]);
    }
    // both inpainting modes keep the known bits and are reproducible; the modes differ
    const clamp = cli(work, ['generate', model, '-n', '20', '--given', pattern, '--inpaint-mode', 'clamp', '--seed', '1']);
    const smc = cli(work, ['generate', model, '-n', '20', '--given', pattern, '--inpaint-mode', 'smc', '--particles', '3', '--seed', '1']);
    for (const result of [clamp, smc]) {
      expect(result.status, result.stderr).toBe(0);
      for (const line of result.stdout.trimEnd().split('\n')) {
        for (let i = 0; i < pattern.length; i++) if (pattern[i] !== '?') expect(line[i]).toBe(pattern[i]);
      }
    }
    expect(cli(work, ['generate', model, '-n', '20', '--given', pattern, '--inpaint-mode', 'clamp', '--seed', '1']).stdout).toBe(clamp.stdout);
    expect(cli(work, ['generate', model, '-n', '20', '--given', pattern, '--inpaint-mode', 'smc', '--seed', '1']).stdout).toBe(given.stdout); // smc is the default
    expect(clamp.stdout).not.toBe(given.stdout);
    expectUserError(
      cli(work, ['generate', model, '--given', pattern, '--inpaint-mode', 'delta']),
      /^error: --inpaint-mode: expected 'smc' or 'clamp', got 'delta'$/,
    );
    expectUserError(
      cli(work, ['generate', model, '--inpaint-mode', 'clamp']),
      /^error: --inpaint-mode and --particles need --given \(or --given-top-half, --given-png\)$/,
    );
    expectUserError(
      cli(work, ['generate', model, '--given', pattern, '--inpaint-mode', 'clamp', '--particles', '4']),
      /^error: --particles: only with --inpaint-mode smc$/,
    );
    expectUserError(cli(work, ['generate', model, '--given', pattern, '--particles', '0']), /^error: --particles: out of range/);
    expectUserError(cli(work, ['generate', model, '--given', '1?0']), /^error: --given has 3 characters but the model's sequences have 20 bits$/);
    expectUserError(cli(work, ['generate', model, '--given', '1?0x????????????????']), /^error: --given: character 4 is "x"; use 0 and 1/);
    expectUserError(cli(work, ['generate', model, '-n', '0']), /^error: --n: out of range/);
    // --steps K: a chain of K network calls (the model's T is 8); K = T is the full chain, fewer
    // jump over steps (other samples), one worker or two draw the same, and inpainting keeps its bits
    expect(cli(work, ['generate', model, '-n', '5', '--seed', '3', '--steps', '8']).stdout).toBe(plain.stdout);
    const strided = cli(work, ['generate', model, '-n', '40', '--seed', '3', '--steps', '3']);
    expect(strided.status, strided.stderr).toBe(0);
    expect(strided.stdout).not.toBe(cli(work, ['generate', model, '-n', '40', '--seed', '3']).stdout);
    expect(cli(work, ['generate', model, '-n', '40', '--seed', '3', '--steps', '3', '--workers', '2']).stdout).toBe(strided.stdout);
    const stridedGiven = cli(work, ['generate', model, '-n', '10', '--given', pattern, '--steps', '2', '--seed', '1']);
    expect(stridedGiven.status, stridedGiven.stderr).toBe(0);
    for (const line of stridedGiven.stdout.trimEnd().split('\n')) {
      for (let i = 0; i < pattern.length; i++) if (pattern[i] !== '?') expect(line[i]).toBe(pattern[i]);
    }
    expectUserError(cli(work, ['generate', model, '--steps', '9']), /^error: --steps: out of range: must be >= 1 and <= 8, got 9$/);
    expectUserError(cli(work, ['generate', model, '--steps', '1.5']), /^error: --steps: expected an integer, got 1\.5$/);
  });

  it('evaluate prints a table, or JSON with the contract keys; --exact for short sequences only', () => {
    const model = join(work, 'results', 'basic', 'model.safetensors');
    const table = cli(work, ['evaluate', model, '--samples', '20', '--repeats', '2']);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^bound\s+\d+\.\d+ ± \d+\.\d+ bits\/sequence/m);
    expect(table.stdout).toMatch(/^data\s+built-in heartbeat L=20 P=5, phases 0-4 \(5 sequences\)/m);
    const json = cli(work, ['evaluate', model, '--samples', '20', '--repeats', '2', '--json']);
    expect(json.status, json.stderr).toBe(0);
    const result = JSON.parse(json.stdout);
    for (const key of ['bound_bits', 'bound_stderr', 'n_data', 'samples', 'prop_train', 'prop_data', 'prop_other', 'distinct']) {
      expect(typeof result[key], key).toBe('number');
    }
    expect(result).toMatchObject({ n_data: 5, samples: 20, bound_repeats: 2 });
    expect(result.prop_train + result.prop_data + result.prop_other).toBeCloseTo(1, 9);
    expect(result.exact_nll_bits).toBeUndefined();
    // the five phases, each with its bound and share of the samples; their bounds average to the bound
    expect(result.per_sequence.map((entry: { sequence: string }) => entry.sequence)).toEqual(
      [0, 1, 2, 3, 4].map((phase) => Array.from({ length: 20 }, (_, i) => (i % 5 === phase ? '1' : '0')).join('')),
    );
    const perSequence: { bound_bits: number; share: number }[] = result.per_sequence;
    expect(perSequence.reduce((s, entry) => s + entry.bound_bits, 0) / 5).toBeCloseTo(result.bound_bits, 9);
    expect(perSequence.reduce((s, entry) => s + entry.share, 0)).toBeCloseTo(result.prop_train + result.prop_data, 9);
    expect(table.stdout).toMatch(/^ {2}10000100001000010000\s+\d+\.\d% +\d+\.\d{3} bits$/m);
    expectUserError(cli(work, ['evaluate', model, '--exact']), /^error: --exact needs sequences of at most 12 bits .* this model's have 20$/);
    // the same bound in nats and bits per bit; the full sum over t by default (T · L = 40,000 is cheap)
    expect(result.bound_strata).toBe(0);
    expect(result.bound_nats).toBeCloseTo(result.bound_bits * Math.LN2, 12);
    expect(result.bound_bits_per_bit).toBeCloseTo(result.bound_bits / 20, 12);
    expect(table.stdout).toMatch(/^bound .*\(full sum over t, 2 Monte-Carlo repeats\)$/m);
    expect(table.stdout).toMatch(/^ {2}per sequence\s+\d+\.\d\d nats\/sequence, \d\.\d{4} bits\/bit$/m);
    // --strata K: an unbiased estimate from K values of t, near the full sum
    const stratified = JSON.parse(cli(work, ['evaluate', model, '--samples', '1', '--repeats', '2', '--strata', '4', '--json']).stdout);
    expect(stratified.bound_strata).toBe(4);
    expect(stratified.bound_bits).not.toBe(result.bound_bits);
    expect(Math.abs(stratified.bound_bits - result.bound_bits)).toBeLessThan(4 * Math.hypot(stratified.bound_stderr, result.bound_stderr) + 1e-9);
    expect(cli(work, ['evaluate', model, '--samples', '1', '--repeats', '1', '--strata', '4']).stdout).toMatch(/\(4 strata of t, 1 Monte-Carlo repeat\)/);
    expectUserError(cli(work, ['evaluate', model, '--strata', '-1']), /^error: --strata: out of range/);
    expectUserError(cli(work, ['evaluate', model, '--strata', '2.5']), /^error: --strata: /);

    // a short-sequence model: exact NLL, and the bound is not below it (up to Monte-Carlo error)
    writeFileSync(join(work, 'short.txt'), '1010\n0101\n1010\n0101\n');
    const trained = cli(work, ['train', '--config', 'tiny.yaml', '--data', 'short.txt', '--steps', '20', '--name', 'short', ...tiny]);
    expect(trained.status, trained.stderr).toBe(0);
    const short = cli(work, ['evaluate', join(work, 'results', 'short', 'model.safetensors'), '--exact', '--json', '--samples', '10', '--repeats', '8']);
    expect(short.status, short.stderr).toBe(0);
    const exact = JSON.parse(short.stdout);
    expect(typeof exact.exact_nll_bits).toBe('number');
    expect(exact.bound_bits).toBeGreaterThanOrEqual(exact.exact_nll_bits - 4 * exact.bound_stderr - 1e-9);
    expect(exact).toMatchObject({ n_data: 4, data: 'short.txt', train: 'short.txt' });
  });

  it('rejects each bad input with exit 2 and one line, writing nothing', () => {
    const write = (name: string, text: string) => writeFileSync(join(work, name), text);
    write('bad-char.txt', '0101\n01x1\n');
    write('ragged.txt', '0101\n011\n');
    write('empty.txt', '\n# nothing\n');
    write('bad-key.yaml', 'model:\n  hiden: 3\n');
    write('bad-type.yaml', 'training:\n  lr: fast\n');
    write('bad-range.yaml', 'model:\n  T: 0\n');
    write('bad-yaml.yaml', 'model: [1,\n');
    write('good.txt', '0101\n1010\n');
    write('long-warmup.yaml', 'training:\n  warmup_steps: 200\n');
    const out = join(work, 'never');
    const train = (...args: string[]) => cli(work, ['train', '--out', out, ...tiny, ...args]);
    expectUserError(train('--data', 'bad-char.txt'), /^error: bad-char\.txt:2: unexpected character 'x' at column 3/);
    expectUserError(train('--data', 'ragged.txt'), /^error: ragged\.txt:2: the sequence has 3 bits but line 1 has 4/);
    expectUserError(train('--data', 'empty.txt'), /^error: empty\.txt: no sequences/);
    expectUserError(train('--data', 'good.txt', '--val', 'ragged.txt'), /^error: ragged\.txt:2:/);
    expectUserError(train('--data', 'missing.txt'), /^error: cannot read .*missing\.txt: no such file/);
    expectUserError(train('--config', 'bad-key.yaml'), /^error: bad-key\.yaml:2: unknown key model\.hiden \(did you mean model\.hidden\?\)$/);
    expectUserError(train('--config', 'bad-type.yaml'), /^error: bad-type\.yaml:2: training\.lr: expected a number, got the text "fast"$/);
    expectUserError(train('--config', 'bad-range.yaml'), /^error: bad-range\.yaml:2: model\.T: out of range: must be >= 1 and <= 100000, got 0$/);
    expectUserError(train('--config', 'bad-yaml.yaml'), /^error: bad-yaml\.yaml:\d+: YAML syntax error/);
    expectUserError(train('--config', 'nope.yaml'), /^error: cannot read nope\.yaml: no such file/);
    expectUserError(
      train('--config', 'long-warmup.yaml', '--steps', '100'),
      /^error: long-warmup\.yaml:2: training\.warmup_steps: out of range: must be less than the run's 100 steps/,
    );
    expectUserError(train('--lr', '-1'), /^error: --lr: out of range: must be > 0 and <= 10, got -1$/);
    expectUserError(train('--lr', 'fast'), /^error: --lr: expected a number/);
    expectUserError(train('--arch', 'transformer'), /^error: --arch: expected one of mlp, paper, circular/);
    expectUserError(train('--steps', '5', '--epochs', '2'), /^error: Arguments steps and epochs are mutually exclusive/);
    expectUserError(train('--bogus'), /^error: Unknown argument: bogus/);
    expect(existsSync(out)).toBe(false);

    const model = readFileSync(join(work, 'results', 'basic', 'model.safetensors'));
    writeFileSync(join(work, 'truncated.safetensors'), model.subarray(0, Math.floor(model.length / 2)));
    writeFileSync(join(work, 'garbage.safetensors'), 'this is not a checkpoint at all');
    for (const command of [['generate'], ['evaluate'], ['train', '--out', out, '--resume']]) {
      expectUserError(cli(work, [...command, 'missing.safetensors']), /^error: cannot read missing\.safetensors: no such file/);
      expectUserError(cli(work, [...command, 'truncated.safetensors']), /^error: truncated\.safetensors: /);
      expectUserError(cli(work, [...command, 'garbage.safetensors']), /^error: garbage\.safetensors: /);
    }
    expect(existsSync(out)).toBe(false);
    expectUserError(cli(work, []), /give a command/);
    expectUserError(cli(work, ['fly']), /Unknown argument: fly/);
    expectUserError(cli(work, ['generate']), /Not enough non-option arguments/);
    expectUserError(cli(work, ['train', '--name', 'basic', ...tiny]), /already holds a run/);
    expectUserError(
      cli(work, ['train', '--resume', join(work, 'results', 'basic', 'checkpoints', 'step-20.safetensors'), '--lr', '0.1']),
      /^error: --lr cannot be changed when resuming/,
    );
  });

  it('a run resumed from a checkpoint ends with the same weights, bit for bit, as the uninterrupted run', () => {
    const full = cli(work, ['train', '--config', 'tiny.yaml', '--steps', '60', '--name', 'full', '--seed', '5', ...tiny]);
    expect(full.status, full.stderr).toBe(0);
    const resumed = cli(work, [
      'train',
      '--resume',
      join(work, 'results', 'full', 'checkpoints', 'step-20.safetensors'),
      '--name',
      'resumed',
      '--quiet',
      '--no-plots',
    ]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(lastLine(resumed.stdout)).toBe('run: results/resumed');
    expectSameModel(join(work, 'results', 'full', 'model.safetensors'), join(work, 'results', 'resumed', 'model.safetensors'));
    expectSameModel(
      join(work, 'results', 'full', 'checkpoints', 'step-40.safetensors'),
      join(work, 'results', 'resumed', 'checkpoints', 'step-40.safetensors'),
    );
    // the resumed run carries the history before the checkpoint, and the same losses after it
    const steps = (run: string) =>
      readFileSync(join(work, 'results', run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    expect(steps('resumed').map((r) => [r.step, r.loss, r.bound_bits])).toEqual(steps('full').map((r) => [r.step, r.loss, r.bound_bits]));
  });

  it('with early stopping, model.safetensors is the best evaluated model', () => {
    writeFileSync(
      join(work, 'early.yaml'),
      'model:\n  hidden: 16\n  layers: 1\n  time_embedding: 8\ntraining:\n  eval_every: 5\n  eval_samples: 10\n  early_stopping: 2\n  warmup_steps: 5\n  checkpoint_every: 0\n  ema_decay: 0\n  lr: 0.05\n  lr_schedule: constant\n',
    );
    // A large constant learning rate without averaging: the bound jumps about, so the run stops early.
    const result = cli(work, ['train', '--config', 'early.yaml', '--steps', '300', '--name', 'early', ...tiny]);
    expect(result.status, result.stderr).toBe(0);
    const runDir = join(work, 'results', 'early');
    const results = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8'));
    const records = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const evaluated = records.filter((r) => r.bound_bits !== undefined);
    const best = evaluated.reduce((a, b) => (b.bound_bits < a.bound_bits ? b : a));
    expect(results.best).toEqual({ step: best.step, bound_bits: best.bound_bits });
    expect(results.model_step).toBe(best.step);
    expect(JSON.parse(tensorsOf(join(runDir, 'model.safetensors')).metadata.loop_state).step).toBe(best.step);
    expectSameModel(join(runDir, 'checkpoints', 'best.safetensors'), join(runDir, 'model.safetensors'));
    expect(results.stopped).toBe('early_stopping');
    // the final evaluation is of the model kept: the best one, with the same fixed noise as at its step
    expect(results.final.step).toBe(best.step);
    expect(results.final.bound_bits).toBe(best.bound_bits);
    expect(evaluated.at(-1).step).toBe(best.step + 10); // two evaluations without improvement
    expect(results.step).toBe(best.step + 10);
    expect(result.stdout).toContain(
      `stopped early at step ${best.step + 10}: no better bound in 2 evaluations; model.safetensors is the best, from step ${best.step}`,
    );
  });

  const startCli = (args: string[], extraEnv: Record<string, string>) => startCliIn(work, args, extraEnv);

  it('Ctrl-C checkpoints and exits cleanly; resuming in place matches the uninterrupted run', async () => {
    // Pause inside the write of step-20's checkpoint, press Ctrl-C there, then let the write finish:
    // the interrupt lands at a known step, so the test does not depend on timing.
    const run = startCli(['train', '--config', 'tiny.yaml', '--steps', '60', '--name', 'interrupted', '--seed', '5', ...tiny], {
      BERNOULLI_DIFFUSION_TEST_PAUSE_WRITE: 'step-20.safetensors',
    });
    await run.waitFor('paused writing');
    run.child.kill('SIGINT');
    await run.waitFor('interrupted: finishing the current step');
    run.child.kill('SIGUSR2');
    expect(await run.exit).toBe(130);
    const runDir = join(work, 'results', 'interrupted');
    const checkpoint = join(runDir, 'checkpoints', 'step-20.safetensors');
    expect(run.stdout()).toContain(
      'interrupted at step 20; continue with: bernoulli-diffusion train --resume results/interrupted/checkpoints/step-20.safetensors',
    );
    expect(lastLine(run.stdout())).toBe('run: results/interrupted');
    expect(JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')).stopped).toBe('interrupted');
    expect(existsSync(join(runDir, 'model.safetensors'))).toBe(false);

    const resumed = cli(work, ['train', '--resume', checkpoint, '--quiet', '--no-plots']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(lastLine(resumed.stdout)).toBe('run: results/interrupted');
    expectSameModel(join(work, 'results', 'full', 'model.safetensors'), join(runDir, 'model.safetensors'));
    const records = (dir: string) =>
      readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    expect(records(runDir).map((r) => [r.step, r.loss])).toEqual(records(join(work, 'results', 'full')).map((r) => [r.step, r.loss]));
  });

  it('a kill during a checkpoint write leaves the previous checkpoint readable', async () => {
    const run = startCli(['train', '--config', 'tiny.yaml', '--steps', '60', '--name', 'killed', '--seed', '5', ...tiny], {
      BERNOULLI_DIFFUSION_TEST_PAUSE_WRITE: 'step-40.safetensors',
    });
    await run.waitFor('paused writing');
    run.child.kill('SIGKILL');
    await run.exit;
    const checkpoints = join(work, 'results', 'killed', 'checkpoints');
    expect(readdirSync(checkpoints).filter((name) => !name.startsWith('.'))).toEqual(['step-20.safetensors']);
    expect(readdirSync(checkpoints).some((name) => name.startsWith('.step-40.safetensors.') && name.endsWith('.tmp'))).toBe(true);
    const generated = cli(work, ['generate', join(checkpoints, 'step-20.safetensors'), '-n', '2', '--seed', '1']);
    expect(generated.status, generated.stderr).toBe(0);
    const resumed = cli(work, ['train', '--resume', join(checkpoints, 'step-20.safetensors'), '--quiet', '--no-plots']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expectSameModel(join(work, 'results', 'full', 'model.safetensors'), join(work, 'results', 'killed', 'model.safetensors'));
  });

  it('train draws the pictures and report; plot redraws them', () => {
    const trained = cli(work, ['train', '--config', 'tiny.yaml', '--steps', '40', '--name', 'pictures', '--T', '8', '--batch-size', '8', '--quiet']);
    expect(trained.status, trained.stderr).toBe(0);
    const runDir = join(work, 'results', 'pictures');
    for (const name of ['loss.png', 'loss.svg', 'proportions.png', 'samples_over_training.gif', 'reverse_process.gif', 'report.html']) {
      expect(existsSync(join(runDir, name)), name).toBe(true);
    }
    const plotted = cli(work, ['plot', runDir]);
    expect(plotted.status, plotted.stderr).toBe(0);
    expect(plotted.stdout).toContain('wrote results/pictures/report.html');
    expectUserError(cli(work, ['plot', join(work, 'hb')]), /not a run directory/);
  });
});

describe.skipIf(skipReason !== '' || !existsSync(join(root, 'dist', 'node', 'cli.js')))('the built CLI', () => {
  it('runs from dist without tsx', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'bd-dist-'));
    mkdirSync(join(cwd, 'x'));
    const result = spawnSync(process.execPath, [bin, 'data', 'heartbeat', '--out', 'x', '--count', '5'], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '' },
    });
    expect(result.status, result.stderr).toBe(0);
    expect(readFileSync(join(cwd, 'x', 'train.txt'), 'utf8')).toMatch(/^# heartbeat L=20 P=5/);
  });
});
