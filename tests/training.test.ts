// The training loop (src/training.ts) against a small deterministic stand-in for the model: data
// order, records, evaluation points, checkpoints, early stopping, interruption and exact resume.
// (The real model's bit-for-bit resume is tested end to end in tests/cli.test.ts.)
import { describe, expect, it } from 'vitest';
import { fromStrings, heartbeatData, sequenceSet } from '../src/data.js';
import type { BoundOptions } from '../src/model.js';
import {
  BatchSampler,
  epochPermutation,
  evaluationSubset,
  runTraining,
  type CheckpointReason,
  type LoopSettings,
  type LoopState,
  type MetricsRecord,
  type TrainableModel,
  type TrainingData,
} from '../src/training.js';

/** A stand-in model: its "weights" are a hash of every batch it trained on, in order. */
class FakeModel implements TrainableModel {
  hash = 2166136261;
  private steps = 0;
  evaluations = 0;
  /** The strata of t each evaluation was asked for. */
  strataSeen: number[] = [];
  constructor(
    readonly length: number,
    private readonly bounds: number[] = [],
  ) {}
  get step() {
    return this.steps;
  }
  trainStep(batch: Uint8Array) {
    for (const bit of batch) this.hash = Math.imul(this.hash ^ bit, 16777619) >>> 0;
    this.hash = Math.imul(this.hash ^ 0xff, 16777619) >>> 0;
    this.steps += 1;
    return { loss: this.steps, gradNorm: 2 * this.steps, lr: 0.1 / this.steps };
  }
  sample(n: number, opts?: { seed?: number }) {
    const samples = new Uint8Array(n * this.length);
    for (let i = 0; i < samples.length; i++) samples[i] = ((opts?.seed ?? 0) >> (i % 7)) & 1;
    return { samples, frames: [] };
  }
  evaluate(data: Uint8Array, opts: BoundOptions = {}) {
    const boundBits = this.bounds[this.evaluations] ?? 10;
    this.evaluations += 1;
    const strata = opts.strata ?? 0;
    this.strataSeen.push(strata);
    return { boundBits, stderr: 0.5, sequenceStderr: 0.7, perSequence: new Float64Array(data.length / this.length), repeats: 1, strata };
  }
  restore(step: number, hash: number) {
    this.steps = step;
    this.hash = hash;
  }
}

const heartbeat = heartbeatData({ length: 10, period: 5, holdout: 1, count: 12 });
const data: TrainingData = { train: heartbeat.train, val: heartbeat.val, trainSet: sequenceSet(heartbeat.train), valSet: sequenceSet(heartbeat.val) };
const settings = (overrides: Partial<LoopSettings> = {}): LoopSettings => ({
  totalSteps: 20,
  batchSize: 5,
  seed: 7,
  logEvery: 3,
  evalEvery: 8,
  evalRepeats: 1,
  evalSequences: 0,
  evalSamples: 6,
  evalStrata: 0,
  gridSize: 4,
  checkpointEvery: 5,
  earlyStopping: 0,
  ...overrides,
});
let clock = 0;
const now = () => (clock += 1);
const noYield = async () => {};

describe('batch order', () => {
  it('each epoch visits every row once, in a seeded order', () => {
    const permutation = epochPermutation(100, 3, 0);
    expect([...permutation].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(epochPermutation(100, 3, 0)).toEqual(permutation);
    expect(epochPermutation(100, 3, 1)).not.toEqual(permutation);
    expect(epochPermutation(100, 4, 0)).not.toEqual(permutation);

    const sampler = new BatchSampler(fromStrings(Array.from({ length: 7 }, (_, i) => i.toString(2).padStart(3, '0'))), 3, 11);
    const positions = Array.from({ length: 7 }, (_, step) => sampler.rows(step)).flat(); // 21 positions = 3 epochs
    for (let epoch = 0; epoch < 3; epoch++) {
      expect(positions.slice(epoch * 7, epoch * 7 + 7).sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    }
    // any step's batch is the same whether or not earlier batches were drawn
    expect(new BatchSampler(sampler['data'], 3, 11).rows(5)).toEqual(sampler.rows(5));
    expect([...sampler.batch(2)]).toEqual(sampler.rows(2).flatMap((row) => row.toString(2).padStart(3, '0').split('').map(Number)));
    expect(sampler.epochAfter(7)).toBe(3);
  });

  it('evaluations use a fixed seeded subset of the validation rows, in their order, or all of them', () => {
    const lines = Array.from({ length: 50 }, (_, i) => i.toString(2).padStart(6, '0'));
    const val = fromStrings(lines);
    expect(evaluationSubset(val, 0, 1)).toBe(val);
    expect(evaluationSubset(val, 50, 1)).toBe(val);
    const subset = evaluationSubset(val, 10, 1);
    expect(subset.rows).toBe(10);
    const picked = Array.from({ length: 10 }, (_, row) => parseInt(Array.from(subset.bits.subarray(row * 6, row * 6 + 6)).join(''), 2));
    expect(new Set(picked).size).toBe(10); // without replacement
    expect([...picked].sort((a, b) => a - b)).toEqual(picked); // original order
    expect(evaluationSubset(val, 10, 1)).toEqual(subset); // the same at every evaluation
    expect(evaluationSubset(val, 10, 2)).not.toEqual(subset); // another seed, another subset
    // every row is reachable: over many seeds, each is picked about 10/50 of the time
    const counts = new Array(50).fill(0);
    for (let seed = 0; seed < 500; seed++) {
      const s = evaluationSubset(val, 10, seed);
      for (let row = 0; row < 10; row++) counts[parseInt(Array.from(s.bits.subarray(row * 6, row * 6 + 6)).join(''), 2)]++;
    }
    for (const c of counts) expect(c).toBeGreaterThan(60); // expected 100, sd about 9
    for (const c of counts) expect(c).toBeLessThan(140);
  });

  it('a larger batch than the data wraps into the next epoch', () => {
    const sampler = new BatchSampler(fromStrings(['0', '1']), 5, 1);
    expect(sampler.rows(0).length).toBe(5);
    expect(sampler.rows(0).slice(0, 2).sort()).toEqual([0, 1]);
  });
});

describe('training loop', () => {
  it('evaluates the bound on at most evalSequences validation rows', async () => {
    const wide: TrainingData = { ...data, val: heartbeat.train, valSet: sequenceSet(heartbeat.train) }; // 12 rows
    for (const [evalSequences, rows] of [
      [0, 12],
      [5, 5],
      [40, 12],
    ]) {
      const outcome = await runTraining({ model: new FakeModel(10), data: wide, settings: settings({ evalSequences }), now, yieldToEventLoop: noYield });
      expect(outcome.lastEvaluation!.evaluation.n_data).toBe(rows);
      expect(outcome.lastEvaluation!.evaluation.boundPerSequence).toHaveLength(rows);
    }
  });

  it('records, evaluates and checkpoints on schedule, with the loss averaged over each window', async () => {
    const model = new FakeModel(10);
    const records: MetricsRecord[] = [];
    const checkpoints: [CheckpointReason, number][] = [];
    const outcome = await runTraining({
      model,
      data,
      settings: settings(),
      now,
      yieldToEventLoop: noYield,
      hooks: { onRecord: (r) => void records.push(r), onCheckpoint: (reason, state) => void checkpoints.push([reason, state.step]) },
    });
    expect(outcome.stopped).toBe('completed');
    expect(outcome.state.step).toBe(20);
    expect(records.map((r) => r.step)).toEqual([3, 6, 8, 9, 12, 15, 16, 18, 20]);
    expect(records[0].loss).toBe((1 + 2 + 3) / 3);
    expect(records[2].loss).toBe((7 + 8) / 2);
    expect(records[2].grad_norm).toBe(15);
    expect(records[2].lr).toBe(0.1 / 8);
    expect(records[2].epoch).toBe(Number(((8 * 5) / 12).toFixed(4)));
    const evaluated = records.filter((r) => r.bound_bits !== undefined).map((r) => r.step);
    expect(evaluated).toEqual([8, 16, 20]);
    const point = records[2];
    expect(point.grid).toHaveLength(4);
    expect(point.prop_train! + point.prop_val! + point.prop_other!).toBeCloseTo(1, 12);
    expect(records[0].grid).toBeUndefined();
    expect(checkpoints).toEqual([
      ['periodic', 5],
      ['periodic', 10],
      ['periodic', 15],
      ['final', 20],
    ]);
    expect(outcome.lastEvaluation?.step).toBe(20);
    expect(outcome.lastEvaluation?.evaluation.samples).toBe(6);
  });

  it('draws only the grid at evaluations before the last and evalSamples at the last, also when stopped early', async () => {
    const completed = new FakeModel(10);
    const drawn: number[] = [];
    await runTraining({
      model: completed,
      data,
      settings: settings({ evalStrata: 7 }),
      now,
      yieldToEventLoop: noYield,
      hooks: { onEvaluation: (_, e) => void drawn.push(e.samples) },
    });
    expect(drawn).toEqual([4, 4, 6]); // steps 8, 16, 20
    expect(completed.strataSeen).toEqual([7, 7, 7]);
    // early stopping after two worse bounds at steps 16 and 24: the last evaluation is redone with all samples
    const stopped = new FakeModel(10, [5, 6, 7, 8]);
    const outcome = await runTraining({ model: stopped, data, settings: settings({ totalSteps: 40, earlyStopping: 2 }), now, yieldToEventLoop: noYield });
    expect(outcome.stopped).toBe('early_stopping');
    expect(stopped.evaluations).toBe(4);
    expect(outcome.lastEvaluation).toMatchObject({ step: 24, evaluation: { samples: 6, bound_bits: 8 } });
  });

  it('uses the given step function instead of model.trainStep', async () => {
    const model = new FakeModel(10);
    const seen: number[] = [];
    await runTraining({
      model,
      data,
      settings: settings({ totalSteps: 4 }),
      now,
      yieldToEventLoop: noYield,
      stepFunction: (batch) => {
        seen.push(batch.length);
        return model.trainStep(batch);
      },
    });
    expect(seen).toEqual([50, 50, 50, 50]);
  });

  it('an interrupted run resumed from its checkpoint trains on exactly the same batches', async () => {
    const full = new FakeModel(10);
    await runTraining({ model: full, data, settings: settings(), now, yieldToEventLoop: noYield });

    const first = new FakeModel(10);
    const controller = new AbortController();
    let saved: { state: LoopState; hash: number } | undefined;
    const outcome = await runTraining({
      model: first,
      data,
      settings: settings(),
      now,
      yieldToEventLoop: noYield,
      signal: controller.signal,
      hooks: {
        onRecord: (r) => {
          if (r.step === 12) controller.abort();
        },
        onCheckpoint: (reason, state) => {
          if (reason === 'interrupted') saved = { state, hash: first.hash };
        },
      },
    });
    expect(outcome.stopped).toBe('interrupted');
    expect(saved?.state.step).toBe(12);

    const resumed = new FakeModel(10);
    resumed.restore(saved!.state.step, saved!.hash);
    const second = await runTraining({ model: resumed, data, settings: settings(), now, yieldToEventLoop: noYield, resumeState: saved!.state });
    expect(second.stopped).toBe('completed');
    expect(second.stepsThisSession).toBe(8);
    expect(resumed.hash).toBe(full.hash);
  });

  it('an interrupt right after a periodic checkpoint does not write it twice', async () => {
    const controller = new AbortController();
    const checkpoints: [CheckpointReason, number][] = [];
    await runTraining({
      model: new FakeModel(10),
      data,
      settings: settings({ checkpointEvery: 5, logEvery: 5 }),
      now,
      yieldToEventLoop: noYield,
      signal: controller.signal,
      hooks: {
        onCheckpoint: (reason, state) => {
          checkpoints.push([reason, state.step]);
          if (state.step === 10) controller.abort();
        },
      },
    });
    expect(checkpoints).toEqual([
      ['periodic', 5],
      ['periodic', 10],
    ]);
  });

  it('stops early after `earlyStopping` evaluations without improvement, reporting the best', async () => {
    const model = new FakeModel(10, [5, 4, 4.5, 4.2, 4.1]);
    const best: number[] = [];
    const outcome = await runTraining({
      model,
      data,
      settings: settings({ totalSteps: 100, evalEvery: 10, earlyStopping: 2, checkpointEvery: 0 }),
      now,
      yieldToEventLoop: noYield,
      hooks: { onBest: (state) => void best.push(state.bestStep!) },
    });
    expect(outcome.stopped).toBe('early_stopping');
    expect(outcome.state.step).toBe(40);
    expect(outcome.state.bestStep).toBe(20);
    expect(outcome.state.bestBoundBits).toBe(4);
    expect(best).toEqual([10, 20]);
    // the four on schedule, and the last redone with all the samples (the one at step 40 drew only the grid)
    expect(model.evaluations).toBe(5);
  });

  it('stopped early, the final evaluation is of the best model that `bestModel` gives (the one kept)', async () => {
    const model = new FakeModel(10, [5, 4, 4.5, 4.2, 4.1]);
    const bestModel = new FakeModel(10, [3.9]);
    const asked: (number | null)[] = [];
    const outcome = await runTraining({
      model,
      data,
      settings: settings({ totalSteps: 100, evalEvery: 10, earlyStopping: 2, checkpointEvery: 0 }),
      now,
      yieldToEventLoop: noYield,
      hooks: { bestModel: (state) => (asked.push(state.bestStep), bestModel) },
    });
    expect(outcome.stopped).toBe('early_stopping');
    expect(asked).toEqual([20]);
    // the last step's model: its four scheduled evaluations only; the best one: the final evaluation, all samples
    expect(model.evaluations).toBe(4);
    expect(bestModel.evaluations).toBe(1);
    expect(outcome.lastEvaluation).toMatchObject({ step: 20, evaluation: { bound_bits: 3.9, samples: 6 } });
    // a completed run never asks
    const completed = await runTraining({
      model: new FakeModel(10),
      data,
      settings: settings(),
      now,
      yieldToEventLoop: noYield,
      hooks: { bestModel: () => bestModel },
    });
    expect(completed.stopped).toBe('completed');
    expect(bestModel.evaluations).toBe(1);
  });

  it('a finished run resumed trains no more but still evaluates', async () => {
    const model = new FakeModel(10);
    model.restore(20, 1);
    const outcome = await runTraining({
      model,
      data,
      settings: settings(),
      now,
      yieldToEventLoop: noYield,
      resumeState: { step: 20, bestStep: null, bestBoundBits: null, evalsSinceBest: 0, elapsedSeconds: 3 },
    });
    expect(outcome.stepsThisSession).toBe(0);
    expect(outcome.lastEvaluation?.step).toBe(20);
    expect(outcome.state.elapsedSeconds).toBeGreaterThanOrEqual(3);
  });
});
