// Synthetic training metrics and reverse-process frames for the plot tests (no model needed).
import type { MetricRecord } from '../src/plots/charts.js';
import type { ReverseFrame } from '../src/plots/bitgrid.js';

/** A small deterministic generator (Park–Miller), so fixtures are the same on every run. */
export function lcg(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 16807) % 2147483647) / 2147483647;
}

/** A heartbeat: a 1 every `period` bits, starting at `phase`. */
export function heartbeat(length: number, period: number, phase: number): string {
  return Array.from({ length }, (_, i) => ((i + period - phase) % period === 0 ? '1' : '0')).join('');
}

export interface SyntheticRun {
  metrics: MetricRecord[];
  evaluationSteps: number[];
  length: number;
  rows: number;
}

/**
 * `steps` logged steps of a loss decaying towards 12 bits with noise; every `evalEvery` steps an
 * evaluation point with a bound, proportions that move from noise to data, and a grid of `rows`
 * sequences in which more and more rows are heartbeats.
 */
export function syntheticRun(steps = 600, evalEvery = 100, length = 20, rows = 16, seed = 7): SyntheticRun {
  const random = lcg(seed);
  const metrics: MetricRecord[] = [];
  const evaluationSteps: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const expected = 12 + 60 * Math.exp(-step / (steps / 8));
    const record: MetricRecord = { step, epoch: Math.floor(step / 50), loss: expected * (0.7 + 0.6 * random()), lr: 1e-3, elapsed: step * 0.02 };
    if (step % evalEvery === 0) {
      const learnt = step / steps;
      const grid = Array.from({ length: rows }, (_, r) =>
        random() < learnt ? heartbeat(length, 5, r % 5) : Array.from({ length }, () => (random() < 0.5 ? '1' : '0')).join(''),
      );
      Object.assign(record, {
        bound_bits: expected + 0.5,
        bound_stderr: 0.4,
        prop_train: 0.7 * learnt,
        prop_val: 0.2 * learnt,
        prop_other: 1 - 0.9 * learnt,
        distinct: rows,
        grid,
      });
      evaluationSteps.push(step);
    }
    metrics.push(record);
  }
  return { metrics, evaluationSteps, length, rows };
}

/** Frames t = T, T - every, ..., 0 of a batch moving from noise (t = T) to heartbeats (t = 0). */
export function syntheticReverseFrames(T: number, every: number, rows: number, length: number, seed = 3): ReverseFrame[] {
  const random = lcg(seed);
  const target = Array.from({ length: rows }, (_, r) => heartbeat(length, 5, r % 5)).join('');
  const frames: ReverseFrame[] = [];
  for (let t = T; t >= 0; t -= every) {
    const noise = t / T;
    frames.push({ t, bits: Uint8Array.from(target, (c) => (random() < noise ? (random() < 0.5 ? 1 : 0) : c === '1' ? 1 : 0)) });
  }
  return frames;
}
