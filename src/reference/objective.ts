/**
 * The training objective in plain TypeScript (DESIGN.md §2), mirroring crate/src/objective.rs:
 * the bound's per-bit terms and their gradient w.r.t. the logits, the terms for given
 * (x0, x_t, t) rows (`lossAndGradientGiven`), the full-sum and sampled-t estimators for a batch
 * with the same noise draws as the Rust core, and AdamW — the benchmark baseline and a test
 * oracle.
 *
 * Term of a row at step t (bits, summed over its L bits): KL( q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t) ).
 * At t = 1 it is -log2 p(x0 | x1) (the posterior at t = 1 is x0 itself, c_0 = 0). Per sequence
 * the prior term KL( q(x_T | x0) || B(0.5) ) is added (0 for every schedule here: b_T = 1).
 *
 * Reverse kernel per bit from the logit z:
 * - direct: f = sigmoid(z); KL = q1 ln q1 + q0 ln q0 + CE(q, z); dKL/dz = f - q1.
 * - x0: g = sigmoid(z), h = sigmoid(-z); A = post(x0=1), B = post(x0=0);
 *   f1 = g·A1 + h·B1, f0 = g·A0 + h·B0; with D = A1 - B1:
 *   x0 = 1: dKL/dz = -g h² D² / (f1 f0);  x0 = 0: dKL/dz = g² h D² / (f1 f0).
 *   At t = 1 the x0 kernel is the direct one (A = (1,0), B = (0,1)), and the direct formulas are used.
 */
import { BITS_PER_NAT, kl, marginal } from './bernoulli.js';
import type { PaperNetwork } from './paper-network.js';
import { Rng } from './rng.js';
import { posteriorIndex, type Schedule } from './schedule.js';

export type Parameterisation = 'direct' | 'x0';

/**
 * (KL in nats, dKL/dz) of one bit at step t with bits x0, x_t and logit z, written into
 * out[0], out[1] (no allocation: this is the objective's inner loop).
 */
export function bitTermInto(out: Float64Array, parameterisation: Parameterisation, schedule: Schedule, t: number, x0: number, xt: number, z: number): void {
  const k = posteriorIndex(t, x0, xt); // target q(x_{t-1} | x_t, x0)
  const q1 = schedule.q1[k];
  const q0 = schedule.q0[k];
  const e = Math.exp(-Math.abs(z));
  const logNormaliser = Math.log1p(e);
  const g = z >= 0 ? 1 / (1 + e) : e / (1 + e); // sigmoid(z)
  const h = z >= 0 ? e / (1 + e) : 1 / (1 + e); // sigmoid(-z)
  if (parameterisation === 'direct' || t === 1) {
    // KL(q || sigmoid(z)) = q1 ln q1 + q0 ln q0 + CE, CE = ln(1 + e^{-|z|}) + (z >= 0 ? q0 z : -q1 z)
    const ce = z >= 0 ? logNormaliser + (q0 > 0 ? q0 * z : 0) : logNormaliser - (q1 > 0 ? q1 * z : 0);
    out[0] = Math.max(0, schedule.negativeEntropy[k] + ce);
    out[1] = g - q1; // d/dz = sigmoid(z) - q1
    return;
  }
  const a = posteriorIndex(t, 1, xt); // post(x0 = 1)
  const b = posteriorIndex(t, 0, xt); // post(x0 = 0)
  const f1 = g * schedule.q1[a] + h * schedule.q1[b]; // f = g·post(x0=1) + (1-g)·post(x0=0)
  const f0 = g * schedule.q0[a] + h * schedule.q0[b];
  const d = schedule.q1[a] - schedule.q1[b];
  const common = (g * h * d * d) / (f1 * f0);
  out[0] = kl(q1, q0, f1, f0);
  out[1] = x0 === 1 ? -h * common : g * common;
}

/** (KL in nats, dKL/dz) of one bit at step t with bits x0, x_t and logit z. */
export function bitTerm(parameterisation: Parameterisation, schedule: Schedule, t: number, x0: number, xt: number, z: number): [number, number] {
  const out = new Float64Array(2);
  bitTermInto(out, parameterisation, schedule, t, x0, xt, z);
  return [out[0], out[1]];
}

/** The reverse kernel f = p(x_{t-1} = 1 | x_t) of one bit from its logit. */
export function reverseProbability(parameterisation: Parameterisation, schedule: Schedule, t: number, xt: number, z: number): number {
  const e = Math.exp(-Math.abs(z));
  const g = z >= 0 ? 1 / (1 + e) : e / (1 + e); // sigmoid(z)
  if (parameterisation === 'direct' || t === 1) return g;
  const h = z >= 0 ? e / (1 + e) : 1 / (1 + e); // sigmoid(-z)
  return g * schedule.q1[posteriorIndex(t, 1, xt)] + h * schedule.q1[posteriorIndex(t, 0, xt)];
}

/** KL( q(x_T | x0) || B(0.5) ) in bits for one sequence (0 when c_T = 1). */
export function priorTermBits(schedule: Schedule, x0: ArrayLike<number>, offset: number, length: number): number {
  const cLast = schedule.c[schedule.T];
  if (cLast === 1) return 0;
  let nats = 0;
  for (let i = 0; i < length; i++) {
    const bit = x0[offset + i];
    nats += kl(marginal(bit, cLast), marginal(1 - bit, cLast), 0.5, 0.5);
  }
  return nats * BITS_PER_NAT;
}

/**
 * For rows (x0, x_t, t) and their logits: writes each row's term (bits) into rowTerms and SETS
 * dlogits[r, j] = rowWeights[r] · d(term_r)/d(logit[r, j]) (bits). `rowWeights` null means 1.
 */
export function termsAndDlogits(
  parameterisation: Parameterisation,
  schedule: Schedule,
  length: number,
  x0: ArrayLike<number>,
  xt: ArrayLike<number>,
  t: ArrayLike<number>,
  rows: number,
  logits: Float32Array,
  rowWeights: Float64Array | null,
  dlogits: Float32Array,
  rowTerms: Float64Array,
): void {
  const term = new Float64Array(2);
  for (let r = 0; r < rows; r++) {
    const tr = t[r];
    const scale = (rowWeights ? rowWeights[r] : 1) * BITS_PER_NAT;
    let nats = 0;
    for (let j = r * length; j < (r + 1) * length; j++) {
      bitTermInto(term, parameterisation, schedule, tr, x0[j], xt[j], logits[j]);
      nats += term[0];
      dlogits[j] = scale * term[1];
    }
    rowTerms[r] = nats * BITS_PER_NAT;
  }
}

/**
 * The bound's terms for given rows (x0, x_t, t) — no noise drawn — and their gradient: ADDS
 * d(sum over rows of the terms)/dθ into grad. Mirrors `loss_and_gradient_given` in objective.rs.
 */
export function lossAndGradientGiven(
  network: PaperNetwork,
  parameterisation: Parameterisation,
  schedule: Schedule,
  x0: ArrayLike<number>,
  xt: ArrayLike<number>,
  t: ArrayLike<number>,
  grad: Float32Array,
): { rowLossBits: Float64Array; dlogits: Float32Array } {
  const rows = t.length;
  const L = network.shape.length;
  if (x0.length !== rows * L || xt.length !== rows * L) throw new RangeError('x0 and xt must hold rows × L bits');
  const logits = new Float32Array(rows * L);
  const dlogits = new Float32Array(rows * L);
  const rowLossBits = new Float64Array(rows);
  network.forward(xt, t, rows, logits);
  termsAndDlogits(parameterisation, schedule, L, x0, xt, t, rows, logits, null, dlogits, rowLossBits);
  network.backward(dlogits, grad);
  return { rowLossBits, dlogits };
}

/** The sum over rows of the terms only (bits), e.g. for finite differences. */
export function lossGiven(
  network: PaperNetwork,
  parameterisation: Parameterisation,
  schedule: Schedule,
  x0: ArrayLike<number>,
  xt: ArrayLike<number>,
  t: ArrayLike<number>,
): number {
  const rows = t.length;
  const L = network.shape.length;
  const logits = new Float32Array(rows * L);
  const rowTerms = new Float64Array(rows);
  network.forward(xt, t, rows, logits);
  termsAndDlogits(parameterisation, schedule, L, x0, xt, t, rows, logits, null, new Float32Array(rows * L), rowTerms);
  return rowTerms.reduce((a, b) => a + b, 0);
}

/** x_t ~ q(x_t | x0) for one row: bit j is 1 iff uniform_f32 < f32(x0_j (1 - c_t) + c_t/2), j = 0..L. */
export function drawNoisyRow(
  rng: Rng,
  x0: ArrayLike<number>,
  x0Offset: number,
  thresholds: [number, number],
  out: Uint8Array,
  outOffset: number,
  length: number,
): void {
  for (let j = 0; j < length; j++) out[outOffset + j] = rng.bernoulli(thresholds[x0[x0Offset + j]]) ? 1 : 0;
}

/** (q(x_t=1 | x0=0), q(x_t=1 | x0=1)) rounded to f32: the thresholds of drawNoisyRow. */
export function marginalThresholds(schedule: Schedule, t: number): [number, number] {
  const c = schedule.c[t];
  return [Math.fround(marginal(0, c)), Math.fround(marginal(1, c))];
}

export type ObjectiveKind = 'full' | 'sampled';

/**
 * One estimate of the bound for every row of a batch and the gradient of their SUM (mirrors
 * `estimate_bound`). Row r is example exampleOffset + r and draws from
 * Rng.forExample(seed, step, exampleOffset + r), in this order:
 * - full: for t = 1..T: for j = 0..L: x_t[j] = bernoulli(q(x_t=1 | x0_j));
 * - sampled: t = 1 + below(T), then the L bits as above; the term is weighted by T.
 * Returns the sum over rows of (prior term + estimated sum of terms), bits; ADDS its gradient
 * into grad. The full sum works one t at a time over all rows (one readout matrix per pass).
 * `stopAfter(t)` (full only), if given, is asked after each t; true ends the sum there (the
 * bench uses it to time part of a long step).
 */
export function estimateBound(
  network: PaperNetwork,
  parameterisation: Parameterisation,
  schedule: Schedule,
  kind: ObjectiveKind,
  x0: Uint8Array,
  rows: number,
  seed: number | bigint,
  step: number | bigint,
  exampleOffset: number,
  grad: Float32Array,
  stopAfter?: (t: number) => boolean,
): number {
  const L = network.shape.length;
  const T = schedule.T;
  if (x0.length !== rows * L) throw new RangeError('x0 must hold rows × L bits');
  const rngs = Array.from({ length: rows }, (_, r) => Rng.forExample(seed, step, exampleOffset + r));
  const xt = new Uint8Array(rows * L);
  const t = new Int32Array(rows);
  const logits = new Float32Array(rows * L);
  const dlogits = new Float32Array(rows * L);
  const rowTerms = new Float64Array(rows);
  const rowWeights = new Float64Array(rows);
  let total = 0;
  for (let r = 0; r < rows; r++) total += priorTermBits(schedule, x0, r * L, L);
  const pass = () => {
    network.forward(xt, t, rows, logits);
    termsAndDlogits(parameterisation, schedule, L, x0, xt, t, rows, logits, rowWeights, dlogits, rowTerms);
    network.backward(dlogits, grad);
    for (let r = 0; r < rows; r++) total += rowWeights[r] * rowTerms[r];
  };
  if (kind === 'full') {
    rowWeights.fill(1);
    for (let time = 1; time <= T; time++) {
      const thresholds = marginalThresholds(schedule, time);
      for (let r = 0; r < rows; r++) drawNoisyRow(rngs[r], x0, r * L, thresholds, xt, r * L, L);
      t.fill(time);
      pass();
      if (stopAfter?.(time)) break;
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const time = 1 + rngs[r].below(T);
      t[r] = time;
      rowWeights[r] = T; // weight 1/p_t = T
      drawNoisyRow(rngs[r], x0, r * L, marginalThresholds(schedule, time), xt, r * L, L);
    }
    pass();
  }
  return total;
}

export interface AdamWSettings {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /** Global-norm clipping threshold (0 = off). */
  clipNorm: number;
}

export const defaultAdamW: AdamWSettings = { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, clipNorm: 1 };

/** AdamW (decoupled weight decay, bias-corrected moments) with global-norm gradient clipping. */
export class AdamW {
  readonly settings: AdamWSettings;
  readonly m: Float32Array;
  readonly v: Float32Array;
  private readonly decayMask: Uint8Array;
  step = 0;

  constructor(network: PaperNetwork, settings: AdamWSettings) {
    this.settings = settings;
    const n = network.parameters.length;
    this.m = new Float32Array(n);
    this.v = new Float32Array(n);
    this.decayMask = new Uint8Array(n);
    for (const g of network.layout) {
      if (g.decay) this.decayMask.fill(1, g.offset, g.offset + g.shape.reduce((a, b) => a * b, 1));
    }
  }

  /** Clips grad (by its global norm) and updates params. Returns the norm before clipping. */
  update(params: Float32Array, grad: Float32Array): number {
    const { lr, beta1, beta2, epsilon, weightDecay, clipNorm } = this.settings;
    let sumSquares = 0;
    for (let i = 0; i < grad.length; i++) sumSquares += grad[i] * grad[i];
    const norm = Math.sqrt(sumSquares);
    const clipScale = clipNorm > 0 && norm > clipNorm ? clipNorm / norm : 1; // g <- g·min(1, clip/|g|)
    this.step += 1;
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i] * clipScale;
      this.m[i] = beta1 * this.m[i] + (1 - beta1) * g; // m = β1 m + (1-β1) g
      this.v[i] = beta2 * this.v[i] + (1 - beta2) * g * g; // v = β2 v + (1-β2) g²
      const mHat = this.m[i] / correction1;
      const vHat = this.v[i] / correction2;
      // θ <- θ - lr (m̂ / (√v̂ + ε) + λ θ [weights only])
      params[i] -= lr * (mHat / (Math.sqrt(vHat) + epsilon) + (this.decayMask[i] ? weightDecay * params[i] : 0));
    }
    return norm;
  }
}

/** The reference's training loop: one step = the full sum (or sampled t) over a batch + AdamW on the batch mean. */
export class ReferenceTrainer {
  readonly network: PaperNetwork;
  readonly schedule: Schedule;
  readonly parameterisation: Parameterisation;
  readonly objective: ObjectiveKind;
  readonly optimiser: AdamW;
  readonly seed: number | bigint;
  private readonly grad: Float32Array;
  step = 0;

  constructor(
    network: PaperNetwork,
    schedule: Schedule,
    parameterisation: Parameterisation,
    seed: number | bigint,
    settings: AdamWSettings = defaultAdamW,
    objective: ObjectiveKind = 'full',
  ) {
    this.network = network;
    this.schedule = schedule;
    this.parameterisation = parameterisation;
    this.objective = objective;
    this.seed = seed;
    this.optimiser = new AdamW(network, settings);
    this.grad = new Float32Array(network.parameters.length);
  }

  /** One step (stopAfter: see estimateBound). Returns the batch-mean bound estimate and the gradient norm. */
  trainStep(x0: Uint8Array, rows: number, stopAfter?: (t: number) => boolean): { lossBits: number; gradNorm: number } {
    this.grad.fill(0);
    const sum = estimateBound(this.network, this.parameterisation, this.schedule, this.objective, x0, rows, this.seed, this.step, 0, this.grad, stopAfter);
    for (let i = 0; i < this.grad.length; i++) this.grad[i] /= rows; // gradient of the batch mean
    const gradNorm = this.optimiser.update(this.network.parameters, this.grad);
    this.step += 1;
    return { lossBits: sum / rows, gradNorm };
  }
}
