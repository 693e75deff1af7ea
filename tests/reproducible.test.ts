// Reproducible files: the same seed and steps give byte-identical model.safetensors and checkpoints,
// however long the run took (wall time lives in metrics.jsonl and results.json only), and a resumed
// run ends with the same bytes as one that never stopped, its clock continuing from the metrics.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/checkpoint.js';
import { runCli } from '../src/commands/index.js';
import { MemoryIo } from '../src/commands/memory-io.js';
import '../src/node/wasm-file.js';

const root = resolve(import.meta.dirname, '..');
const modelMissing = !existsSync(join(root, 'pkg', 'bernoulli_diffusion_core_bg.wasm'));

/** A clock that advances `tick` milliseconds at every reading, from `start`. */
function clock(start: number, tick: number): () => number {
  let now = start;
  return () => (now += tick);
}

const DATA = '1001001001\n0100100100\n0010010010\n1000100010\n';
// importance objective (its history is in the state), EMA, early stopping (best.safetensors) and
// periodic checkpoints: every file train writes
const TRAIN = [
  'train',
  '--data',
  'd.txt',
  '--T',
  '6',
  '--steps',
  '24',
  '--batch-size',
  '4',
  '--hidden',
  '8',
  '--eval-every',
  '6',
  '--early-stopping',
  '3',
  '--checkpoint-every',
  '12',
  '--seed',
  '5',
  '--name',
  'r',
  '--no-plots',
];

function weightFiles(io: MemoryIo): Map<string, Uint8Array> {
  return new Map([...io.files].filter(([path]) => path.endsWith('.safetensors')).sort(([a], [b]) => a.localeCompare(b)));
}

describe.skipIf(modelMissing)('reproducible files', () => {
  it('the same seed and steps give byte-identical weight files on a fast and a slow clock', async () => {
    const fast = new MemoryIo({ files: { 'd.txt': DATA }, now: clock(0, 1) });
    const slow = new MemoryIo({ files: { 'd.txt': DATA }, now: clock(1.7e12, 977) });
    expect(await runCli(yargs, TRAIN, fast)).toBe(0);
    expect(await runCli(yargs, TRAIN, slow)).toBe(0);
    const a = weightFiles(fast);
    const b = weightFiles(slow);
    expect([...a.keys()]).toEqual([
      '/results/r/checkpoints/best.safetensors',
      '/results/r/checkpoints/step-12.safetensors',
      '/results/r/checkpoints/step-24.safetensors',
      '/results/r/model.safetensors',
    ]);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [path, bytes] of a) expect(Buffer.from(b.get(path)!).equals(Buffer.from(bytes)), path).toBe(true);
    // the clocks did differ, and the timings went where they belong
    const timing = (io: MemoryIo) => JSON.parse(io.getText('results/r/results.json')!).timings.elapsed_seconds;
    expect(timing(slow)).toBeGreaterThan(100 * timing(fast));
    expect(fast.getText('results/r/metrics.jsonl')).not.toBe(slow.getText('results/r/metrics.jsonl'));
    expect(JSON.parse(decodeSafetensors(a.get('/results/r/model.safetensors')!, 'model').metadata.loop_state)).toEqual({
      step: 24,
      bestStep: expect.any(Number),
      bestBoundBits: expect.any(Number),
      evalsSinceBest: expect.any(Number),
    });
    // a different seed gives different weights (the comparison above can fail)
    const other = new MemoryIo({ files: { 'd.txt': DATA }, now: clock(0, 1) });
    expect(
      await runCli(
        yargs,
        TRAIN.map((arg) => (arg === '5' ? '6' : arg)),
        other,
      ),
    ).toBe(0);
    expect(Buffer.from(weightFiles(other).get('/results/r/model.safetensors')!).equals(Buffer.from(a.get('/results/r/model.safetensors')!))).toBe(false);
  });

  it('a resumed run writes the same bytes as an uninterrupted one, its clock continuing from metrics.jsonl', async () => {
    const whole = new MemoryIo({ files: { 'd.txt': DATA }, now: clock(0, 1) });
    expect(await runCli(yargs, TRAIN, whole)).toBe(0);
    // the first half runs on a slow clock and is interrupted after step 12 (its checkpoint); the
    // resumed half runs on a fast clock
    let slow: MemoryIo;
    slow = new MemoryIo({
      files: { 'd.txt': DATA },
      now: clock(0, 1000),
      onProgress: (update) => {
        if (update.step >= 12) slow.interrupt();
      },
    });
    expect(await runCli(yargs, TRAIN, slow)).toBe(130);
    expect(JSON.parse(slow.getText('results/r/results.json')!).step).toBe(12);
    const keep = [
      '/d.txt',
      '/results/r/config.yaml',
      '/results/r/metrics.jsonl',
      '/results/r/checkpoints/step-12.safetensors',
      '/results/r/checkpoints/best.safetensors',
    ];
    const files = Object.fromEntries(keep.map((path) => [path, slow.files.get(path)!]));
    const resumed = new MemoryIo({ files, now: clock(0, 1) });
    expect(await runCli(yargs, ['train', '--resume', 'results/r/checkpoints/step-12.safetensors', '--no-plots'], resumed)).toBe(0);
    for (const [path, bytes] of weightFiles(whole)) {
      expect(Buffer.from(resumed.files.get(path)!).equals(Buffer.from(bytes)), path).toBe(true);
    }
    const records = (io: MemoryIo) =>
      io
        .getText('results/r/metrics.jsonl')!
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { step: number; elapsed: number });
    const before = records(slow).find((r) => r.step === 12)!.elapsed;
    const after = records(resumed).find((r) => r.step === 24)!.elapsed;
    expect(before).toBeGreaterThan(10);
    expect(after).toBeGreaterThan(before); // continued, not restarted at 0
    expect(after).toBeLessThan(before + 10); // and the resumed session was fast
  });
});
