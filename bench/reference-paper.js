/**
 * Speed of the plain-TypeScript reference (src/reference/) on the `paper` model: training
 * throughput (full sum over t + AdamW, example-timesteps/s) and sampling throughput
 * (sequence-steps/s). The reference is TypeScript; it is loaded through tsx so that this file
 * runs under plain `node`.
 */
import { tsImport } from 'tsx/esm/api';
import { benchBatch, measureTrainThroughput } from './tfjs-paper.js';

let reference;

function loadReference() {
  reference ??= loadReferenceModules();
  return reference;
}

async function loadReferenceModules() {
  const [network, objective, rng, schedule, sampler] = await Promise.all(
    ['paper-network.ts', 'objective.ts', 'rng.ts', 'schedule.ts', 'sampler.ts'].map((file) => tsImport(`../src/reference/${file}`, import.meta.url)),
  );
  return { ...network, ...objective, ...rng, ...schedule, ...sampler };
}

/**
 * @param {{batch: number, T?: number, L?: number, H?: number, seconds?: number}} options
 * @returns {Promise<{exampleTimestepsPerSecond: number, steps: number, seconds: number, backend: string, lossBits: number}>}
 *   `steps` counts training steps, fractional when a step was cut (see measureTrainThroughput).
 */
export async function benchReferenceTrain({ batch, T = 2000, L = 20, H = 50, seconds = 5 }) {
  const ref = await loadReference();
  const network = new ref.PaperNetwork({ length: L, hidden: H, timesteps: T }, new ref.Rng(1));
  const trainer = new ref.ReferenceTrainer(network, ref.paperSchedule(T), 'direct', 1);
  const x0 = benchBatch(batch, L);
  const result = measureTrainThroughput((stopAfter) => trainer.trainStep(x0, batch, stopAfter), { batch, T, seconds });
  return { ...result, backend: 'plain-ts' };
}

/**
 * Sampling throughput of the reference: reverse chains (T steps) of n sequences until `seconds`
 * have passed, after a warm-up of 10 steps. The first chain is cut at the step where the time
 * runs out (a chain of 1024 sequences at T = 2000 takes over 10 s); later ones run to the end.
 * @param {{n: number, T?: number, L?: number, H?: number, seconds?: number}} options
 * @returns {Promise<{sequenceStepsPerSecond: number, chains: number, seconds: number, backend: string}>}
 *   `chains` is fractional when the first chain was cut.
 */
export async function benchReferenceSample({ n, T = 2000, L = 20, H = 50, seconds = 5 }) {
  const ref = await loadReference();
  const network = new ref.PaperNetwork({ length: L, hidden: H, timesteps: T }, new ref.Rng(1));
  const schedule = ref.paperSchedule(T);
  ref.sample(network, 'direct', schedule, n, 0, (t) => t <= T - 9); // warm-up: 10 steps
  const start = performance.now();
  const deadline = start + 1000 * seconds;
  let steps = 0;
  for (let chain = 1; ; chain++) {
    const mayCut = chain === 1;
    ref.sample(network, 'direct', schedule, n, chain, () => {
      steps += 1;
      return mayCut && performance.now() > deadline;
    });
    if (performance.now() > deadline) break;
  }
  const elapsed = (performance.now() - start) / 1000;
  return { sequenceStepsPerSecond: (steps * n) / elapsed, chains: steps / T, seconds: elapsed, backend: 'plain-ts' };
}
