// The TensorFlow.js baseline (bench/tfjs-paper.js) computes the same model, loss, gradient and
// AdamW step as the plain-TypeScript reference, for the same parameters and the same (x0, x_t, t).
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain-JS bench module without type declarations
import { TfjsPaperModel, useTfjsBackend } from '../bench/tfjs-paper.js';
import { AdamW, lossAndGradientGiven } from '../src/reference/objective.js';
import { PaperNetwork } from '../src/reference/paper-network.js';
import { Rng } from '../src/reference/rng.js';
import { paperSchedule } from '../src/reference/schedule.js';

const L = 7;
const H = 6;
const T = 8;
const B = 3;

/** Reference network, its rows for t = 1..T (row j·B + b: t = j + 1, example b), tfjs twin. */
function setup() {
  const network = new PaperNetwork({ length: L, hidden: H, timesteps: T });
  const rng = new Rng(21);
  for (let i = 0; i < network.parameters.length; i++) network.parameters[i] = rng.uniformF32() - 0.5;
  const x0 = Uint8Array.from({ length: B * L }, () => (rng.bernoulli(0.4) ? 1 : 0));
  const xt = Uint8Array.from({ length: T * B * L }, () => (rng.bernoulli(0.5) ? 1 : 0));
  const rowsX0 = new Uint8Array(T * B * L);
  const t = new Int32Array(T * B);
  for (let j = 0; j < T; j++) {
    for (let b = 0; b < B; b++) {
      rowsX0.set(x0.subarray(b * L, (b + 1) * L), (j * B + b) * L);
      t[j * B + b] = j + 1;
    }
  }
  const settings = { lr: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1, clipNorm: 1 };
  const model = new TfjsPaperModel({ length: L, hidden: H, timesteps: T, batch: B, tensors: network.tensors(), ...settings });
  return { network, x0, xt, rowsX0, t, model, settings };
}

/** tfjs gradients by layout name (readout chunks concatenated along t). */
function gradsByName(model: { prefix: string }, grads: Record<string, tf.Tensor>): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const chunks: Record<string, tf.Tensor[]> = { 'readout.weight': [], 'readout.bias': [] };
  for (const [name, g] of Object.entries(grads)) {
    const local = name.slice(model.prefix.length);
    const base = local.replace(/\.\d+$/, '');
    if (base in chunks && base !== local) chunks[base].push(g);
    else out[local] = g.dataSync() as Float32Array;
  }
  for (const [base, list] of Object.entries(chunks)) out[base] = tf.concat(list, 0).dataSync() as Float32Array;
  return out;
}

describe.each(['cpu', 'wasm'])('tfjs paper model (%s backend) against the reference', (backend) => {
  afterAll(() => tf.disposeVariables());

  it('same loss and gradient for the same weights and (x0, x_t, t), and the same AdamW step', async () => {
    await useTfjsBackend(backend);
    const { network, x0, xt, rowsX0, t, model, settings } = setup();
    expect(model.k).toBe(T); // one chunk holds every t here
    const schedule = paperSchedule(T);
    const grad = new Float32Array(network.parameters.length);
    const { rowLossBits } = lossAndGradientGiven(network, 'direct', schedule, rowsX0, xt, t, grad);
    const referenceLoss = rowLossBits.reduce((a, b) => a + b, 0);

    const x0Tensor = tf.tensor2d(x0, [B, L], 'float32');
    const xtTensor = tf.tensor3d(xt, [T, B, L], 'float32');
    const { loss, grads } = model.chunkLossAndGrads(x0Tensor, xtTensor, 0, 1);
    expect(Math.abs(loss.dataSync()[0] - referenceLoss)).toBeLessThan(1e-4 * referenceLoss);
    const tfGrads = gradsByName(model, grads);
    for (const group of network.layout) {
      const expected = grad.subarray(group.offset, group.offset + tfGrads[group.name].length);
      expect(tfGrads[group.name].length).toBe(group.shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < expected.length; i++) {
        expect(Math.abs(tfGrads[group.name][i] - expected[i]), `${group.name}[${i}]`).toBeLessThan(1e-4 * (1 + Math.abs(expected[i])));
      }
    }

    // One AdamW step on each side from these gradients gives the same parameters.
    const gradMap = new Map(Object.entries(grads));
    const tfNorm = model.applyAdamW(gradMap);
    const referenceNorm = new AdamW(network, settings).update(network.parameters, grad);
    expect(tfNorm).toBeCloseTo(referenceNorm, 3);
    const after = model.tensors();
    for (const group of network.layout) {
      const expected = network.tensor(group.name);
      for (let i = 0; i < expected.length; i++) {
        expect(Math.abs(after[group.name][i] - expected[i]), `${group.name}[${i}]`).toBeLessThan(1e-5);
      }
    }
    tf.dispose([x0Tensor, xtTensor, loss]);
    model.dispose();
  });

  it('a full training step runs, reports a finite loss, and its chunks tile t = 1..T', async () => {
    await useTfjsBackend(backend);
    const model = new TfjsPaperModel({ length: L, hidden: H, timesteps: T, batch: 4, maxRowsPerChunk: 8 });
    expect(model.k).toBe(2);
    const seen: number[] = [];
    const x0 = Uint8Array.from({ length: 4 * L }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const { lossBits, gradNorm } = model.trainStep(x0, 4, (tLast: number) => (seen.push(tLast), false));
    expect(seen).toEqual([2, 4, 6, 8]);
    expect(Number.isFinite(lossBits) && lossBits > 0).toBe(true);
    expect(gradNorm).toBeGreaterThan(0);
    model.dispose();
  });
});
