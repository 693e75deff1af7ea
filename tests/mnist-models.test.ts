// The reference models of bench/mnist-models.js on tiny data with known answers: the independent
// Bernoulli's NLL in closed form, EM recovering two separated patterns (NLL = entropy of the mixing
// weights), EM's monotone objective, a one-component mixture equal to the independent model, and the
// digit classifier separating a separable toy set.
import { describe, expect, it } from 'vitest';
import {
  bernoulliMixture,
  bitRowsFromStrings,
  classifierAccuracy,
  classifierLossGradient,
  createDigitClassifier,
  independentBernoulli,
  logSumExp,
  makeRandom,
  parseBitRows,
  scoreDigitSamples,
  trainDigitClassifier,
  // @ts-expect-error plain JavaScript module without type declarations
} from '../bench/mnist-models.js';

interface Rows {
  rows: number;
  length: number;
  bits: Uint8Array;
}

const rows = (lines: string[]): Rows => bitRowsFromStrings(lines);

describe('independent Bernoulli per pixel', () => {
  it('has the closed-form NLL with Laplace smoothing', () => {
    // 4 rows: pixel 0 is on in 3, pixel 1 in 2, pixel 2 in none. α = 1: μ = (c + 1) / (4 + 2).
    const train = rows(['110', '100', '100', '010']);
    const model = independentBernoulli(train, { alpha: 1 });
    [4 / 6, 3 / 6, 1 / 6].forEach((mean, d) => expect(model.mean[d]).toBeCloseTo(mean, 14));
    const val = rows(['111', '000']);
    const nll111 = -(Math.log(4 / 6) + Math.log(3 / 6) + Math.log(1 / 6));
    const nll000 = -(Math.log(2 / 6) + Math.log(3 / 6) + Math.log(5 / 6));
    expect(model.nll(val)).toBeCloseTo((nll111 + nll000) / 2, 12);
  });

  it('reaches the entropy of the data when unsmoothed', () => {
    // Each pixel on in half the rows: NLL = 2 ln 2 per row of 2 pixels.
    const train = rows(['10', '01', '11', '00']);
    expect(independentBernoulli(train, { alpha: 0 }).nll(train)).toBeCloseTo(2 * Math.log(2), 12);
  });
});

describe('Bernoulli mixture by EM', () => {
  const patternA = '1111100000';
  const patternB = '0000011111';
  const separated = rows([...Array(30).fill(patternA), ...Array(10).fill(patternB)]);

  it('recovers two separated patterns and their weights', () => {
    const model = bernoulliMixture(separated, { components: 2, iterations: 30, seed: 3, alpha: 1e-9 });
    const means = Array.from(model.means as Float64Array).map((m) => Math.round(m));
    const found = [means.slice(0, 10).join(''), means.slice(10).join('')].sort();
    expect(found).toEqual([patternA, patternB].sort());
    const weights = Array.from(model.weights as Float64Array).sort();
    expect(weights[0]).toBeCloseTo(0.25, 6);
    expect(weights[1]).toBeCloseTo(0.75, 6);
    // The data are then explained exactly: NLL = entropy of the weights, −(¾ ln ¾ + ¼ ln ¼) nats.
    const entropy = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25));
    expect(model.nll(separated)).toBeCloseTo(entropy, 5);
    // A row of neither pattern is (nearly) impossible: 4 bits off the nearest pattern, each costing
    // about −ln(α / N_k) ≈ 24 nats.
    expect(model.nll(rows(['1010101010']))).toBeGreaterThan(4 * 20);
  });

  it('never lowers its penalised objective, and is reproducible by seed', () => {
    const random = makeRandom(7);
    const noisy = rows(
      Array.from({ length: 60 }, (_, n) =>
        Array.from(n % 3 === 0 ? patternA : n % 3 === 1 ? patternB : '1010101010', (bit) => (random() < 0.1 ? String(1 - Number(bit)) : bit)).join(''),
      ),
    );
    const model = bernoulliMixture(noisy, { components: 4, iterations: 25, seed: 1, alpha: 0.5 });
    const objectives = model.trace.map((entry: { objective: number }) => entry.objective);
    for (let i = 1; i < objectives.length; i++) expect(objectives[i]).toBeGreaterThanOrEqual(objectives[i - 1] - 1e-9);
    const again = bernoulliMixture(noisy, { components: 4, iterations: 25, seed: 1, alpha: 0.5 });
    expect(again.nll(noisy)).toBe(model.nll(noisy));
    const other = bernoulliMixture(noisy, { components: 4, iterations: 25, seed: 2, alpha: 0.5 });
    expect(Array.from(other.means)).not.toEqual(Array.from(model.means));
  });

  it('with one component is the independent model with the same smoothing', () => {
    const data = rows(['1100', '1000', '0110', '1111', '0000']);
    const val = rows(['1010', '0101']);
    const mixture = bernoulliMixture(data, { components: 1, iterations: 2, alpha: 1 });
    expect(mixture.nll(val)).toBeCloseTo(independentBernoulli(data, { alpha: 1 }).nll(val), 12);
  });

  it('log-sum-exp is exact and does not overflow', () => {
    expect(logSumExp([Math.log(2), Math.log(3)])).toBeCloseTo(Math.log(5), 14);
    expect(logSumExp([-1000, -1000])).toBeCloseTo(-1000 + Math.log(2), 10);
    expect(logSumExp([1000, 1000])).toBeCloseTo(1000 + Math.log(2), 10);
  });
});

describe('digit classifier', () => {
  /** 3 classes of 16-pixel images: class c lights pixels 5c..5c+4 (each with prob. 0.8). */
  function toySet(count: number, seed: number) {
    const random = makeRandom(seed);
    const labels = new Uint8Array(count);
    const lines = Array.from({ length: count }, (_, n) => {
      const c = n % 3;
      labels[n] = c;
      return Array.from({ length: 16 }, (_, d) => (Math.floor(d / 5) === c && random() < 0.8 ? '1' : '0')).join('');
    });
    // Every image has at least one pixel of its class (an all-zero image could be any class).
    return { data: rows(lines.map((line, n) => (line.includes('1') ? line : line.slice(0, 5 * (n % 3)) + '1' + line.slice(5 * (n % 3) + 1)))), labels };
  }

  it('separates a separable toy set: 100% on held-out images, confident and spread over classes', () => {
    const train = toySet(300, 1);
    const heldOut = toySet(90, 2);
    const classifier = trainDigitClassifier(train.data, train.labels, { hidden: 16, epochs: 30, classes: 3, seed: 0, learningRate: 0.01 });
    expect(classifier.losses.at(-1)).toBeLessThan(classifier.losses[0]);
    expect(classifierAccuracy(classifier, heldOut.data, heldOut.labels)).toBe(1);
    const score = scoreDigitSamples(classifier, heldOut.data);
    expect(score.class_counts).toEqual([30, 30, 30]);
    expect(score.confident_share).toBeGreaterThan(0.9);
    expect(score.samples).toBe(90);
  });

  it('has the gradient of its loss (central finite differences, every parameter)', () => {
    const length = 6;
    const model = createDigitClassifier(length, 4, 3, makeRandom(11));
    // Shift the biases so no hidden unit sits at the ReLU kink for these inputs.
    for (let h = 0; h < 4; h++) model.params[model.offsets.b1 + h] += 0.3;
    const ones = [Int32Array.of(0, 2, 5), Int32Array.of(1, 3), Int32Array.of(4)];
    const labels = Uint8Array.of(2, 0, 1);
    const batch = Uint32Array.of(0, 1, 2);
    const grad = new Float64Array(model.params.length);
    classifierLossGradient(model, ones, labels, batch, grad);
    const epsilon = 1e-6;
    const scratch = new Float64Array(model.params.length);
    for (let i = 0; i < model.params.length; i++) {
      const saved = model.params[i];
      model.params[i] = saved + epsilon;
      const up = classifierLossGradient(model, ones, labels, batch, scratch);
      model.params[i] = saved - epsilon;
      const down = classifierLossGradient(model, ones, labels, batch, scratch);
      model.params[i] = saved;
      expect(grad[i], `parameter ${i}`).toBeCloseTo((up - down) / (2 * epsilon), 6);
    }
  });

  it('counts confident samples and classes by the rule', () => {
    // A fixed "classifier" whose probabilities are given per row tests the scoring arithmetic alone.
    const probabilities = [
      [0.95, 0.05],
      [0.5, 0.5], // a tie counts for class 0, not confident
      [0.1, 0.9],
      [0.2, 0.8],
    ];
    const fixed = { classes: 2, predict: () => Float64Array.from(probabilities.flat()) };
    const score = scoreDigitSamples(fixed, rows(['0', '0', '0', '0']), { confidence: 0.9 });
    expect(score.class_counts).toEqual([2, 2]);
    expect(score.confident_share).toBe(0.5);
    expect(score.class_shares).toEqual([0.5, 0.5]);
  });

  it('is reproducible by seed', () => {
    const train = toySet(60, 3);
    const a = trainDigitClassifier(train.data, train.labels, { hidden: 8, epochs: 3, classes: 3, seed: 5 });
    const b = trainDigitClassifier(train.data, train.labels, { hidden: 8, epochs: 3, classes: 3, seed: 5 });
    expect(Array.from(a.params)).toEqual(Array.from(b.params));
  });
});

describe('data file reading of the bench', () => {
  it('keeps the shape header and skips comments', () => {
    const data = parseBitRows('# shape: 2x2\n# note\n1010\n\n0101\n');
    expect(data.shape).toEqual([2, 2]);
    expect(data.rows).toBe(2);
    expect(Array.from(data.bits)).toEqual([1, 0, 1, 0, 0, 1, 0, 1]);
  });
});
