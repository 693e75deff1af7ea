// The plain-TypeScript reference (src/reference/): schedules, posterior, KL, the paper network,
// the objective (finite-difference gradient checks for both parameterisations), AdamW, sampling.
import { describe, expect, it } from 'vitest';
import { kl, klFromLogit, klProbabilities, marginal, negativeEntropy, posterior } from '../src/reference/bernoulli.js';
import {
  AdamW,
  bitTerm,
  estimateBound,
  lossAndGradientGiven,
  lossGiven,
  marginalThresholds,
  priorTermBits,
  ReferenceTrainer,
  type Parameterisation,
} from '../src/reference/objective.js';
import { PaperNetwork, paperLayout, parameterCount } from '../src/reference/paper-network.js';
import { Rng } from '../src/reference/rng.js';
import { sample } from '../src/reference/sampler.js';
import { COSINE_OFFSET, makeSchedule, paperSchedule, posteriorIndex, type ScheduleKind } from '../src/reference/schedule.js';

/** The textbook KL, for comparison where it is accurate. */
function klNaive(q: number, p: number): number {
  const term = (u: number, v: number) => (u === 0 ? 0 : u * Math.log(u / v));
  return term(q, p) + term(1 - q, 1 - p);
}

describe('reference schedules', () => {
  it('paper: b_t = 1/(T-t+1) and c_t = t/T, which equals 1 - prod(1 - b_s)', () => {
    for (const T of [1, 2, 7, 100, 2000]) {
      const s = paperSchedule(T);
      let kept = 1;
      for (let t = 1; t <= T; t++) {
        kept *= 1 - s.b[t];
        expect(Math.abs(1 - s.c[t] - kept)).toBeLessThan(1e-12);
        expect(s.c[t]).toBe(t / T);
        expect(s.b[t]).toBe(1 / (T - t + 1));
      }
    }
  });

  it('every schedule ends uniform (b_T = c_T = 1), is monotone and chains 1 - c_t = (1 - c_{t-1})(1 - b_t)', () => {
    for (const kind of ['paper', 'linear', 'cosine'] as ScheduleKind[]) {
      for (const T of [1, 2, 3, 10, 100, 2000]) {
        const s = makeSchedule(kind, T);
        expect(s.b[T]).toBe(1);
        expect(s.c[T]).toBe(1);
        for (let t = 1; t <= T; t++) {
          expect(s.b[t] > 0 && s.b[t] <= 1, `${kind} T=${T} t=${t} b=${s.b[t]}`).toBe(true);
          expect(s.c[t]).toBeGreaterThanOrEqual(s.c[t - 1]);
          expect(Math.abs(1 - s.c[t] - (1 - s.c[t - 1]) * (1 - s.b[t]))).toBeLessThan(1e-12);
        }
      }
    }
  });

  it('cosine follows its closed form; linear runs from 0.1/T to 20/T', () => {
    const T = 50;
    const cosine = makeSchedule('cosine', T);
    const h = (t: number) => Math.cos(((t / T + COSINE_OFFSET) / (1 + COSINE_OFFSET)) * (Math.PI / 2)) ** 2;
    for (let t = 0; t <= T; t++) expect(Math.abs(1 - cosine.c[t] - h(t) / h(0))).toBeLessThan(1e-12);
    const linear = makeSchedule('linear', 1000);
    expect(linear.b[1]).toBeCloseTo(1e-4, 15);
    expect(linear.b[999]).toBeCloseTo(0.02, 15);
    expect(linear.b[500] - linear.b[499]).toBeCloseTo(linear.b[2] - linear.b[1], 15);
  });

  it('the tabulated posterior is the posterior function, and x0 itself at t = 1', () => {
    const s = paperSchedule(10);
    for (let t = 1; t <= 10; t++) {
      for (const x0 of [0, 1]) {
        for (const xt of [0, 1]) {
          const [q1, q0] = posterior(x0, xt, s.b[t], s.c[t - 1]);
          expect(s.q1[posteriorIndex(t, x0, xt)]).toBe(q1);
          expect(s.q0[posteriorIndex(t, x0, xt)]).toBe(q0);
          if (t === 1) expect([q1, q0]).toEqual(x0 ? [1, 0] : [0, 1]);
        }
      }
    }
  });
});

describe('reference posterior and KL', () => {
  it('the posterior is Bayes rule over x_{t-1} (by enumeration), normalised, and the marginals chain', () => {
    const s = paperSchedule(10);
    for (let t = 1; t <= 10; t++) {
      for (const x0 of [0, 1]) {
        const prior1 = marginal(x0, s.c[t - 1]); // q(x_{t-1}=1 | x0)
        const flip = (xPrev: number) => marginal(xPrev, s.b[t]); // q(x_t=1 | x_{t-1})
        expect(prior1 * flip(1) + (1 - prior1) * flip(0)).toBeCloseTo(marginal(x0, s.c[t]), 14);
        for (const xt of [0, 1]) {
          const joint = (xPrev: number) => (xPrev ? prior1 : 1 - prior1) * (xt ? flip(xPrev) : 1 - flip(xPrev));
          const [q1, q0] = posterior(x0, xt, s.b[t], s.c[t - 1]);
          expect(q1).toBeCloseTo(joint(1) / (joint(1) + joint(0)), 14);
          expect(Math.abs(q1 + q0 - 1)).toBeLessThanOrEqual(2 * Number.EPSILON);
        }
      }
    }
  });

  it('posterior limits: b_t -> 0 keeps x_t; c_{t-1} = 1 gives the forward flip; c_{t-1} = 0 gives x0', () => {
    for (const x0 of [0, 1]) {
      for (const xt of [0, 1]) {
        for (const c of [0.1, 0.5, 1]) expect(Math.abs(posterior(x0, xt, 1e-12, c)[0] - xt)).toBeLessThan(1e-10);
        for (const b of [0.01, 0.3, 1]) {
          const [q1, q0] = posterior(x0, xt, b, 1);
          expect(q1).toBeCloseTo(xt ? 1 - b / 2 : b / 2, 15);
          expect(q0).toBeCloseTo(xt ? b / 2 : 1 - b / 2, 15);
          expect(posterior(x0, xt, b, 0)).toEqual(x0 ? [1, 0] : [0, 1]);
        }
      }
    }
  });

  it('KL >= 0, exactly 0 at equality, agrees with the textbook formula, and the logit form agrees', () => {
    const points = [0, 1e-12, 1e-6, 0.01, 0.2, 0.5, 0.77, 0.999, 1 - 1e-9, 1];
    for (const q of points) {
      expect(klProbabilities(q, q)).toBe(0);
      for (const p of points) {
        const value = klProbabilities(q, p);
        expect(value).toBeGreaterThanOrEqual(0);
        if (p > 0 && p < 1) {
          const naive = klNaive(q, p);
          expect(Math.abs(value - naive)).toBeLessThanOrEqual(1e-12 * Math.max(naive, 1));
          const z = Math.log(p / (1 - p));
          expect(Math.abs(klFromLogit(q, 1 - q, z) - naive)).toBeLessThanOrEqual(1e-9 * Math.max(naive, 1));
        }
      }
    }
    expect(klProbabilities(0.3, 0)).toBe(Infinity);
    expect(kl(0, 1, 0, 1)).toBe(0);
  });

  it('KL is accurate when p ≈ q: KL(q || q + d) = d²/(2q(1-q)) to leading order', () => {
    for (const q of [1e-8, 0.3, 0.5, 0.9]) {
      const d = q * 1e-7;
      const expected = (d * d) / (2 * q * (1 - q));
      expect(Math.abs(klProbabilities(q, q + d) / expected - 1)).toBeLessThan(1e-6);
    }
  });

  it('KL from a logit is finite at extreme logits (ln sigmoid(z) is exact)', () => {
    expect(klFromLogit(1, 0, -1000)).toBe(1000);
    expect(klFromLogit(0, 1, 1000)).toBe(1000);
    expect(klFromLogit(1, 0, 1000)).toBe(0);
    expect(klFromLogit(0.5, 0.5, 0)).toBeLessThan(1e-16);
    expect(negativeEntropy(0.5, 0.5)).toBeCloseTo(-Math.LN2, 15);
  });

  it('the prior term is 0 for schedules with b_T = 1', () => {
    expect(priorTermBits(paperSchedule(5), [1, 0, 1], 0, 3)).toBe(0);
    expect(priorTermBits(makeSchedule('cosine', 5), [1, 0, 1], 0, 3)).toBe(0);
  });

  for (const parameterisation of ['direct', 'x0'] as Parameterisation[]) {
    it(`bit terms (${parameterisation}): zero at the exact posterior, dKL/dz matches finite differences`, () => {
      const s = paperSchedule(6);
      for (let t = 1; t <= 6; t++) {
        for (const x0 of [0, 1]) {
          for (const xt of [0, 1]) {
            for (const z of [-4, -0.7, 0, 0.3, 2.5]) {
              const h = 1e-6;
              const numeric = (bitTerm(parameterisation, s, t, x0, xt, z + h)[0] - bitTerm(parameterisation, s, t, x0, xt, z - h)[0]) / (2 * h);
              const analytic = bitTerm(parameterisation, s, t, x0, xt, z)[1];
              expect(Math.abs(numeric - analytic), `t=${t} x0=${x0} xt=${xt} z=${z}`).toBeLessThan(1e-7);
            }
            // the exact kernel: direct z = logit(q1), x0 z = ±∞ (g = x0); terms vanish
            const q1 = s.q1[posteriorIndex(t, x0, xt)];
            const zExact = parameterisation === 'direct' && t > 1 ? Math.log(q1 / (1 - q1)) : x0 ? 800 : -800;
            expect(bitTerm(parameterisation, s, t, x0, xt, zExact)[0]).toBeLessThan(1e-12);
          }
        }
      }
    });
  }
});

describe('reference paper network', () => {
  const shape = { length: 5, hidden: 4, timesteps: 6 };

  it('lays out the named tensors contiguously in the Rust order (any number of layers)', () => {
    expect(paperLayout(shape).map((g) => [g.name, g.shape])).toEqual([
      ['shared.0.weight', [5, 4]],
      ['shared.0.bias', [4]],
      ['shared.1.weight', [4, 4]],
      ['shared.1.bias', [4]],
      ['readout.weight', [6, 4, 5]],
      ['readout.bias', [6, 5]],
    ]);
    expect(parameterCount(paperLayout(shape))).toBe(20 + 4 + 16 + 4 + 120 + 30);
    expect(paperLayout({ ...shape, layers: 3 }).map((g) => g.name)).toEqual([
      'shared.0.weight',
      'shared.0.bias',
      'shared.1.weight',
      'shared.1.bias',
      'shared.2.weight',
      'shared.2.bias',
      'readout.weight',
      'readout.bias',
    ]);
    expect(parameterCount(paperLayout({ length: 20, hidden: 50, timesteps: 2000 }))).toBe(1000 + 50 + 2500 + 50 + 2_000_000 + 40_000);
  });

  it('initialisation: He-normal shared weights, sqrt(1/H) readouts, zero biases, deterministic', () => {
    const a = new PaperNetwork({ length: 20, hidden: 50, timesteps: 100 }, new Rng(9));
    expect(new PaperNetwork({ length: 20, hidden: 50, timesteps: 100 }, new Rng(9)).parameters).toEqual(a.parameters);
    const variance = (v: Float32Array) => v.reduce((s, x) => s + x * x, 0) / v.length;
    expect(Math.abs(variance(a.tensor('shared.0.weight')) - 2 / 20)).toBeLessThan(0.015);
    expect(Math.abs(variance(a.tensor('readout.weight')) - 1 / 50)).toBeLessThan(0.001);
    expect(a.tensor('shared.1.bias').every((v) => v === 0)).toBe(true);
    expect(a.tensor('readout.bias').every((v) => v === 0)).toBe(true);
  });

  it('forward equals a direct evaluation of relu(relu(x W0 + b0) W1 + b1) R_t + r_t, row by row', () => {
    const net = new PaperNetwork(shape, new Rng(1));
    const p = net.parameters;
    for (let i = 0; i < p.length; i++) if (p[i] === 0) p[i] = 0.1 * Math.sin(i); // non-zero biases
    const [W0, b0, W1, b1, R, rb] = ['shared.0.weight', 'shared.0.bias', 'shared.1.weight', 'shared.1.bias', 'readout.weight', 'readout.bias'].map((n) =>
      net.tensor(n),
    );
    const xs = [
      [1, 0, 1, 1, 0],
      [0, 0, 0, 1, 1],
    ];
    const ts = [4, 1];
    const logits = new Float32Array(10);
    net.forward(xs.flat(), ts, 2, logits);
    for (let r = 0; r < 2; r++) {
      const x = xs[r];
      const t = ts[r];
      const h1 = [0, 1, 2, 3].map((j) => Math.max(0, b0[j] + x.reduce((s, xk, k) => s + xk * W0[k * 4 + j], 0)));
      const h2 = [0, 1, 2, 3].map((j) => Math.max(0, b1[j] + h1.reduce((s, hk, k) => s + hk * W1[k * 4 + j], 0)));
      for (let i = 0; i < 5; i++) {
        const expected = rb[(t - 1) * 5 + i] + h2.reduce((s, hk, k) => s + hk * R[((t - 1) * 4 + k) * 5 + i], 0);
        expect(logits[r * 5 + i]).toBeCloseTo(expected, 5);
      }
    }
  });

  /**
   * Central differences of `loss` for every parameter against the analytic gradient. The loss is
   * smooth except at ReLU kinks; a parameter whose difference disagrees at step 3e-3 is retried
   * at 3e-4 (a kink is then crossed 10× less often; the tolerance grows with the f32 rounding).
   */
  function checkGradient(net: PaperNetwork, loss: () => number, analytic: Float32Array): void {
    const p = net.parameters;
    let nonZero = 0;
    for (let i = 0; i < p.length; i++) {
      const saved = p[i];
      let numeric = NaN;
      let ok = false;
      for (const eps of [3e-3, 3e-4]) {
        p[i] = saved + eps;
        const up = loss();
        p[i] = saved - eps;
        const down = loss();
        p[i] = saved;
        numeric = (up - down) / (Math.fround(saved + eps) - Math.fround(saved - eps));
        ok = Math.abs(numeric - analytic[i]) < (2e-3 + 1e-2 * Math.abs(numeric)) * (3e-3 / eps);
        if (ok) break;
      }
      expect(ok, `parameter ${i}: numeric ${numeric}, analytic ${analytic[i]}`).toBe(true);
      if (analytic[i] !== 0) nonZero++;
    }
    expect(nonZero).toBeGreaterThan(p.length / 3); // the check exercised most parameters
  }

  /** A network with every parameter uniform(-0.5, 0.5): biases off 0, so no ReLU sits on its kink. */
  function randomNetwork(seed: number, layers = 2): PaperNetwork {
    const net = new PaperNetwork({ ...shape, layers });
    const rng = new Rng(seed);
    for (let i = 0; i < net.parameters.length; i++) net.parameters[i] = rng.uniformF32() - 0.5;
    return net;
  }

  for (const parameterisation of ['direct', 'x0'] as Parameterisation[]) {
    it(`gradient of the given-rows loss matches finite differences (${parameterisation}, mixed t, 3 layers)`, () => {
      const s = paperSchedule(shape.timesteps);
      const net = randomNetwork(11, 3);
      const rng = new Rng(5);
      const rows = 8;
      const x0 = Uint8Array.from({ length: rows * 5 }, () => (rng.bernoulli(0.5) ? 1 : 0));
      const xt = Uint8Array.from({ length: rows * 5 }, () => (rng.bernoulli(0.5) ? 1 : 0));
      const t = Int32Array.from({ length: rows }, (_, r) => 1 + (r % shape.timesteps));
      const grad = new Float32Array(net.parameters.length);
      const { rowLossBits } = lossAndGradientGiven(net, parameterisation, s, x0, xt, t, grad);
      expect(rowLossBits.reduce((a, b) => a + b, 0)).toBeCloseTo(lossGiven(net, parameterisation, s, x0, xt, t), 9);
      checkGradient(net, () => lossGiven(net, parameterisation, s, x0, xt, t), grad);
    });

    it(`gradient of the full-sum estimate matches finite differences (${parameterisation})`, () => {
      const s = paperSchedule(shape.timesteps);
      const net = randomNetwork(12);
      const rows = 3;
      const x0 = Uint8Array.from([1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0]);
      const grad = new Float32Array(net.parameters.length);
      const estimate = () => estimateBound(net, parameterisation, s, 'full', x0, rows, 9, 4, 0, new Float32Array(net.parameters.length));
      expect(estimateBound(net, parameterisation, s, 'full', x0, rows, 9, 4, 0, grad)).toBeGreaterThan(0);
      checkGradient(net, estimate, grad);
    });
  }

  it('the full sum is the sum over rows and t of the given-rows terms, with the documented draws', () => {
    const s = paperSchedule(shape.timesteps);
    const net = randomNetwork(3);
    const x0 = Uint8Array.from([1, 0, 0, 1, 0, 0, 1, 0, 0, 1]);
    const full = estimateBound(net, 'direct', s, 'full', x0, 2, 1, 7, 5, new Float32Array(net.parameters.length));
    let sum = 0;
    for (let r = 0; r < 2; r++) {
      const rng = Rng.forExample(1, 7, 5 + r); // example offset 5
      for (let t = 1; t <= shape.timesteps; t++) {
        const [p0, p1] = marginalThresholds(s, t);
        const xt = Uint8Array.from({ length: 5 }, (_, i) => (rng.uniformF32() < (x0[r * 5 + i] ? p1 : p0) ? 1 : 0));
        sum += lossGiven(net, 'direct', s, x0.subarray(r * 5, r * 5 + 5), xt, [t]);
      }
    }
    expect(full).toBeCloseTo(sum, 9);
  });

  it('the sampled estimator is unbiased for the full sum (mean over many seeds)', () => {
    const s = paperSchedule(shape.timesteps);
    const net = randomNetwork(4);
    const x0 = Uint8Array.from([1, 0, 0, 1, 0]);
    const grad = new Float32Array(net.parameters.length);
    const n = 4000;
    let full = 0;
    let sampled = 0;
    let sampledSquares = 0;
    for (let seed = 0; seed < n; seed++) {
      full += estimateBound(net, 'direct', s, 'full', x0, 1, seed, 0, 0, grad) / n;
      const value = estimateBound(net, 'direct', s, 'sampled', x0, 1, seed, 0, 0, grad);
      sampled += value / n;
      sampledSquares += (value * value) / n;
    }
    const standardError = Math.sqrt((sampledSquares - sampled * sampled) / n);
    expect(Math.abs(sampled - full)).toBeLessThan(4 * standardError);
  });
});

describe('reference training and sampling', () => {
  it('AdamW: the first step moves each parameter by lr·sign(g) (bias-corrected), decay on weights only', () => {
    const net = new PaperNetwork({ length: 2, hidden: 2, timesteps: 1 });
    net.parameters.fill(1);
    const opt = new AdamW(net, { lr: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 0, weightDecay: 0.5, clipNorm: 0 });
    const grad = Float32Array.from(net.parameters, (_, i) => (i % 2 ? 3 : -2));
    opt.update(net.parameters, grad);
    for (const g of net.layout) {
      const view = net.tensor(g.name);
      for (let i = 0; i < view.length; i++) {
        const gi = grad[g.offset + i];
        expect(view[i]).toBeCloseTo(1 - 0.1 * (Math.sign(gi) + (g.decay ? 0.5 : 0)), 6);
      }
    }
  });

  it('global-norm clipping scales the gradient down to the threshold', () => {
    const net = new PaperNetwork({ length: 1, hidden: 1, timesteps: 1 });
    const opt = new AdamW(net, { lr: 0.1, beta1: 0, beta2: 0, epsilon: 0, weightDecay: 0, clipNorm: 1 });
    const grad = Float32Array.from(net.parameters, () => 10);
    expect(opt.update(net.parameters, grad)).toBeCloseTo(10 * Math.sqrt(grad.length), 4);
    expect(opt.m[0]).toBeCloseTo(1 / Math.sqrt(grad.length), 6); // beta1 = 0: m = the clipped g
  });

  it('training lowers the full-sum bound on a fixed batch', () => {
    const shape = { length: 6, hidden: 8, timesteps: 5 };
    const trainer = new ReferenceTrainer(new PaperNetwork(shape, new Rng(1)), paperSchedule(5), 'x0', 3, {
      lr: 0.02,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
      weightDecay: 0,
      clipNorm: 0,
    });
    const x0 = Uint8Array.from([1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1]);
    const first = trainer.trainStep(x0, 2).lossBits;
    let last = first;
    for (let i = 0; i < 150; i++) last = trainer.trainStep(x0, 2).lossBits;
    expect(last).toBeLessThan(0.5 * first);
  });

  it('sampling is deterministic for a seed, gives bits, and a stop callback ends the chain early', () => {
    const net = new PaperNetwork({ length: 6, hidden: 5, timesteps: 8 }, new Rng(2));
    const s = paperSchedule(8);
    const a = sample(net, 'direct', s, 10, 4);
    expect(Array.from(a).every((v) => v === 0 || v === 1)).toBe(true);
    expect(sample(net, 'direct', s, 10, 4)).toEqual(a);
    expect(sample(net, 'direct', s, 10, 5)).not.toEqual(a);
    const seen: number[] = [];
    sample(net, 'x0', s, 3, 1, (t) => (seen.push(t), t === 6));
    expect(seen).toEqual([8, 7, 6]);
  });
});
