// The worker pool (src/parallel/, src/node/pool.ts): data-parallel training steps equal one
// model's bit for bit whatever the number of replicas (the batch's fixed shards, added in shard
// order), in shared and transfer modes alike, the replicas stay bit-identical, and sampling,
// inpainting and the bound's evaluation equal one worker's bit for bit.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import yargs from 'yargs';
import { runCli } from '../src/commands/index.js';
import { MemoryIo } from '../src/commands/memory-io.js';
import { NodeIo } from '../src/node/io.js';
import { heartbeatData, sequenceSet } from '../src/data.js';
import { UserError } from '../src/errors.js';
import { DiffusionModel, type ModelConfig, type TrainingConfig } from '../src/model.js';
import '../src/node/wasm-file.js';
import { availableCores, createNodePool } from '../src/node/pool.js';
import { splitEvenly, sumShards, wasmAdder } from '../src/parallel/gradients.js';
import { ParallelModel, summariseBound } from '../src/parallel/pool.js';
import { ModelReplica } from '../src/parallel/replica.js';
import { evaluationSeeds, runTraining } from '../src/training.js';

const L = 10;
const modelConfig = (architecture: 'paper' | 'mlp', T: number): ModelConfig => ({
  length: L,
  T,
  architecture,
  parameterisation: architecture === 'paper' ? 'direct' : 'x0',
  schedule: 'paper',
  hidden: 16,
  layers: 2,
  time_embedding: 8,
  kernel: 0,
  channels: 32,
  levels: 0,
  blocks: 1,
  padding: 'zero',
  position_embedding: null,
});
const trainingConfig = (objective: 'full' | 'sampled' | 'importance'): TrainingConfig => ({
  lr: 3e-3,
  lr_schedule: 'cosine',
  warmup_steps: 2,
  total_steps: 40,
  min_lr_ratio: 0.1,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weight_decay: 0.01,
  clip_norm: 1,
  ema_decay: 0.9,
  objective,
});

/** Batch of step s: heartbeat rows (period 5) in a step-dependent order. */
function batchOf(rows: number, s: number): Uint8Array {
  const out = new Uint8Array(rows * L);
  for (let r = 0; r < rows; r++) for (let i = (r * 7 + s) % 5; i < L; i += 5) out[r * L + i] = 1;
  return out;
}

const pools: ParallelModel[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});
async function pool(options: Parameters<typeof createNodePool>[0]): Promise<ParallelModel> {
  const p = await createNodePool(options);
  pools.push(p);
  return p;
}

describe('pool helpers', () => {
  it('splits n into contiguous near-equal ranges', () => {
    expect(splitEvenly(10, 3)).toEqual([
      { start: 0, count: 4 },
      { start: 4, count: 3 },
      { start: 7, count: 3 },
    ]);
    expect(splitEvenly(1, 2)).toEqual([
      { start: 0, count: 1 },
      { start: 1, count: 0 },
    ]);
  });

  it('sums shards with f32 rounding after every addition, in shard order', () => {
    const a = Float32Array.of(1, 0.1, 3e38, 1e-8);
    const b = Float32Array.of(2 ** -24, 0.2, 3e38, 1);
    const c = Float32Array.of(2 ** -24, 0.3, -3e38, -1);
    const out = new Float32Array(4);
    sumShards(out, [a, b, c]);
    const f = Math.fround;
    for (let i = 0; i < 4; i++) expect(out[i]).toBe(f(f(a[i] + b[i]) + c[i]));
    expect(out[0]).toBe(1); // (1 + 2^-24) rounds to 1 in f32, then + 2^-24 again
    expect(out[2]).toBe(Infinity); // f32 overflow, as in the core
    expect(() => sumShards(out, [Float32Array.of(1)])).toThrow();
    // starting from the shard the buffer holds (0 or 1) gives the same bits
    for (const holds of [0, 1, 2]) {
      const own = Float32Array.from([a, b, c][holds]);
      sumShards(own, [a, b, c], holds);
      expect(own).toEqual(out);
    }
  });

  it('adds shards in wasm with the same f32 results as in JavaScript', async () => {
    const model = await DiffusionModel.create(modelConfig('paper', 12), trainingConfig('full'), 2);
    const n = model.parameterCount;
    const part = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * (k + 1.3)) * 10 ** ((i % 9) - 4));
    const parts = [part(0), part(1), part(2)];
    const want = new Float32Array(n);
    sumShards(want, parts);
    const replica = new ModelReplica(model);
    for (const holds of [0, 1, 2]) {
      const add = wasmAdder(replica);
      const gradient = replica.gradientView();
      gradient.set(parts[holds]);
      sumShards(gradient, parts, holds, add);
      expect(replica.gradientView()).toEqual(want);
    }
    model.free();
  });

  it('summarises totals exactly as the core does', async () => {
    const model = await DiffusionModel.create(modelConfig('paper', 12), trainingConfig('full'), 2);
    const data = heartbeatData({ length: L, period: 5, holdout: 0, count: 5 }).train.bits;
    const repeats = 3;
    const totals = new ModelReplica(model).boundTotals(data, 0, { repeats, seed: 7 });
    expect(summariseBound(totals, 5, repeats)).toEqual(model.evaluate(data, { repeats, seed: 7 }));
    model.free();
  });
});

describe('data-parallel training', () => {
  for (const [architecture, objective, T] of [
    ['paper', 'full', 30],
    ['mlp', 'importance', 6],
    ['mlp', 'sampled', 30],
  ] as const) {
    it(`${architecture}/${objective}: equals one model bit for bit with 2 and 3 replicas; replicas stay identical`, async () => {
      const steps = objective === 'importance' ? 12 : 4;
      const one = await DiffusionModel.create(modelConfig(architecture, T), trainingConfig(objective), 5);
      const local = await DiffusionModel.create(modelConfig(architecture, T), trainingConfig(objective), 5);
      const withLocal = await pool({ workers: 1, local });
      const workersOnly = await pool({ workers: 2, checkpoint: one.toBytes(), shared: false });
      const three = await pool({ workers: 3, checkpoint: one.toBytes() });
      expect(withLocal.replicas).toBe(2);
      for (let s = 0; s < steps; s++) {
        // 13 rows: eight shards of 2 and 1 rows; 5 rows: five shards, fewer than some pools' parts
        const batch = batchOf(s % 4 === 3 ? 5 : 13, s);
        const want = one.trainStep(batch);
        expect(await withLocal.trainStep(batch)).toEqual(want);
        expect(await workersOnly.trainStep(batch)).toEqual(want);
        expect(await three.trainStep(batch)).toEqual(want);
      }
      expect(withLocal.step).toBe(steps);
      expect(local.step).toBe(steps);
      const want = one.toBytes();
      for (const p of [withLocal, workersOnly, three]) {
        for (const values of await p.replicaParameters()) expect(values).toEqual(one.parameters());
        // weights, Adam moments, EMA and importance history: the same checkpoint bytes
        expect(await p.toBytes()).toEqual(want);
      }
      // The local replica is a complete model: its checkpoint continues like the pool's.
      const restored = await DiffusionModel.fromBytes(await withLocal.toBytes());
      expect(restored.parameters()).toEqual(one.parameters());
      expect(restored.step).toBe(steps);
      restored.free();
      one.free();
    });
  }

  it('a batch smaller than the pool leaves replicas without rows and still agrees', async () => {
    const one = await DiffusionModel.create(modelConfig('paper', 8), trainingConfig('full'), 9);
    const p = await pool({ workers: 3, checkpoint: one.toBytes() });
    const batch = batchOf(2, 0);
    const want = one.trainStep(batch);
    expect(await p.trainStep(batch)).toEqual(want);
    for (const values of await p.replicaParameters()) expect(values).toEqual(one.parameters());
    one.free();
  });

  it('runs the training loop (steps, evaluations, samples) with the pool as the model', async () => {
    const local = await DiffusionModel.create(modelConfig('mlp', 20), trainingConfig('sampled'), 1);
    const p = await pool({ workers: 1, local });
    const data = heartbeatData({ length: L, period: 5, holdout: 1, count: 40 });
    let clock = 0;
    const outcome = await runTraining({
      model: p,
      data: { train: data.train, val: data.val, trainSet: sequenceSet(data.train), valSet: sequenceSet(data.val) },
      settings: {
        totalSteps: 6,
        batchSize: 8,
        seed: 3,
        logEvery: 2,
        evalEvery: 3,
        evalRepeats: 2,
        evalSequences: 0,
        evalSamples: 5,
        evalStrata: 3,
        gridSize: 4,
        checkpointEvery: 0,
        earlyStopping: 0,
      },
      now: () => (clock += 1),
      stepFunction: (batch) => p.trainStep(batch),
      yieldToEventLoop: async () => {},
    });
    expect(outcome.stopped).toBe('completed');
    expect(outcome.state.step).toBe(6);
    expect(local.step).toBe(6);
    const evaluation = outcome.lastEvaluation!.evaluation;
    expect(evaluation.samples).toBe(5);
    // the pool's evaluation is the local model's, bit for bit
    const seeds = evaluationSeeds(3);
    expect(evaluation.bound_bits).toBe(local.evaluate(data.val.bits, { repeats: 2, strata: 3, seed: seeds.boundSeed }).boundBits);
    expect(evaluation.sampleLines.join('')).toBe(Array.from(local.sample(5, { seed: seeds.sampleSeed }).samples).join(''));
  });
});

describe('sampling and evaluation over the pool', () => {
  it('samples (with frames), inpaintings and bounds equal one worker bit for bit', async () => {
    const one = await DiffusionModel.create(modelConfig('paper', 25), trainingConfig('full'), 4);
    one.trainStep(batchOf(8, 0)); // EMA differs from the weights: replicas must use it too
    const p = await pool({ workers: 2, checkpoint: one.toBytes() });
    const want = one.sample(11, { seed: 6, recordEvery: 10 });
    const got = await p.sample(11, { seed: 6, recordEvery: 10 });
    expect(got.samples).toEqual(want.samples);
    expect(got.frames.map((f) => f.t)).toEqual(want.frames.map((f) => f.t));
    got.frames.forEach((f, k) => expect(f.bits).toEqual(want.frames[k].bits));
    const pattern = Uint8Array.from({ length: L }, (_, i) => (i % 3 === 0 ? i % 2 : 2));
    expect(await p.inpaint(pattern, 9, { seed: 2 })).toEqual(one.inpaint(pattern, 9, { seed: 2 }));
    for (const options of [
      { seed: 4, mode: 'clamp' as const },
      { seed: 4, mode: 'smc' as const, particles: 3 },
    ]) {
      expect(await p.inpaint(pattern, 7, options)).toEqual(one.inpaint(pattern, 7, options));
    }
    const data = batchOf(7, 3);
    expect(await p.evaluate(data, { repeats: 3, seed: 5 })).toEqual(one.evaluate(data, { repeats: 3, seed: 5 }));
    const stratified = await p.evaluate(data, { repeats: 3, strata: 4, seed: 5 });
    expect(stratified).toEqual(one.evaluate(data, { repeats: 3, strata: 4, seed: 5 }));
    expect(stratified.strata).toBe(4);
    expect(stratified.boundBits).not.toBe(one.evaluate(data, { repeats: 3, seed: 5 }).boundBits);
    one.free();
  });

  it('a strided chain (steps < T) draws the same samples, frames and completions over the pool', async () => {
    const one = await DiffusionModel.create(modelConfig('mlp', 25), trainingConfig('full'), 4);
    one.trainStep(batchOf(8, 0));
    const p = await pool({ workers: 2, checkpoint: one.toBytes() });
    const strided = one.sample(11, { seed: 6, recordEvery: 2, steps: 7 });
    expect(strided.frames.map((f) => f.t)).toEqual([25, 17, 10, 3, 0]); // the chain visits floor(k·25/7): 25, 21, 17, 14, 10, 7, 3, 0
    const stridedPool = await p.sample(11, { seed: 6, recordEvery: 2, steps: 7 });
    expect(stridedPool.samples).toEqual(strided.samples);
    stridedPool.frames.forEach((f, k) => expect(f.bits).toEqual(strided.frames[k].bits));
    expect(strided.samples).not.toEqual(one.sample(11, { seed: 6 }).samples);
    expect(one.sample(11, { seed: 6, steps: 25 }).samples).toEqual(one.sample(11, { seed: 6 }).samples);
    const pattern = Uint8Array.from({ length: L }, (_, i) => (i % 3 === 0 ? i % 2 : 2));
    expect(await p.inpaint(pattern, 7, { seed: 4, steps: 5 })).toEqual(one.inpaint(pattern, 7, { seed: 4, steps: 5 }));
    expect(() => one.sample(2, { steps: 26 })).toThrow(UserError);
    expect(() => one.inpaint(pattern, 2, { steps: 0 })).toThrow(UserError);
    // a direct model predicts x_(t-1) itself and cannot jump
    const direct = await DiffusionModel.create(modelConfig('paper', 25), trainingConfig('full'), 4);
    expect(() => direct.sample(2, { steps: 5 })).toThrow(/x0 parameterisation/);
    expect(direct.sample(2, { steps: 25 }).samples).toEqual(direct.sample(2).samples);
    one.free();
    direct.free();
  });

  it('reports bad input as UserError and stays usable', async () => {
    const one = await DiffusionModel.create(modelConfig('paper', 5), trainingConfig('full'), 4);
    const p = await pool({ workers: 1, checkpoint: one.toBytes() });
    await expect(p.trainStep(new Uint8Array(L + 1))).rejects.toThrow(UserError);
    await expect(p.inpaint(new Uint8Array(L).fill(7), 2)).rejects.toThrow(UserError);
    expect((await p.sample(3, { seed: 1 })).samples).toEqual(one.sample(3, { seed: 1 }).samples);
    await expect(ParallelModel.create({ spawn: () => undefined as never, workers: 0 })).rejects.toThrow(UserError);
    expect(availableCores()).toBeGreaterThanOrEqual(1);
    one.free();
  });

  it('closes more than once (also concurrently) without hanging, and a closed pool refuses work', async () => {
    const one = await DiffusionModel.create(modelConfig('paper', 5), trainingConfig('full'), 4);
    const p = await createNodePool({ workers: 1, checkpoint: one.toBytes() });
    await Promise.all([p.close(), p.close()]);
    await p.close();
    await expect(p.sample(2, { seed: 1 })).rejects.toThrow('the pool is closed');
    one.free();
  });
});

describe('train and evaluate --workers', () => {
  it('trains with a pool (this thread + workers) to the bytes of one worker, evaluates identically, and rejects bad counts', async () => {
    const work = mkdtempSync(join(tmpdir(), 'parallel-cli-'));
    const io = new NodeIo();
    const quietly = async (args: string[]) => {
      const write = process.stdout.write;
      process.stdout.write = () => true;
      try {
        return await runCli(yargs, args, io);
      } finally {
        process.stdout.write = write;
      }
    };
    try {
      const common = ['train', '--T', '20', '--steps', '12', '--eval-every', '0', '--no-plots', '--quiet', '--out', work];
      expect(await quietly([...common, '--name', 'one', '--workers', '1'])).toBe(0);
      expect(await quietly([...common, '--name', 'two', '--workers', '2'])).toBe(0);
      expect(await quietly([...common, '--name', 'three', '--workers', '3'])).toBe(0);
      const records = (name: string) =>
        readFileSync(join(work, name, 'metrics.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line));
      const [one, two] = [records('one'), records('two')];
      const { elapsed: _one, ...lastOne } = one.at(-1);
      const { elapsed: _two, ...lastTwo } = two.at(-1);
      expect(lastTwo).toEqual(lastOne);
      // the same seed on one thread and on two: the same model file, byte for byte
      for (const name of ['two', 'three']) {
        expect(readFileSync(join(work, name, 'model.safetensors'))).toEqual(readFileSync(join(work, 'one', 'model.safetensors')));
      }
      await expect(runCli(yargs, [...common, '--name', 'bad', '--workers', '0'], io)).rejects.toThrow(/--workers: expected a whole number of at least 1/);
      await expect(runCli(yargs, [...common, '--name', 'bad', '--workers', '2'], new MemoryIo())).rejects.toThrow(/no workers here/);
      // evaluate: the same bound and samples on one thread and on two
      const evaluate = async (workers: string) => {
        const lines: string[] = [];
        const write = process.stdout.write;
        process.stdout.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stdout.write;
        try {
          expect(
            await runCli(yargs, ['evaluate', join(work, 'one', 'model.safetensors'), '--json', '--repeats', '3', '--samples', '30', '--workers', workers], io),
          ).toBe(0);
        } finally {
          process.stdout.write = write;
        }
        return JSON.parse(lines.join(''));
      };
      const [single, pooled] = [await evaluate('1'), await evaluate('2')];
      expect(pooled).toEqual(single);
      expect(single.bound_repeats).toBe(3);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
