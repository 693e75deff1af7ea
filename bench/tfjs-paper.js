/**
 * The `paper` model (shared MLP L -> H -> H ReLU, one linear readout H -> L per t, sigmoid,
 * direct parameterisation) and its full-sum objective in TensorFlow.js: the baseline for the
 * speed table (issue 7). Same math as src/reference/objective.ts and the Rust core:
 *   loss = mean over sequences of Σ_{t=1..T} Σ_i KL( q(x_{t-1,i} | x_t, x0) || sigmoid(logit_i) ), in bits,
 * with x_t ~ q(x_t | x0) = B(x0 (1 - c_t) + c_t/2) and the paper schedule c_t = t/T, b_t = 1/(T-t+1).
 *
 * The sum over t is taken in chunks of k consecutive steps (k·batch rows per chunk): the shared MLP
 * runs on all rows at once, the readouts of the chunk are one batched matmul [k,B,H]·[k,H,L].
 * The readout tensors are held as one variable per chunk (the same numbers as readout.weight
 * [T,H,L] cut along T), so a chunk's gradient touches only its own readouts.
 *
 * Backends: 'cpu' (pure JS) and 'wasm' (@tensorflow/tfjs-backend-wasm, XNNPACK; its .wasm files
 * are loaded from node_modules with setWasmPaths).
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import path from 'node:path';

const LOG2E = Math.LOG2E;

/** Switches tfjs to `backend` ('cpu' or 'wasm'); returns the backend in use. */
export async function useTfjsBackend(backend) {
  if (backend === 'wasm' && !useTfjsBackend.wasmPathsSet) {
    const require = createRequire(import.meta.url);
    const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    setWasmPaths(wasmDir + path.sep);
    useTfjsBackend.wasmPathsSet = true;
  }
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new Error(`tfjs backend '${backend}' failed to initialise`);
  }
  await tf.ready();
  return tf.getBackend();
}

/** The largest divisor k of T with k·batch <= maxRows (at least 1): time steps per chunk. */
export function chooseChunk(T, batch, maxRows = 32768) {
  let best = 1;
  for (let k = 1; k <= T; k++) if (T % k === 0 && k * batch <= maxRows) best = k;
  return best;
}

/** Paper schedule as per-chunk [k,1,1] tensors of b_t, c_t and c_{t-1} (t = 1..T). */
function scheduleTensors(T, k) {
  const chunks = [];
  for (let start = 1; start <= T; start += k) {
    const bt = new Float32Array(k);
    const ct = new Float32Array(k);
    const cPrev = new Float32Array(k);
    for (let j = 0; j < k; j++) {
      const t = start + j;
      bt[j] = 1 / (T - t + 1); // b_t = 1/(T - t + 1)
      ct[j] = t / T; // c_t = t/T
      cPrev[j] = (t - 1) / T; // c_{t-1}
    }
    chunks.push({
      start,
      bt: tf.keep(tf.tensor3d(bt, [k, 1, 1])),
      ct: tf.keep(tf.tensor3d(ct, [k, 1, 1])),
      cPrev: tf.keep(tf.tensor3d(cPrev, [k, 1, 1])),
    });
  }
  return chunks;
}

/** q(x_{t-1}=1 | x_t, x0) = a·l1 / (a·l1 + (1-a)·l0), broadcast over [k,B,L]. */
function posterior(x0, xt, bt, cPrev) {
  const a = x0.mul(tf.sub(1, cPrev)).add(cPrev.div(2)); // a = x0 (1 - c_{t-1}) + c_{t-1}/2
  const halfB = bt.div(2);
  const l1 = xt.mul(tf.sub(1, halfB)).add(tf.sub(1, xt).mul(halfB)); // q(x_t | x_{t-1}=1)
  const l0 = xt.mul(halfB).add(tf.sub(1, xt).mul(tf.sub(1, halfB))); // q(x_t | x_{t-1}=0)
  const numerator = a.mul(l1);
  return numerator.div(numerator.add(tf.sub(1, a).mul(l0)));
}

/** Σ q ln q + (1-q) ln(1-q) (0 at q in {0,1}): the parameter-free part of the KL, nats. */
function negativeEntropySum(q) {
  const tiny = 1e-30;
  return q
    .mul(tf.log(tf.maximum(q, tiny)))
    .add(tf.sub(1, q).mul(tf.log(tf.maximum(tf.sub(1, q), tiny))))
    .sum();
}

export class TfjsPaperModel {
  static instances = 0;
  /**
   * @param {{ length: number, hidden: number, timesteps: number, batch: number, seed?: number,
   *   tensors?: Record<string, Float32Array>, lr?: number, beta1?: number, beta2?: number,
   *   epsilon?: number, weightDecay?: number, clipNorm?: number, maxRowsPerChunk?: number }} options
   *   `tensors`: initial parameters by the Rust/reference layout names; otherwise seeded He-normal.
   */
  constructor(options) {
    const { length: L, hidden: H, timesteps: T, batch } = options;
    this.L = L;
    this.H = H;
    this.T = T;
    this.k = chooseChunk(T, batch, options.maxRowsPerChunk);
    this.optimiser = {
      lr: options.lr ?? 1e-3,
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.999,
      epsilon: options.epsilon ?? 1e-8,
      weightDecay: options.weightDecay ?? 0,
      clipNorm: options.clipNorm ?? 1,
    };
    this.step = 0;
    this.schedule = scheduleTensors(T, this.k);
    let seed = (options.seed ?? 1) * 16;
    const given = options.tensors;
    const init = (name, shape, std) =>
      given?.[name] ? tf.tensor(given[name], shape, 'float32') : std === 0 ? tf.zeros(shape) : tf.randomNormal(shape, 0, std, 'float32', seed++);
    // tfjs variable names are global: prefix them per model, strip the prefix in tensors()
    this.prefix = `tfjs-paper-${TfjsPaperModel.instances++}/`;
    const variable = (initial, name) => tf.variable(initial, true, this.prefix + name);
    this.shared = [
      variable(init('shared.0.weight', [L, H], Math.sqrt(2 / L)), 'shared.0.weight'),
      variable(init('shared.0.bias', [H], 0), 'shared.0.bias'),
      variable(init('shared.1.weight', [H, H], Math.sqrt(2 / H)), 'shared.1.weight'),
      variable(init('shared.1.bias', [H], 0), 'shared.1.bias'),
    ];
    const readoutW = init('readout.weight', [T, H, L], Math.sqrt(1 / H));
    const readoutB = init('readout.bias', [T, L], 0);
    this.readoutW = [];
    this.readoutB = [];
    for (const { start } of this.schedule) {
      const c = this.readoutW.length;
      this.readoutW.push(variable(readoutW.slice([start - 1, 0, 0], [this.k, H, L]), `readout.weight.${c}`));
      this.readoutB.push(variable(readoutB.slice([start - 1, 0], [this.k, L]).reshape([this.k, 1, L]), `readout.bias.${c}`));
    }
    readoutW.dispose();
    readoutB.dispose();
    this.decays = new Map([...this.shared, ...this.readoutW, ...this.readoutB].map((v) => [v.name, v.name.includes('weight')]));
    this.moments = new Map([...this.decays.keys()].map((name) => [name, null]));
  }

  /** Logits [k,B,L] for noisy bits xt [k,B,L] at the chunk's time steps. */
  logits(xt, chunk) {
    const [k, B, L] = xt.shape;
    const [W0, b0, W1, b1] = this.shared;
    const x = xt.reshape([k * B, L]);
    const h1 = tf.relu(tf.matMul(x, W0).add(b0)); // h1 = relu(x W0 + b0)
    const h2 = tf.relu(tf.matMul(h1, W1).add(b1)); // h2 = relu(h1 W1 + b1)
    return tf.matMul(h2.reshape([k, B, this.H]), this.readoutW[chunk]).add(this.readoutB[chunk]); // h2 R_t + rb_t
  }

  /**
   * For one chunk: the loss (bits, summed over the chunk's rows, times `scale`) and its gradients.
   * x0 is [B,L]; xt [k,B,L] (both float 0/1).
   */
  chunkLossAndGrads(x0, xt, chunk, scale) {
    const { bt, cPrev } = this.schedule[chunk];
    return tf.tidy(() => {
      const q = posterior(x0, xt, bt, cPrev); // target
      const constantPart = negativeEntropySum(q).mul(LOG2E * scale);
      const variables = [...this.shared, this.readoutW[chunk], this.readoutB[chunk]];
      const { value, grads } = tf.variableGrads(() => {
        const z = this.logits(xt, chunk);
        // KL(q || sigmoid(z)) = softplus(z) - q z + [q ln q + (1-q) ln(1-q)]
        return tf
          .softplus(z)
          .sub(q.mul(z))
          .sum()
          .mul(LOG2E * scale);
      }, variables);
      return { loss: value.add(constantPart), grads };
    });
  }

  /** x_t ~ q(x_t | x0) = B(x0 (1 - c_t) + c_t/2) for the chunk's k steps: [k,B,L]. */
  drawNoisy(x0, chunk) {
    const { ct } = this.schedule[chunk];
    return tf.tidy(() => {
      const p = x0.mul(tf.sub(1, ct)).add(ct.div(2));
      return tf.less(tf.randomUniform(p.shape), p).toFloat();
    });
  }

  /**
   * Full-sum loss (bits/sequence) and gradients of it, keyed by variable name. `stopAfter(t)`, if
   * given, is asked after each chunk (t = its last step); true ends the sum there.
   */
  fullSumLossAndGrads(x0Bits, batch, stopAfter) {
    const x0 = tf.tensor2d(x0Bits, [batch, this.L], 'float32');
    const grads = new Map();
    let loss = tf.scalar(0);
    for (let c = 0; c < this.schedule.length; c++) {
      const xt = this.drawNoisy(x0, c);
      const out = this.chunkLossAndGrads(x0, xt, c, 1 / batch);
      xt.dispose();
      const nextLoss = loss.add(out.loss);
      loss.dispose();
      out.loss.dispose();
      loss = nextLoss;
      for (const [name, g] of Object.entries(out.grads)) {
        const previous = grads.get(name);
        if (previous) {
          grads.set(name, previous.add(g));
          previous.dispose();
          g.dispose();
        } else {
          grads.set(name, g);
        }
      }
      if (stopAfter?.(this.schedule[c].start + this.k - 1)) break;
    }
    x0.dispose();
    return { loss, grads };
  }

  /** AdamW with global-norm clipping (same update as src/reference/objective.ts). Returns the norm. */
  applyAdamW(grads) {
    const { lr, beta1, beta2, epsilon, weightDecay, clipNorm } = this.optimiser;
    this.step += 1;
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    const variables = [...this.shared, ...this.readoutW, ...this.readoutB].filter((v) => grads.has(v.name));
    const norm = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))));
    const normValue = norm.dataSync()[0];
    norm.dispose();
    const clipScale = clipNorm > 0 && normValue > clipNorm ? clipNorm / normValue : 1;
    for (const variable of variables) {
      const g = grads.get(variable.name);
      let moments = this.moments.get(variable.name);
      if (!moments) {
        moments = { m: tf.variable(tf.zerosLike(variable), false), v: tf.variable(tf.zerosLike(variable), false) };
        this.moments.set(variable.name, moments);
      }
      tf.tidy(() => {
        const clipped = g.mul(clipScale);
        moments.m.assign(moments.m.mul(beta1).add(clipped.mul(1 - beta1))); // m = β1 m + (1-β1) g
        moments.v.assign(moments.v.mul(beta2).add(clipped.square().mul(1 - beta2))); // v = β2 v + (1-β2) g²
        let update = moments.m.div(correction1).div(moments.v.div(correction2).sqrt().add(epsilon));
        if (this.decays.get(variable.name) && weightDecay > 0) update = update.add(variable.mul(weightDecay));
        variable.assign(variable.sub(update.mul(lr))); // θ -= lr (m̂/(√v̂+ε) + λθ)
      });
    }
    for (const g of grads.values()) g.dispose();
    return normValue;
  }

  /** One training step on x0 (Uint8Array batch × L): full sum over t (or up to `stopAfter`), AdamW. */
  trainStep(x0Bits, batch, stopAfter) {
    const { loss, grads } = this.fullSumLossAndGrads(x0Bits, batch, stopAfter);
    const gradNorm = this.applyAdamW(grads);
    const lossBits = loss.dataSync()[0];
    loss.dispose();
    return { lossBits, gradNorm };
  }

  /** Parameters by layout name (readouts re-assembled to [T,H,L] and [T,L]). */
  tensors() {
    const out = {};
    for (const v of this.shared) out[v.name.slice(this.prefix.length)] = v.dataSync().slice();
    out['readout.weight'] = tf
      .tidy(() => tf.concat(this.readoutW, 0))
      .dataSync()
      .slice();
    out['readout.bias'] = tf
      .tidy(() => tf.concat(this.readoutB, 0))
      .dataSync()
      .slice();
    return out;
  }

  dispose() {
    for (const v of [...this.shared, ...this.readoutW, ...this.readoutB]) v.dispose();
    for (const m of this.moments.values()) if (m) m.m.dispose(), m.v.dispose();
    for (const s of this.schedule) s.bt.dispose(), s.ct.dispose(), s.cPrev.dispose();
  }
}

/** Heartbeat-like batch: one 1 every 5 bits, phase r mod 5 (the bench's data; speed does not depend on it). */
export function benchBatch(batch, L) {
  const x0 = new Uint8Array(batch * L);
  for (let r = 0; r < batch; r++) for (let i = r % 5; i < L; i += 5) x0[r * L + i] = 1;
  return x0;
}

/**
 * Times training steps: `step(stopAfter)` runs one step (full sum over t, then the optimiser) and
 * calls stopAfter(t) after each t or chunk of t. Steps run until `seconds` have passed. A step
 * that would not finish in time is cut after the t where the time runs out, but only the first
 * timed one, so slow baselines (seconds to minutes per step at batch 2048) measure part of one
 * step; the optimiser update still runs on the partial gradient and is counted, so the cut can
 * only make the throughput look lower. Warm-up: one step cut after 20% of `seconds` (at most 2 s).
 * Throughput = batch × time steps processed / seconds.
 */
export function measureTrainThroughput(step, { batch, T, seconds }) {
  const warmupEnd = performance.now() + 1000 * Math.min(2, 0.2 * seconds);
  step(() => performance.now() > warmupEnd);
  const start = performance.now();
  const deadline = start + 1000 * seconds;
  let timesteps = 0;
  let fullSteps = 0;
  let lossBits = NaN;
  for (;;) {
    let done = 0;
    const mayCut = fullSteps === 0;
    lossBits = step((t) => {
      done = t;
      return mayCut && performance.now() > deadline;
    }).lossBits;
    timesteps += done;
    if (done === T) fullSteps += 1;
    if (done < T || performance.now() > deadline) break;
  }
  const elapsed = (performance.now() - start) / 1000;
  return {
    exampleTimestepsPerSecond: (batch * timesteps) / elapsed,
    steps: timesteps / T,
    seconds: elapsed,
    lossBits: fullSteps > 0 ? lossBits : NaN,
  };
}

/**
 * Training throughput of the tfjs model (example-timesteps per second), see measureTrainThroughput.
 * @param {{batch: number, T?: number, L?: number, H?: number, seconds?: number, backend?: 'cpu' | 'wasm', maxRowsPerChunk?: number}} options
 *   maxRowsPerChunk: rows (k·batch) per network pass; 4096..131072 measured within ±10% of each other here (wasm).
 * @returns {Promise<{exampleTimestepsPerSecond: number, steps: number, seconds: number, backend: string, lossBits: number}>}
 *   `steps` counts training steps, fractional when a step was cut; `lossBits` is of the last full step (NaN if none).
 */
export async function benchTfjsTrain({ batch, T = 2000, L = 20, H = 50, seconds = 5, backend = 'wasm', maxRowsPerChunk = 32768 }) {
  const used = await useTfjsBackend(backend);
  const model = new TfjsPaperModel({ length: L, hidden: H, timesteps: T, batch, maxRowsPerChunk });
  const x0 = benchBatch(batch, L);
  try {
    const result = measureTrainThroughput((stopAfter) => model.trainStep(x0, batch, stopAfter), { batch, T, seconds });
    return { ...result, backend: `tfjs-${used}` };
  } finally {
    model.dispose();
  }
}
