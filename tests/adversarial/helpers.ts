// Shared by tests/adversarial/*.test.ts: run the real CLI (from source) as a hostile user would,
// and check what a failure leaves: the exit code, one line on stderr without a stack trace, and
// the files.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { expect } from 'vitest';
import { decodeSafetensors, encodeSafetensors, type TensorToEncode } from '../../src/checkpoint.js';

export const root = resolve(import.meta.dirname, '..', '..');
export const bin = join(root, 'bin', 'bernoulli-diffusion.js');
const missing = ['src/model.ts', 'pkg/bernoulli_diffusion_core_bg.wasm'].filter((path) => !existsSync(join(root, path)));
export const skipReason = missing.length > 0 ? `the wasm model is not built yet (missing ${missing.join(', ')})` : '';

export const env: Record<string, string | undefined> = { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '1', FORCE_COLOR: '0' };
delete env.BERNOULLI_DIFFUSION_TEST_PAUSE_WRITE;

/** Small and quick: T = 10, a 16-wide one-block mlp, 8 sequences per step. */
export const TINY_YAML =
  'model:\n  T: 10\n  hidden: 16\n  layers: 1\n  time_embedding: 8\n' +
  'training:\n  batch_size: 8\n  eval_samples: 16\n  eval_repeats: 1\n  eval_every: 10\n  checkpoint_every: 10\n  log_every: 5\n  warmup_steps: 2\n  early_stopping: 0\n';
export const QUICK = ['--quiet', '--no-plots'];

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function workDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `bd-adv-${prefix}-`));
  writeFileSync(join(dir, 'tiny.yaml'), TINY_YAML);
  return dir;
}

export function cli(cwd: string, args: string[], extraEnv: Record<string, string> = {}, timeout = 60_000): Result {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Lines a run prints on stderr before it fails (its start and its progress), not part of the error. */
const PROGRESS = /^(training .* for \d+ steps.*|step \d+\/\d+ \(\d+%\).*|step \d+: bound .*)$/;

/**
 * A clean failure: this exit code, exactly one line on stderr (besides the progress of a run that
 * had started), `error: …`, at the end, no stack trace, no internal-error text.
 */
export function expectOneLineError(result: Result, exitCode: number, pattern: RegExp): string {
  expect(result.status, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(exitCode);
  const lines = result.stderr.split('\n').filter((line) => line !== '' && !PROGRESS.test(line));
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr.trimEnd().endsWith(lines[0])).toBe(true);
  expect(result.stderr).not.toMatch(/\n\s+at |attempted to take ownership|unreachable|RuntimeError/);
  return lines[0];
}

/**
 * The CLI's `main` in this process (no process start-up: the quick way to try many inputs). Its
 * output is captured; an error that escapes `main` (not a user error) comes back as exit code 1
 * with its stack on stderr, as bin/bernoulli-diffusion.js would print it.
 */
export async function runMain(cwd: string, args: string[]): Promise<Result> {
  const { main } = await import('../../src/node/cli.js');
  const stdout: string[] = [];
  const stderr: string[] = [];
  const writes = { out: process.stdout.write, err: process.stderr.write };
  const capture = (into: string[]) =>
    ((chunk: string | Uint8Array) => (into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()), true)) as typeof process.stdout.write;
  const previous = process.cwd();
  process.stdout.setMaxListeners(0); // main adds an EPIPE listener per call
  process.chdir(cwd);
  process.stdout.write = capture(stdout);
  process.stderr.write = capture(stderr);
  let status: number;
  try {
    status = await main(args);
  } catch (error) {
    stderr.push(`${error instanceof Error ? error.stack : String(error)}\n`);
    status = 1;
  } finally {
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
    process.chdir(previous);
  }
  return { status, stdout: stdout.join(''), stderr: stderr.join('') };
}

/** Every file under `dir` (relative paths, sorted), hidden ones included. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(dir, path));
    }
  };
  walk(dir);
  return out.sort();
}

export function temporariesUnder(dir: string): string[] {
  return filesUnder(dir).filter((path) => /(^|\/)\..*\.tmp$/.test(path));
}

/** Rewrites a checkpoint: `edit` may change its F32 tensors in place and its metadata. */
export function tamper(from: string, to: string, edit: (tensors: Map<string, Float32Array>, metadata: Record<string, string>) => void): void {
  const decoded = decodeSafetensors(new Uint8Array(readFileSync(from)), from);
  const tensors = new Map<string, Float32Array>();
  for (const [name, tensor] of decoded.tensors) tensors.set(name, tensor.data as Float32Array);
  const metadata = { ...decoded.metadata };
  edit(tensors, metadata);
  const encoded: TensorToEncode[] = [...tensors].map(([name, data]) => ({ name, dtype: 'F32', shape: decoded.tensors.get(name)!.shape, data }));
  writeFileSync(to, encodeSafetensors(encoded, metadata));
}

/** Edits a JSON metadata entry of a checkpoint. */
export function editJson(metadata: Record<string, string>, key: string, edit: (value: Record<string, any>) => void): void {
  const value = JSON.parse(metadata[key]);
  edit(value);
  metadata[key] = JSON.stringify(value);
}

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  waitFor: (text: string) => Promise<void>;
  exit: Promise<number | null>;
}

/** Starts the CLI in the background (for kills and concurrent runs). */
export function startCli(cwd: string, args: string[], extraEnv: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...env, ...extraEnv } });
  let out = '';
  let err = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout!.on('data', (chunk) => (out += chunk));
  child.stderr!.on('data', (chunk) => {
    err += chunk;
    for (const waiter of waiters.filter((w) => err.includes(w.text))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  const exit = new Promise<number | null>((resolveExit) => child.on('close', (code, signal) => resolveExit(signal ? -1 : code)));
  const waitFor = (text: string) =>
    err.includes(text)
      ? Promise.resolve()
      : new Promise<void>((resolveWait, reject) => {
          waiters.push({ text, resolve: resolveWait });
          void exit.then(() => reject(new Error(`exited before "${text}"; stderr: ${err}`)));
        });
  return { child, stdout: () => out, stderr: () => err, waitFor, exit };
}
