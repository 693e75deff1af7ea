// End to end, images (issues 12 and 13): the data file's `# shape: HxW` header reaches the
// checkpoint's model config; generate prints H-row text grids, writes --png pictures, inpaints
// from an H×W --given pattern or --given-top-half FILE:ROW; the run's pictures are image grids.
// Tiny runs (4x6 images, T = 8, a few steps) through the real CLI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/checkpoint.js';

const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'bernoulli-diffusion.js');
const built = existsSync(join(root, 'pkg', 'bernoulli_diffusion_core_bg.wasm'));
const env = { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '1', FORCE_COLOR: '0' };

function cli(cwd: string, args: string[]) {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function expectUserError(result: ReturnType<typeof cli>, pattern: RegExp): void {
  expect(result.status, result.stderr).toBe(2);
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

/** Width and height of a PNG (IHDR) or GIF (logical screen). */
function pictureSize(path: string): [number, number] {
  const bytes = readFileSync(path);
  if (bytes.subarray(1, 4).toString() === 'PNG') return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
  expect(bytes.subarray(0, 3).toString()).toBe('GIF');
  return [bytes.readUInt16LE(6), bytes.readUInt16LE(8)];
}

const H = 4;
const W = 6;
/** 4x6 images, each one vertical bar; `bars` lists the bar columns. */
function images(bars: number[]): string[] {
  return bars.map((c) => Array.from({ length: H * W }, (_, i) => (i % W === c ? '1' : '0')).join(''));
}

describe.skipIf(!built)('CLI with images', () => {
  let work: string;
  let model: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'bd-images-'));
    const train = images(Array.from({ length: 60 }, (_, k) => k % W));
    writeFileSync(join(work, 'train.txt'), `# bars\n# shape: ${H}x${W}\n${train.join('\n')}\n`);
    writeFileSync(join(work, 'val.txt'), `# shape: ${H}x${W}\n${images([2, 5, 0]).join('\n')}\n`);
    writeFileSync(join(work, 'val-plain.txt'), `${images([1, 3]).join('\n')}\n`);
    writeFileSync(join(work, 'val-turned.txt'), `# shape: ${W}x${H}\n${images([1]).join('\n')}\n`);
    const trained = cli(work, [
      ...['train', '--data', 'train.txt', '--val', 'val.txt', '--arch', 'unet', '--T', '8', '--steps', '20', '--batch-size', '8'],
      ...['--eval-every', '10', '--early-stopping', '0', '--name', 'bars', '--quiet'],
    ]);
    expect(trained.status, trained.stderr).toBe(0);
    expect(trained.stderr + trained.stdout).toMatch(/24 bits \(4x6\)/);
    model = join(work, 'results', 'bars', 'model.safetensors');
  });

  it("records the data's shape in the checkpoint's model config", () => {
    const state = JSON.parse(decodeSafetensors(new Uint8Array(readFileSync(model)), model).metadata.model_state);
    expect(state.model.shape).toEqual([H, W]);
    expect(readFileSync(join(work, 'results', 'bars', 'config.yaml'), 'utf8')).toMatch(/^ {2}shape: null$/m); // from the data
  });

  it('draws the run pictures as grids of images (16 images of 4x6, 4 per row, 4 pixels each, 1 apart)', () => {
    const side = (n: number) => (4 * (n + 1) + 1) * 4;
    for (const name of ['samples_over_training.gif', 'reverse_process.gif']) {
      expect(pictureSize(join(work, 'results', 'bars', name)), name).toEqual([side(W), side(H)]);
    }
    expect(readFileSync(join(work, 'results', 'bars', 'report.html'), 'utf8')).toContain('images of 4x6');
  });

  it('prints each sample as H rows of # and ., a blank line between samples; --json unchanged', () => {
    const result = cli(work, ['generate', model, '-n', '3', '--seed', '4']);
    expect(result.status, result.stderr).toBe(0);
    const samples = result.stdout.trimEnd().split('\n\n');
    expect(samples).toHaveLength(3);
    for (const sample of samples) {
      const rows = sample.split('\n');
      expect(rows).toHaveLength(H);
      for (const row of rows) expect(row).toMatch(/^[#.]{6}$/);
    }
    const json = JSON.parse(cli(work, ['generate', model, '-n', '3', '--seed', '4', '--json']).stdout) as string[];
    expect(json.map((line) => line.replace(/1/g, '#').replace(/0/g, '.').match(/.{6}/g)!.join('\n'))).toEqual(samples);
  });

  it('--png writes a grid of the samples', () => {
    const result = cli(work, ['generate', model, '-n', '6', '--seed', '1', '--png', 'six.png']);
    expect(result.status, result.stderr).toBe(0);
    // 6 images: 3 per row, 2 rows
    expect(pictureSize(join(work, 'six.png'))).toEqual([(3 * (W + 1) + 1) * 4, (2 * (H + 1) + 1) * 4]);
  });

  it('--given takes an H x W pattern and --given-top-half keeps the top rows of a data row', () => {
    const pattern = ['1?????', '??????', '??????', '?????0'].join('\n');
    const given = cli(work, ['generate', model, '-n', '4', '--seed', '2', '--given', pattern, '--json']);
    expect(given.status, given.stderr).toBe(0);
    for (const line of JSON.parse(given.stdout) as string[]) expect([line[0], line[23]]).toEqual(['1', '0']);

    const top = cli(work, ['generate', model, '-n', '4', '--seed', '2', '--given-top-half', 'val.txt:2', '--json']);
    expect(top.status, top.stderr).toBe(0);
    const row = images([5])[0]; // val.txt's second data row
    for (const line of JSON.parse(top.stdout) as string[]) expect(line.slice(0, (H / 2) * W)).toBe(row.slice(0, (H / 2) * W));
  });

  it('rejects bad shapes and inpainting inputs with one line, exit 2', () => {
    expectUserError(
      cli(work, ['train', '--data', 'train.txt', '--shape', '5x5', '--steps', '2', '--no-plots']),
      /^error: --shape: the shape 5x5 has 25 positions but the rows of train\.txt have 24 bits$/,
    );
    expectUserError(
      cli(work, ['train', '--data', 'train.txt', '--val', 'val-turned.txt', '--steps', '2', '--no-plots']),
      /^error: val-turned\.txt: its shape header says 6x4 but the run's shape is 4x6 \(from train\.txt\)$/,
    );
    expectUserError(cli(work, ['generate', model, '--given', '1?']), /^error: --given has 2 characters but the model's images have 4x6 = 24 pixels$/);
    expectUserError(
      cli(work, ['generate', model, '--given-top-half', 'val.txt:4']),
      /^error: --given-top-half: val\.txt has 3 data rows, so there is no row 4$/,
    );
    expectUserError(cli(work, ['generate', model, '--given-top-half', 'val.txt']), /^error: --given-top-half: expected FILE:ROW/);
    expectUserError(cli(work, ['generate', model, '--given-top-half', 'val.txt:1', '--given', '1']), /^error: give one of --given and --given-top-half/);
    expectUserError(cli(work, ['generate', model, '--given-top-half', 'missing.txt:1']), /missing\.txt/);
  });

  it('a plain validation file takes the run shape; --shape overrides the header', () => {
    const plain = cli(work, [
      'train',
      '--data',
      'train.txt',
      '--val',
      'val-plain.txt',
      '--arch',
      'unet',
      '--T',
      '4',
      '--steps',
      '2',
      '--eval-every',
      '0',
      '--name',
      'plain',
      '--no-plots',
      '--quiet',
    ]);
    expect(plain.status, plain.stderr).toBe(0);
    const turned = cli(work, [
      'train',
      '--data',
      'train.txt',
      '--shape',
      '6x4',
      '--arch',
      'unet',
      '--T',
      '4',
      '--steps',
      '2',
      '--eval-every',
      '0',
      '--name',
      'turned',
      '--no-plots',
      '--quiet',
    ]);
    expect(turned.status, turned.stderr).toBe(0);
    const path = join(work, 'results', 'turned', 'model.safetensors');
    expect(JSON.parse(decodeSafetensors(new Uint8Array(readFileSync(path)), path).metadata.model_state).model.shape).toEqual([6, 4]);
  });
});
