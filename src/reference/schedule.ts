/**
 * Noise schedules (DESIGN.md §1): per-step rates b_t (probability that step t replaces a bit by a
 * fair coin) and cumulative rates c_t with 1 - c_t = prod_{s<=t} (1 - b_s), c_0 = 0; in f64.
 * Every schedule ends with b_T = 1 (x_T exactly uniform, prior term 0). Mirrors crate/src/schedule.rs:
 * - paper:  b_t = 1/(T - t + 1), c_t = t/T (closed form);
 * - linear: b_t = β_1 + (β_end - β_1)(t - 1)/(T - 2) for t < T, β_1 = 0.1/T, β_end = 20/T
 *           (each capped at 1), b_T = 1;
 * - cosine: 1 - c_t = h(t)/h(0), h(t) = cos²(π/2 · (t/T + s)/(1 + s)), s = 0.008;
 *           b_t = 1 - (1 - c_t)/(1 - c_{t-1}) for t < T, b_T = 1.
 * For linear and cosine, c_t is accumulated from the b_t by the product.
 * The posterior q(x_{t-1} | x_t, x0) takes four values per t; they are tabulated once.
 */
import { negativeEntropy, posterior } from './bernoulli.js';

export type ScheduleKind = 'paper' | 'linear' | 'cosine';

/** Offset s of the cosine schedule (Nichol & Dhariwal 2021). */
export const COSINE_OFFSET = 0.008;

export interface Schedule {
  kind: ScheduleKind;
  T: number;
  /** b[t], t = 0..T (b[0] = 0, unused). */
  b: Float64Array;
  /** c[t], t = 0..T (c[0] = 0). */
  c: Float64Array;
  /** posterior q1 = q(x_{t-1}=1 | x_t, x0) at index 4t + 2·x0 + x_t, t = 1..T. */
  q1: Float64Array;
  /** The other half q0 = q(x_{t-1}=0 | x_t, x0), computed without cancellation, same indexing. */
  q0: Float64Array;
  /** q1 ln q1 + q0 ln q0 (nats), same indexing. */
  negativeEntropy: Float64Array;
}

export function makeSchedule(kind: ScheduleKind, T: number): Schedule {
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`T must be a positive integer, got ${T}`);
  const b = new Float64Array(T + 1);
  const c = new Float64Array(T + 1);
  if (kind === 'paper') {
    for (let t = 1; t <= T; t++) {
      b[t] = 1 / (T - t + 1); // b_t = 1/(T - t + 1)
      c[t] = t / T; // c_t = t/T
    }
  } else if (kind === 'linear') {
    const betaFirst = Math.min(0.1 / T, 1);
    const betaEnd = Math.min(20 / T, 1);
    for (let t = 1; t < T; t++) {
      const fraction = T > 2 ? (t - 1) / (T - 2) : 0;
      b[t] = Math.min(betaFirst + (betaEnd - betaFirst) * fraction, 1); // linear in t
    }
    b[T] = 1;
    accumulate(b, c);
  } else if (kind === 'cosine') {
    const kept = (t: number) => {
      const angle = ((Math.PI / 2) * (t / T + COSINE_OFFSET)) / (1 + COSINE_OFFSET);
      return Math.cos(angle) * Math.cos(angle);
    };
    for (let t = 1; t < T; t++) b[t] = 1 - kept(t) / kept(t - 1); // b_t = 1 - (1-c_t)/(1-c_{t-1}), 1-c_t = h(t)/h(0)
    b[T] = 1;
    accumulate(b, c);
  } else {
    throw new Error(`unknown schedule '${kind as string}'`);
  }
  const q1 = new Float64Array(4 * (T + 1));
  const q0 = new Float64Array(4 * (T + 1));
  const entropy = new Float64Array(4 * (T + 1));
  for (let t = 1; t <= T; t++) {
    for (let x0 = 0; x0 < 2; x0++) {
      for (let xt = 0; xt < 2; xt++) {
        const k = 4 * t + 2 * x0 + xt;
        [q1[k], q0[k]] = posterior(x0, xt, b[t], c[t - 1]);
        entropy[k] = negativeEntropy(q1[k], q0[k]);
      }
    }
  }
  return { kind, T, b, c, q1, q0, negativeEntropy: entropy };
}

export function paperSchedule(T: number): Schedule {
  return makeSchedule('paper', T);
}

/** Index of the tabulated posterior for step t and bits x0, x_t. */
export function posteriorIndex(t: number, x0: number, xt: number): number {
  return 4 * t + 2 * x0 + xt;
}

/** c_t = 1 - prod_{s<=t} (1 - b_s), c_0 = 0. */
function accumulate(b: Float64Array, c: Float64Array): void {
  let kept = 1;
  c[0] = 0;
  for (let t = 1; t < b.length; t++) {
    kept *= 1 - b[t];
    c[t] = 1 - kept;
  }
}
