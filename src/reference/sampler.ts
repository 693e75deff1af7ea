/**
 * The reverse chain in plain TypeScript (DESIGN.md §1): x_T ~ B(0.5), then for t = T..1
 * x_{t-1} ~ B(f(x_t, t)), batched over n sequences (all rows at the same t share one readout).
 * Mirrors crate/src/sampler.rs, draws included: sequence i uses Rng.forExample(seed, SAMPLE_STREAM, i),
 * in this order: for j = 0..L: x_T[j] = bernoulli(0.5); then for t = T..1: for j = 0..L:
 * x_{t-1}[j] = bernoulli(f_j), f rounded to f32.
 */
import { reverseProbability, type Parameterisation } from './objective.js';
import type { PaperNetwork } from './paper-network.js';
import { Rng } from './rng.js';
import type { Schedule } from './schedule.js';

/** The `step` argument of Rng.forExample reserved for sampling streams (u64::MAX - 1). */
export const SAMPLE_STREAM = (1n << 64n) - 2n;

/**
 * n sequences (n × L bits, row-major) from the model. `stopAfter(t)`, if given, is asked after
 * each reverse step t; true stops the chain there (the bench uses it to time part of a chain).
 */
export function sample(
  network: PaperNetwork,
  parameterisation: Parameterisation,
  schedule: Schedule,
  n: number,
  seed: number | bigint,
  stopAfter?: (t: number) => boolean,
): Uint8Array {
  const L = network.shape.length;
  const rngs = Array.from({ length: n }, (_, r) => Rng.forExample(seed, SAMPLE_STREAM, r));
  const x = new Uint8Array(n * L);
  for (let r = 0; r < n; r++) for (let i = 0; i < L; i++) x[r * L + i] = rngs[r].bernoulli(0.5) ? 1 : 0; // x_T ~ B(0.5)
  const t = new Int32Array(n);
  const logits = new Float32Array(n * L);
  for (let step = schedule.T; step >= 1; step--) {
    t.fill(step);
    network.forward(x, t, n, logits);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < L; i++) {
        const k = r * L + i;
        const f = Math.fround(reverseProbability(parameterisation, schedule, step, x[k], logits[k])); // f(x_t, t)
        x[k] = rngs[r].bernoulli(f) ? 1 : 0; // x_{t-1} ~ B(f)
      }
    }
    if (stopAfter?.(step)) break;
  }
  return x;
}
