/**
 * Reference models for binary images (issue 13), measured on the same split as the diffusion model:
 *
 * - independentBernoulli: one Bernoulli per pixel, fitted on train; NLL of val in nats/image.
 * - bernoulliMixture: a K-component mixture of pixel-wise Bernoullis fitted by EM; NLL in nats/image.
 * - trainDigitClassifier / scoreDigitSamples: a one-hidden-layer MLP digit classifier (the sample
 *   scorer: share of samples classified with confidence >= 0.9, and the class histogram).
 *
 * Images are { rows, length, bits } (bits: Uint8Array, rows × length, row-major 0/1), the form of
 * the project's data files. Plain ESM JavaScript without dependencies, seeded and deterministic.
 *
 *   import { independentBernoulli, bernoulliMixture, trainDigitClassifier } from './bench/mnist-models.js';
 */

/** mulberry32: a tiny seeded generator of floats in [0, 1). */
export function makeRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws by Box–Muller from a uniform generator. */
function makeNormal(random) {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Parses a data file (rows of 0/1; '#' lines and blank lines skipped) into { rows, length, bits, shape }. */
export function parseBitRows(text) {
  const lines = [];
  let shape;
  for (const raw of text.split(/\r\n|\n|\r/)) {
    const line = raw.trim();
    const header = /^#\s*shape\s*:\s*(.*)$/i.exec(line);
    if (header) shape = header[1].split(/\s*x\s*/i).map(Number);
    if (line === '' || line.startsWith('#')) continue;
    lines.push(line);
  }
  return bitRowsFromStrings(lines, shape);
}

/** { rows, length, bits } from strings of 0/1 (all the same length). */
export function bitRowsFromStrings(lines, shape) {
  const length = lines.length > 0 ? lines[0].length : 0;
  const bits = new Uint8Array(lines.length * length);
  lines.forEach((line, row) => {
    if (line.length !== length || !/^[01]*$/.test(line)) throw new Error(`row ${row + 1} is not a ${length}-bit string of 0/1`);
    for (let d = 0; d < length; d++) bits[row * length + d] = line.charCodeAt(d) - 48;
  });
  return { rows: lines.length, length, bits, shape: shape ?? [length] };
}

/** Parses a labels file: one integer class per line (blank lines skipped). */
export function parseLabelLines(text) {
  return Uint8Array.from(
    text
      .split(/\r\n|\n|\r/)
      .filter((line) => line.trim() !== '')
      .map((line) => Number(line.trim())),
  );
}

/** The indices of the 1-bits of each row (binary images are sparse: ~19% ones for MNIST). */
export function onesOfRows(data) {
  const { rows, length, bits } = data;
  const ones = [];
  for (let n = 0; n < rows; n++) {
    const list = [];
    for (let d = 0; d < length; d++) if (bits[n * length + d] === 1) list.push(d);
    ones.push(Int32Array.from(list));
  }
  return ones;
}

/** log Σ_k exp(values[k]) without overflow. */
export function logSumExp(values, count = values.length) {
  let max = -Infinity;
  for (let k = 0; k < count; k++) if (values[k] > max) max = values[k];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let k = 0; k < count; k++) sum += Math.exp(values[k] - max);
  return max + Math.log(sum);
}

// ---- independent Bernoulli per pixel -----------------------------------------------------------

/**
 * One Bernoulli per pixel: μ_d = (Σ_n x_nd + α) / (N + 2α) (Laplace smoothing, α = 1 by default, so
 * no pixel has probability 0 or 1). Returns the model and `nll(data)`, the mean negative
 * log-likelihood in nats per row: −Σ_d [x_d log μ_d + (1 − x_d) log(1 − μ_d)].
 */
export function independentBernoulli(train, { alpha = 1 } = {}) {
  const { rows, length, bits } = train;
  const counts = new Float64Array(length);
  for (let n = 0; n < rows; n++) for (let d = 0; d < length; d++) counts[d] += bits[n * length + d];
  const mean = counts.map((c) => (c + alpha) / (rows + 2 * alpha));
  const logOn = mean.map((m) => Math.log(m));
  const logOff = mean.map((m) => Math.log1p(-m));
  const nllOf = (data, n) => {
    let logLikelihood = 0;
    for (let d = 0; d < length; d++) logLikelihood += data.bits[n * length + d] === 1 ? logOn[d] : logOff[d];
    return -logLikelihood;
  };
  return {
    mean,
    /** Mean NLL in nats per row. */
    nll(data) {
      if (data.length !== length) throw new Error(`rows of ${data.length} bits, the model has ${length}`);
      let total = 0;
      for (let n = 0; n < data.rows; n++) total += nllOf(data, n);
      return total / data.rows;
    },
  };
}

// ---- mixture of Bernoullis by EM ---------------------------------------------------------------

/**
 * A K-component mixture p(x) = Σ_k π_k Π_d μ_kd^x_d (1 − μ_kd)^(1−x_d), fitted by EM (MAP with a
 * Beta(1 + α, 1 + α) prior on each μ_kd, so no μ is 0 or 1 and each iteration cannot lower the
 * penalised log-likelihood). Starts from μ_kd ~ U(0.25, 0.75) (seeded), π uniform.
 * Returns { weights, means, trace, nll(data), logLikelihoods(data) }; trace holds, per iteration,
 * the train log-likelihood per row and the penalised objective (both before that iteration's M-step).
 */
export function bernoulliMixture(train, { components = 100, iterations = 50, seed = 0, alpha = 1e-3 } = {}) {
  const { rows, length } = train;
  const K = components;
  const random = makeRandom(seed);
  const means = new Float64Array(K * length);
  for (let i = 0; i < means.length; i++) means[i] = 0.25 + 0.5 * random();
  const weights = new Float64Array(K).fill(1 / K);
  const ones = onesOfRows(train);
  // log p(x|k) = Σ_d log(1 − μ_kd) + Σ_{d: x_d = 1} log(μ_kd / (1 − μ_kd)): only the ones of x cost work.
  const logOff = new Float64Array(K); // Σ_d log(1 − μ_kd)
  const logOdds = new Float64Array(K * length); // log μ_kd − log(1 − μ_kd), d-major: logOdds[d·K + k]
  const refresh = () => {
    for (let k = 0; k < K; k++) {
      let sum = 0;
      for (let d = 0; d < length; d++) {
        const m = means[k * length + d];
        sum += Math.log1p(-m);
        logOdds[d * K + k] = Math.log(m) - Math.log1p(-m);
      }
      logOff[k] = sum;
    }
  };
  /** log π_k + log p(x|k) for every k, into `out`. */
  const jointLog = (rowOnes, out) => {
    for (let k = 0; k < K; k++) out[k] = Math.log(weights[k]) + logOff[k];
    for (const d of rowOnes) {
      const base = d * K;
      for (let k = 0; k < K; k++) out[k] += logOdds[base + k];
    }
  };
  const responsibilities = new Float64Array(K);
  const weighted = new Float64Array(K * length); // Σ_n r_nk x_nd, d-major
  const mass = new Float64Array(K); // N_k = Σ_n r_nk
  const trace = [];
  for (let iteration = 0; iteration < iterations; iteration++) {
    refresh();
    weighted.fill(0);
    mass.fill(0);
    let logLikelihood = 0;
    // E-step: r_nk = π_k p(x_n|k) / Σ_j π_j p(x_n|j), through log-sum-exp.
    for (let n = 0; n < rows; n++) {
      jointLog(ones[n], responsibilities);
      const total = logSumExp(responsibilities, K);
      logLikelihood += total;
      for (let k = 0; k < K; k++) {
        const r = Math.exp(responsibilities[k] - total);
        responsibilities[k] = r;
        mass[k] += r;
      }
      for (const d of ones[n]) {
        const base = d * K;
        for (let k = 0; k < K; k++) weighted[base + k] += responsibilities[k];
      }
    }
    let logPrior = 0;
    for (let i = 0; i < means.length; i++) logPrior += alpha * (Math.log(means[i]) + Math.log1p(-means[i]));
    trace.push({ iteration, log_likelihood: logLikelihood / rows, objective: logLikelihood + logPrior });
    // M-step: π_k = N_k / N; μ_kd = (Σ_n r_nk x_nd + α) / (N_k + 2α).
    for (let k = 0; k < K; k++) {
      weights[k] = Math.max(mass[k] / rows, 1e-300);
      for (let d = 0; d < length; d++) means[k * length + d] = (weighted[d * K + k] + alpha) / (mass[k] + 2 * alpha);
    }
  }
  refresh();
  const logLikelihoods = (data) => {
    if (data.length !== length) throw new Error(`rows of ${data.length} bits, the model has ${length}`);
    const dataOnes = onesOfRows(data);
    const joint = new Float64Array(K);
    return Float64Array.from(dataOnes, (rowOnes) => {
      jointLog(rowOnes, joint);
      return logSumExp(joint, K); // log p(x) = log Σ_k π_k p(x|k)
    });
  };
  return {
    weights,
    means,
    trace,
    logLikelihoods,
    /** Mean NLL in nats per row. */
    nll(data) {
      return -logLikelihoods(data).reduce((a, b) => a + b, 0) / data.rows;
    },
  };
}

// ---- digit classifier (the sample scorer) ------------------------------------------------------

/**
 * A one-hidden-layer MLP classifier: p(y | x) = softmax(W2 relu(W1 x + b1) + b2), trained with
 * Adam on the cross-entropy −log p(y_n | x_n) plus weightDecay/2 · ‖W‖², minibatches shuffled
 * with `seed`. Inputs are binary, so the first layer sums the weight rows of the 1-pixels.
 */
export function trainDigitClassifier(train, labels, options = {}) {
  const { hidden = 128, epochs = 10, batchSize = 64, learningRate = 1e-3, weightDecay = 1e-4, seed = 0, classes = 10, maxShift = 0 } = options;
  const { rows, length } = train;
  const [height, width] = train.shape?.length === 2 ? train.shape : [1, length];
  if (labels.length !== rows) throw new Error(`${labels.length} labels for ${rows} images`);
  const random = makeRandom(seed);
  const model = createDigitClassifier(length, hidden, classes, random);
  const { params, offsets } = model;
  const size = params.length;
  const ones = onesOfRows(train);
  const grad = new Float64Array(size);
  const m1 = new Float64Array(size);
  const m2 = new Float64Array(size);
  const beta1 = 0.9;
  const beta2 = 0.999;
  let step = 0;
  const order = Uint32Array.from({ length: rows }, (_, i) => i);
  const losses = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = rows - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    let epochLoss = 0;
    for (let start = 0; start < rows; start += batchSize) {
      const batch = order.subarray(start, Math.min(rows, start + batchSize));
      grad.fill(0);
      // Augmentation: each image moved by a random (dy, dx) in [−maxShift, maxShift]² (pixels pushed off the edge are lost).
      const inputs = maxShift > 0 ? shiftedOnes(ones, batch, height, width, maxShift, random) : ones;
      epochLoss += classifierLossGradient(model, inputs, labels, batch, grad);
      // Mean over the batch, weight decay on the weights (not biases), then Adam.
      step++;
      const correction1 = 1 - beta1 ** step;
      const correction2 = 1 - beta2 ** step;
      for (let i = 0; i < size; i++) {
        const isWeight = i < offsets.b1 || (i >= offsets.w2 && i < offsets.b2);
        const g = grad[i] / batch.length + (isWeight ? weightDecay * params[i] : 0);
        m1[i] = beta1 * m1[i] + (1 - beta1) * g;
        m2[i] = beta2 * m2[i] + (1 - beta2) * g * g;
        params[i] -= (learningRate * (m1[i] / correction1)) / (Math.sqrt(m2[i] / correction2) + 1e-8);
      }
    }
    losses.push(epochLoss / rows);
  }
  return { ...model, losses };
}

/** The 1-pixels of the rows `batch`, each image shifted at random (a sparse array indexed like `ones`). */
function shiftedOnes(ones, batch, height, width, maxShift, random) {
  const out = [];
  const span = 2 * maxShift + 1;
  for (const n of batch) {
    const dy = Math.floor(random() * span) - maxShift;
    const dx = Math.floor(random() * span) - maxShift;
    const moved = [];
    for (const d of ones[n]) {
      const y = Math.floor(d / width) + dy;
      const x = (d % width) + dx;
      if (y >= 0 && y < height && x >= 0 && x < width) moved.push(y * width + x);
    }
    out[n] = moved;
  }
  return out;
}

/**
 * A classifier with fresh parameters in one array (for Adam): W1 (length × H, pixel-major), b1 (H),
 * W2 (C × H), b2 (C). He initialisation for the ReLU layer (fan-in: ~150 active pixels of a digit
 * rather than all of them, so hidden units start at unit scale), variance 1/H for the readout.
 */
export function createDigitClassifier(length, hidden, classes, random) {
  const H = hidden;
  const C = classes;
  const normal = makeNormal(random);
  const offsets = { w1: 0, b1: length * H, w2: length * H + H, b2: length * H + H + C * H };
  const params = new Float64Array(offsets.b2 + C);
  const scale1 = Math.sqrt(2 / Math.max(1, Math.min(length, 150)));
  for (let i = 0; i < length * H; i++) params[offsets.w1 + i] = scale1 * normal();
  for (let i = 0; i < C * H; i++) params[offsets.w2 + i] = Math.sqrt(1 / H) * normal();
  return makeClassifier(params, offsets, length, H, C);
}

/**
 * Σ_n −log p(y_n | x_n) over the rows `batch` (indices into `ones`/`labels`), adding its gradient
 * with respect to the parameters into `grad`. Backward: d/dz = p − onehot(y) at the logits z;
 * dW2 = d/dz ⊗ h; d/dh = W2ᵀ d/dz · [h > 0]; dW1[pixel] = d/dh for each 1-pixel; db = the deltas.
 */
export function classifierLossGradient(model, ones, labels, batch, grad) {
  const { params, offsets, hidden: H, classes: C } = model;
  const hiddenActs = new Float64Array(H);
  const probs = new Float64Array(C);
  const dHidden = new Float64Array(H);
  let loss = 0;
  for (const n of batch) {
    model.forward(ones[n], hiddenActs, probs);
    const y = labels[n];
    loss -= Math.log(Math.max(probs[y], 1e-300));
    probs[y] -= 1; // now d(−log p_y)/dz
    dHidden.fill(0);
    for (let c = 0; c < C; c++) {
      const g = probs[c];
      grad[offsets.b2 + c] += g;
      const row = offsets.w2 + c * H;
      for (let h = 0; h < H; h++) {
        grad[row + h] += g * hiddenActs[h];
        dHidden[h] += g * params[row + h];
      }
    }
    for (let h = 0; h < H; h++) if (hiddenActs[h] <= 0) dHidden[h] = 0; // relu'
    for (let h = 0; h < H; h++) grad[offsets.b1 + h] += dHidden[h];
    for (const d of ones[n]) {
      const row = offsets.w1 + d * H;
      for (let h = 0; h < H; h++) grad[row + h] += dHidden[h];
    }
  }
  return loss;
}

/** The classifier's forward pass over its parameter array (see trainDigitClassifier). */
function makeClassifier(params, offsets, length, H, C) {
  /** Hidden activations and class probabilities of one image given by its 1-pixels. */
  const forward = (rowOnes, hiddenActs, probs) => {
    for (let h = 0; h < H; h++) hiddenActs[h] = params[offsets.b1 + h];
    for (const d of rowOnes) {
      const row = offsets.w1 + d * H;
      for (let h = 0; h < H; h++) hiddenActs[h] += params[row + h];
    }
    for (let h = 0; h < H; h++) if (hiddenActs[h] < 0) hiddenActs[h] = 0;
    for (let c = 0; c < C; c++) {
      let logit = params[offsets.b2 + c];
      const row = offsets.w2 + c * H;
      for (let h = 0; h < H; h++) logit += params[row + h] * hiddenActs[h];
      probs[c] = logit;
    }
    // softmax: p_c = exp(z_c − log Σ exp z)
    const total = logSumExp(probs, C);
    for (let c = 0; c < C; c++) probs[c] = Math.exp(probs[c] - total);
  };
  return {
    params,
    offsets,
    hidden: H,
    classes: C,
    forward,
    /** Class probabilities, rows × C. */
    predict(data) {
      if (data.length !== length) throw new Error(`rows of ${data.length} bits, the classifier has ${length}`);
      const out = new Float64Array(data.rows * C);
      const hiddenActs = new Float64Array(H);
      const probs = new Float64Array(C);
      onesOfRows(data).forEach((rowOnes, n) => {
        forward(rowOnes, hiddenActs, probs);
        out.set(probs, n * C);
      });
      return out;
    },
  };
}

/** Share of rows whose most probable class is their label. */
export function classifierAccuracy(classifier, data, labels) {
  const probs = classifier.predict(data);
  const C = classifier.classes;
  let correct = 0;
  for (let n = 0; n < data.rows; n++) if (argmax(probs, n * C, C) === labels[n]) correct++;
  return correct / data.rows;
}

function argmax(values, start, count) {
  let best = 0;
  for (let c = 1; c < count; c++) if (values[start + c] > values[start + best]) best = c;
  return best;
}

/**
 * The sample score: the share of samples whose most probable class has probability >= `confidence`
 * (sharpness: does a sample look like some digit), and how the samples spread over the classes
 * (diversity: counts and shares of the most probable class).
 */
export function scoreDigitSamples(classifier, samples, { confidence = 0.9 } = {}) {
  const probs = classifier.predict(samples);
  const C = classifier.classes;
  const histogram = new Array(C).fill(0);
  let confident = 0;
  for (let n = 0; n < samples.rows; n++) {
    const best = argmax(probs, n * C, C);
    histogram[best]++;
    if (probs[n * C + best] >= confidence) confident++;
  }
  const count = Math.max(samples.rows, 1);
  return {
    samples: samples.rows,
    confidence,
    confident_share: confident / count,
    class_counts: histogram,
    class_shares: histogram.map((h) => h / count),
  };
}
