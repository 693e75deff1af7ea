// `export CKPT --out FILE` and src/export.ts: the inference (EMA) weights in PyTorch layout with
// metadata describing the network (docs/FORMAT.md). python/test_reference.py checks that the file
// is enough to recompute the reverse kernel; here: the layout mapping, the weights chosen, the
// metadata, and the command's outputs and errors.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/checkpoint.js';
import { runCli } from '../src/commands/index.js';
import { MemoryIo } from '../src/commands/memory-io.js';
import { coreTrainingConfig, DEFAULTS } from '../src/config.js';
import { UserError } from '../src/errors.js';
import { EXPORT_FORMAT, exportBytes, exportTensors } from '../src/export.js';
import { DiffusionModel, type LayoutEntry, type ModelConfig } from '../src/model.js';
import '../src/node/wasm-file.js';

const root = resolve(import.meta.dirname, '..');
const modelMissing = ['pkg/bernoulli_diffusion_core_bg.wasm'].filter((path) => !existsSync(join(root, path)));

async function userError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

/** A layout of the given tensors, one after another. */
function layoutOf(tensors: [string, number[]][]): LayoutEntry[] {
  let offset = 0;
  return tensors.map(([name, shape]) => {
    const entry = { name, shape, offset, decay: name.endsWith('weight') };
    offset += shape.reduce((p, d) => p * d, 1);
    return entry;
  });
}

const arange = (n: number) => Float32Array.from({ length: n }, (_, i) => i + 0.5);

describe('export layout (no wasm)', () => {
  it('transposes linear weights to [out, in], readouts per t, depthwise taps to [C, 1, K]; copies biases', () => {
    // paper: L = 3, H = 2, T = 4
    const paper = layoutOf([
      ['shared.0.weight', [3, 2]],
      ['shared.0.bias', [2]],
      ['readout.weight', [4, 2, 3]],
      ['readout.bias', [4, 3]],
    ]);
    const values = arange(6 + 2 + 24 + 12);
    const out = new Map(exportTensors('paper', paper, values).map((t) => [t.name, t]));
    expect([...out.keys()]).toEqual(paper.map((e) => e.name));
    const w = out.get('shared.0.weight')!;
    expect(w.shape).toEqual([2, 3]);
    for (let i = 0; i < 3; i++) for (let o = 0; o < 2; o++) expect((w.data as Float32Array)[o * 3 + i]).toBe(values[i * 2 + o]); // W_export[o, i] = W_train[i, o]
    const r = out.get('readout.weight')!;
    expect(r.shape).toEqual([4, 3, 2]);
    for (let t = 0; t < 4; t++) {
      for (let h = 0; h < 2; h++) for (let l = 0; l < 3; l++) expect((r.data as Float32Array)[t * 6 + l * 2 + h]).toBe(values[8 + t * 6 + h * 3 + l]);
    }
    expect(out.get('readout.bias')!.shape).toEqual([4, 3]);
    expect([...(out.get('readout.bias')!.data as Float32Array)]).toEqual([...values.subarray(32, 44)]);

    // circular: C = 2, K = 3, E = 4, one block
    const circular = layoutOf([
      ['input.weight', [2, 2]],
      ['input.bias', [2]],
      ['time.weight', [4, 4]],
      ['blocks.0.conv.weight', [3, 2]],
      ['blocks.0.conv.bias', [2]],
      ['blocks.0.fc1.weight', [2, 2]],
      ['blocks.0.fc1.bias', [2]],
      ['blocks.0.fc2.weight', [2, 2]],
      ['blocks.0.fc2.bias', [2]],
      ['output.weight', [2, 1]],
      ['output.bias', [1]],
    ]);
    const cv = arange(4 + 2 + 16 + 6 + 2 + 4 + 2 + 4 + 2 + 2 + 1);
    const cout = new Map(exportTensors('circular', circular, cv).map((t) => [t.name, t]));
    const conv = cout.get('blocks.0.conv.weight')!;
    expect(conv.shape).toEqual([2, 1, 3]);
    const convAt = circular.find((e) => e.name === 'blocks.0.conv.weight')!.offset;
    for (let d = 0; d < 3; d++) for (let c = 0; c < 2; c++) expect((conv.data as Float32Array)[c * 3 + d]).toBe(cv[convAt + d * 2 + c]);
    expect(cout.get('output.weight')!.shape).toEqual([1, 2]);
    expect(cout.get('time.weight')!.shape).toEqual([4, 4]);

    // mlp: input [2L, H] -> [H, 2L]
    const mlp = layoutOf([
      ['input.weight', [6, 4]],
      ['input.bias', [4]],
      ['time.weight', [2, 4]],
      ['output.weight', [4, 3]],
      ['output.bias', [3]],
    ]);
    const mout = exportTensors('mlp', mlp, arange(24 + 4 + 8 + 12 + 3));
    expect(mout.map((t) => t.shape)).toEqual([[4, 6], [4], [4, 2], [3, 4], [3]]);
  });

  it('lays out the unet as PyTorch modules: convs [out, in, k] / [out, in, kh, kw], 1x1 convs, position [C, ...shape]', () => {
    // 1-D, L = 5: C = 2, one level (no down/up), E = 4
    const oneD = layoutOf([
      ['stem.weight', [3, 2, 2]],
      ['stem.bias', [2]],
      ['position', [5, 2]],
      ['time.fc1.weight', [4, 4]],
      ['time.fc1.bias', [4]],
      ['time.proj.weight', [4, 2]],
      ['time.proj.bias', [2]],
      ['down.0.blocks.0.conv1.weight', [3, 2, 2]],
      ['down.0.blocks.0.conv1.bias', [2]],
      ['up.0.blocks.0.skip.weight', [4, 2]],
      ['output.weight', [2, 1]],
      ['output.bias', [1]],
    ]);
    const v1 = arange(oneD.at(-1)!.offset + 1);
    const at = (layout: LayoutEntry[], name: string) => layout.find((e) => e.name === name)!.offset;
    const o1 = new Map(exportTensors('unet', oneD, v1, [5]).map((t) => [t.name, t]));
    expect([...o1.keys()]).toEqual(oneD.map((e) => e.name));
    expect(oneD.map((e) => o1.get(e.name)!.shape)).toEqual([[2, 2, 3], [2], [2, 5], [4, 4], [4], [2, 4], [2], [2, 2, 3], [2], [2, 4, 1], [1, 2, 1], [1]]);
    // conv: W_export[o, i, k] = W_train[k, i, o]
    const stem = o1.get('stem.weight')!.data as Float32Array;
    for (let k = 0; k < 3; k++) for (let i = 0; i < 2; i++) for (let o = 0; o < 2; o++) expect(stem[(o * 2 + i) * 3 + k]).toBe(v1[(k * 2 + i) * 2 + o]);
    // position: [C, L][c, p] = [P, C][p, c]
    const position = o1.get('position')!.data as Float32Array;
    for (let p = 0; p < 5; p++) for (let c = 0; c < 2; c++) expect(position[c * 5 + p]).toBe(v1[at(oneD, 'position') + p * 2 + c]);
    // 1x1 skip: [out, in, 1][o, i] = [in, out][i, o]
    const skip = o1.get('up.0.blocks.0.skip.weight')!.data as Float32Array;
    for (let i = 0; i < 4; i++) for (let o = 0; o < 2; o++) expect(skip[o * 4 + i]).toBe(v1[at(oneD, 'up.0.blocks.0.skip.weight') + i * 2 + o]);
    expect([...(o1.get('output.weight')!.data as Float32Array)]).toEqual([...v1.subarray(at(oneD, 'output.weight'), at(oneD, 'output.weight') + 2)]);

    // 2-D, 2x3 grid: taps 3x3 row-major (tap = dy·3 + dx) -> [out, in, 3, 3]; a 1-row grid [1, 4]: taps 1x3
    const twoD = layoutOf([
      ['stem.weight', [9, 2, 3]],
      ['position', [6, 3]],
      ['down.1.downsample.weight', [9, 3, 3]],
      ['output.weight', [3, 1]],
    ]);
    const v2 = arange(54 + 18 + 81 + 3);
    const o2 = new Map(exportTensors('unet', twoD, v2, [2, 3]).map((t) => [t.name, t]));
    expect(twoD.map((e) => o2.get(e.name)!.shape)).toEqual([
      [3, 2, 3, 3],
      [3, 2, 3],
      [3, 3, 3, 3],
      [1, 3, 1, 1],
    ]);
    const stem2 = o2.get('stem.weight')!.data as Float32Array;
    for (let dy = 0; dy < 3; dy++) {
      for (let dx = 0; dx < 3; dx++) {
        for (let i = 0; i < 2; i++) for (let o = 0; o < 3; o++) expect(stem2[((o * 2 + i) * 3 + dy) * 3 + dx]).toBe(v2[((dy * 3 + dx) * 2 + i) * 3 + o]);
      }
    }
    const position2 = o2.get('position')!.data as Float32Array;
    for (let y = 0; y < 2; y++)
      for (let x = 0; x < 3; x++) for (let c = 0; c < 3; c++) expect(position2[(c * 2 + y) * 3 + x]).toBe(v2[54 + (y * 3 + x) * 3 + c]);
    expect(exportTensors('unet', layoutOf([['stem.weight', [3, 2, 4]]]), arange(24), [1, 4])[0].shape).toEqual([4, 2, 1, 3]);
    // the data shape must fit the tensors
    expect(() => exportTensors('unet', twoD, v2, [6])).toThrow(/taps/);
    expect(() => exportTensors('unet', layoutOf([['position', [6, 3]]]), arange(18), [5])).toThrow(/positions/);
    expect(() => exportTensors('unet', twoD, v2)).toThrow(/needs the data's shape/);
  });

  it('refuses an architecture or a tensor it has no rule for', () => {
    expect(() => exportTensors('transformer', layoutOf([['x.weight', [2, 2]]]), arange(4))).toThrow(UserError);
    expect(() => exportTensors('unet', layoutOf([['down.0.mystery.weight', [2, 2]]]), arange(4), [4])).toThrow(/no layout rule/);
    expect(() => exportTensors('mlp', layoutOf([['mystery.weight', [2, 2]]]), arange(4))).toThrow(/no layout rule for tensor 'mystery.weight'/);
    expect(() => exportTensors('mlp', layoutOf([['input.weight', [2, 2, 2]]]), arange(8))).toThrow(/expected rank 2/);
  });
});

/** The U-Net keys (the core takes every key; these are the defaults but for the channels). */
const UNET_KEYS = { shape: null, channels: 3, max_channels: 0, levels: 0, blocks: 1, padding: 'zero', position_embedding: null } as const;
const CONFIGS: ModelConfig[] = [
  { length: 6, T: 7, architecture: 'paper', parameterisation: 'direct', schedule: 'paper', hidden: 5, layers: 2, time_embedding: 4, kernel: 0, ...UNET_KEYS },
  { length: 6, T: 7, architecture: 'mlp', parameterisation: 'x0', schedule: 'cosine', hidden: 5, layers: 2, time_embedding: 4, kernel: 0, ...UNET_KEYS },
  { length: 6, T: 7, architecture: 'circular', parameterisation: 'x0', schedule: 'linear', hidden: 3, layers: 1, time_embedding: 4, kernel: 0, ...UNET_KEYS },
  // 6 -> 3: two levels (chosen), zero padding, position embedding (auto: on)
  { length: 6, T: 7, architecture: 'unet', parameterisation: 'x0', schedule: 'paper', hidden: 5, layers: 1, time_embedding: 4, kernel: 0, ...UNET_KEYS },
  // 3x2 image, circular, two levels as configured, no position embedding (auto: off), two blocks
  {
    length: 6,
    T: 7,
    architecture: 'unet',
    parameterisation: 'direct',
    schedule: 'cosine',
    hidden: 5,
    layers: 1,
    time_embedding: 4,
    kernel: 0,
    ...UNET_KEYS,
    shape: [3, 2],
    levels: 2,
    blocks: 2,
    padding: 'circular',
  } as ModelConfig,
];

/** The export's description of a unet config of CONFIGS (levels and position embedding resolved). */
function unetMetadata(config: ModelConfig): Record<string, string> {
  const shape = (config as ModelConfig & { shape: number[] | null }).shape;
  if (config.architecture !== 'unet') return {};
  return {
    shape: JSON.stringify(shape ?? [config.length]),
    channels: '3',
    max_channels: '0',
    levels: '2', // 6 -> 3 (<= 4): two levels by the rule; the image configures 2
    blocks: String(config.blocks),
    padding: config.padding as string,
    position_embedding: String(config.padding === 'zero'),
  };
}

describe.skipIf(modelMissing.length > 0)('exportBytes of a trained model', () => {
  it('holds the EMA weights in export layout, every layout tensor once, and metadata describing the network', async () => {
    for (const config of CONFIGS) {
      const training = { ...coreTrainingConfig(DEFAULTS.training, 10), ema_decay: 0.8, lr: 0.01, warmup_steps: 0 };
      const model = await DiffusionModel.create(config, training, 4);
      for (let s = 0; s < 5; s++) model.trainStep(Uint8Array.from({ length: 8 * 6 }, (_, k) => (k % 3 === s % 3 ? 1 : 0)));
      const bytes = exportBytes(model);
      expect(exportBytes(model)).toEqual(bytes); // deterministic
      const { tensors, metadata } = decodeSafetensors(bytes, 'export');
      const layout = model.layout();
      expect([...tensors.keys()]).toEqual(layout.map((e) => e.name));
      // the EMA (from the training checkpoint's ema.* tensors), not the current weights
      const checkpoint = decodeSafetensors(model.toBytes(), 'checkpoint').tensors;
      const ema = model.inferenceParameters();
      expect(ema).not.toEqual(model.parameters());
      const shape = (config as ModelConfig & { shape: number[] | null }).shape ?? [6];
      const expected = new Map(exportTensors(config.architecture, layout, ema, shape).map((t) => [t.name, t]));
      if (config.architecture === 'unet') {
        expect(layout.some((e) => e.name === 'position')).toBe(config.padding === 'zero');
        expect(expected.get('stem.weight')!.shape).toEqual([3, 2, ...shape.map(() => 3)]);
      }
      for (const entry of layout) {
        expect([...(checkpoint.get(`ema.${entry.name}`)!.data as Float32Array)]).toEqual([
          ...ema.subarray(entry.offset, entry.offset + entry.shape.reduce((p, d) => p * d, 1)),
        ]);
        const got = tensors.get(entry.name)!;
        expect(got.dtype).toBe('F32');
        expect(got.shape).toEqual(expected.get(entry.name)!.shape);
        expect([...(got.data as Float32Array)]).toEqual([...(expected.get(entry.name)!.data as Float32Array)]);
      }
      expect(metadata).toMatchObject({
        format: EXPORT_FORMAT,
        format_version: '1',
        architecture: config.architecture,
        parameterisation: config.parameterisation,
        schedule: config.schedule,
        length: '6',
        T: '7',
        hidden: String(config.hidden),
        layers: String(config.layers),
        time_embedding: '4',
        kernel: config.architecture === 'circular' ? '6' : '0',
        weights: 'ema',
        step: '5',
        ...unetMetadata(config),
      });
      if (config.architecture !== 'unet')
        for (const key of ['shape', 'channels', 'max_channels', 'levels', 'blocks', 'padding', 'position_embedding']) expect(metadata).not.toHaveProperty(key);
      expect(JSON.parse(metadata.model_config)).toEqual(config);
      // a model loaded from its checkpoint exports the same bytes (the metadata does not depend on how it was made)
      const loaded = await DiffusionModel.fromBytes(model.toBytes());
      expect(exportBytes(loaded)).toEqual(bytes);
      loaded.free();
      model.free();
    }
  });

  it('exports the weights themselves when the model has no EMA', async () => {
    const model = await DiffusionModel.create(CONFIGS[1], { ...coreTrainingConfig(DEFAULTS.training, 10), warmup_steps: 0, ema_decay: 0 }, 1);
    model.trainStep(new Uint8Array(4 * 6).fill(1));
    expect(model.inferenceParameters()).toEqual(model.parameters());
    const { metadata, tensors } = decodeSafetensors(exportBytes(model), 'export');
    expect(metadata.weights).toBe('weights');
    const input = model.layout()[0];
    const train = model.parameters().subarray(input.offset, input.offset + 12 * 5); // [2L, H] = [12, 5]
    expect((tensors.get('input.weight')!.data as Float32Array)[3 * 12 + 7]).toBe(train[7 * 5 + 3]); // [o = 3, i = 7]
    model.free();
  });
});

describe.skipIf(modelMissing.length > 0)('export command', () => {
  it('writes the export of a run, and refuses bad input with one line, writing nothing', async () => {
    const io = new MemoryIo({ files: { 'train.txt': '101010\n010101\n' } });
    const train = [
      'train',
      '--data',
      'train.txt',
      '--T',
      '5',
      '--steps',
      '6',
      '--batch-size',
      '4',
      '--eval-every',
      '0',
      '--early-stopping',
      '0',
      '--checkpoint-every',
      '0',
      '--name',
      'e',
      '--no-plots',
    ];
    expect(await runCli(yargs, train, io)).toBe(0);
    const checkpoint = 'results/e/model.safetensors';
    expect(await runCli(yargs, ['export', checkpoint, '--out', 'weights.safetensors'], io)).toBe(0);
    expect(io.output.at(-1)).toMatch(/^wrote weights\.safetensors \(mlp, 13 tensors, \d+ EMA weights of step 6\)$/);
    const exported = decodeSafetensors(io.files.get('/weights.safetensors')!, 'weights');
    expect(exported.metadata.format).toBe(EXPORT_FORMAT);
    expect(exported.tensors.get('input.weight')!.shape).toEqual([DEFAULTS.model.hidden, 12]);
    // the same checkpoint exports to the same bytes
    expect(await runCli(yargs, ['export', checkpoint, '--out', 'again.safetensors'], io)).toBe(0);
    expect(io.files.get('/again.safetensors')).toEqual(io.files.get('/weights.safetensors'));

    const before = [...io.files.keys()].sort();
    expect(await userError(runCli(yargs, ['export', checkpoint], io))).toMatch(/Missing required argument: out/);
    expect(await userError(runCli(yargs, ['export', checkpoint, '--out', checkpoint], io))).toBe(
      `--out: ${checkpoint} is the checkpoint itself; choose another file`,
    );
    expect(await userError(runCli(yargs, ['export', 'nothing.safetensors', '--out', 'x.safetensors'], io))).toBe(
      'cannot read nothing.safetensors: no such file or folder',
    );
    expect(await userError(runCli(yargs, ['export', 'weights.safetensors', '--out', 'x.safetensors'], io))).toMatch(
      /^weights\.safetensors: not a bernoulli-diffusion checkpoint/,
    );
    expect(await userError(runCli(yargs, ['export', checkpoint, '--out', 'missing/x.safetensors'], io))).toBe(
      'cannot write missing/x.safetensors: no such file or folder',
    );
    io.setFile('broken.safetensors', io.files.get('/weights.safetensors')!.subarray(0, 100));
    expect(await userError(runCli(yargs, ['export', 'broken.safetensors', '--out', 'x.safetensors'], io))).toMatch(
      /^broken\.safetensors: not a valid safetensors checkpoint: /,
    );
    expect([...io.files.keys()].sort()).toEqual([...before, '/broken.safetensors'].sort());
  });

  it('the real CLI: exit 2 and one line for a user error, 0 and the file for a good one', async () => {
    const work = mkdtempSync(join(tmpdir(), 'bd-export-'));
    const cli = (args: string[]) =>
      spawnSync(process.execPath, [join(root, 'bin', 'bernoulli-diffusion.js'), ...args], {
        cwd: work,
        env: { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '1', FORCE_COLOR: '0' },
        encoding: 'utf8',
        timeout: 120_000,
      });
    writeFileSync(join(work, 'not-a-checkpoint.safetensors'), 'hello');
    const bad = cli(['export', 'not-a-checkpoint.safetensors', '--out', 'w.safetensors']);
    expect(bad.status, bad.stderr).toBe(2);
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^error: not-a-checkpoint\.safetensors: not a valid safetensors checkpoint/);
    expect(existsSync(join(work, 'w.safetensors'))).toBe(false);
    expect(cli(['--help']).stdout).toMatch(/export <checkpoint>/);
    // a checkpoint written by the library exports
    const model = await DiffusionModel.create(CONFIGS[2], { ...coreTrainingConfig(DEFAULTS.training, 10), warmup_steps: 0 }, 3);
    writeFileSync(join(work, 'c.safetensors'), model.toBytes());
    model.free();
    const good = cli(['export', 'c.safetensors', '--out', 'w.safetensors']);
    expect(good.status, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/^wrote w\.safetensors \(circular, 11 tensors/);
    expect(decodeSafetensors(new Uint8Array(readFileSync(join(work, 'w.safetensors'))), 'w').metadata.architecture).toBe('circular');
  });
});
