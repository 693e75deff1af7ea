// End to end, images (issues 12 and 13): the data file's `# shape: HxW` header reaches the
// checkpoint's model config; generate prints H-row text grids, writes --png pictures, inpaints
// from an H×W --given pattern, --given-top-half FILE:ROW or a --given-png mask picture; the run's
// pictures are image grids (64 images, 8 × 8) and samples.png holds the final samples.
// Tiny runs (4x6 images, T = 8, a few steps) through the real CLI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GifReader } from 'omggif';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/checkpoint.js';
import { givenPngPattern, MASK_LEVELS, maskPattern } from '../src/commands/generate.js';
import type { Io } from '../src/commands/io.js';
import { NodeIo } from '../src/node/io.js';
import { bitGridPalette, paletteIndex } from '../src/plots/bitgrid.js';

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

/** A PNG file of `width` × `height` pixels, pixel p coloured rgba(p). */
function writePng(path: string, width: number, height: number, rgba: (p: number) => [number, number, number, number]): void {
  const png = new PNG({ width, height });
  for (let p = 0; p < width * height; p++) png.data.set(rgba(p), 4 * p);
  writeFileSync(path, PNG.sync.write(png));
}

/** The RGB of palette entry `index` as a string, to compare decoded pixels. */
const colour = (index: number) => bitGridPalette[index].join(',');
const rgbAt = (rgba: Uint8Array, width: number, x: number, y: number) => Array.from(rgba.subarray(4 * (y * width + x), 4 * (y * width + x) + 3)).join(',');

const H = 4;
const W = 6;
/** 4x6 images, each one vertical bar; `bars` lists the bar columns. */
function images(bars: number[]): string[] {
  return bars.map((c) => Array.from({ length: H * W }, (_, i) => (i % W === c ? '1' : '0')).join(''));
}

describe('--given-png without a model', () => {
  it('takes a picture L pixels wide and 1 high for a 1-D model, and says when no decoder is there', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'bd-mask-'));
    writePng(join(folder, 'row.png'), 5, 1, (p) => (p % 2 === 0 ? [255, 255, 255, 255] : [0, 0, 0, 0]));
    const io = new NodeIo();
    expect([...(await givenPngPattern(io, join(folder, 'row.png'), [5]))]).toEqual([1, 2, 1, 2, 1]);
    await expect(givenPngPattern(io, join(folder, 'row.png'), [6])).rejects.toThrow(
      /row\.png is 5 pixels wide and 1 high but the model's sequences have 6 bits/,
    );
    const noDecoder = { ...io, decodePng: undefined } as unknown as Io;
    await expect(givenPngPattern(noDecoder, join(folder, 'row.png'), [5])).rejects.toThrow(/^--given-png: reading PNG pictures is not available here$/);
  });
});

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

  it('draws the run pictures as grids of images (64 images of 4x6, 8 per row, 4 pixels each, 1 apart)', () => {
    const run = join(work, 'results', 'bars');
    const side = (n: number) => (8 * (n + 1) + 1) * 4;
    // The animations carry a header above the grid: 8 px margin, a 16 px label + 6, a 4 px bar + 8.
    const header = 8 + 16 + 6 + 4 + 8;
    for (const name of ['samples_over_training.gif', 'reverse_process.gif']) {
      expect(pictureSize(join(run, name)), name).toEqual([side(W), header + side(H)]);
    }
    expect(pictureSize(join(run, 'samples.png'))).toEqual([side(W), side(H)]);
    const report = readFileSync(join(run, 'report.html'), 'utf8');
    expect(report).toContain('Final samples, 64 images of 4x6');
    expect(report).toContain('samples.png');

    // samples.png shows results.json's 64 final samples, image k at grid cell (k mod 8, k div 8).
    const samples = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')).samples as string[];
    expect(samples).toHaveLength(64);
    const png = PNG.sync.read(readFileSync(join(run, 'samples.png')));
    /** Centre of image pixel (y, x) of image k, in picture pixels (scale 4, gap 1). */
    const centre = (k: number, y: number, x: number, top = 0) => [(1 + (k % 8) * (W + 1) + x) * 4 + 2, top + (1 + Math.floor(k / 8) * (H + 1) + y) * 4 + 2];
    for (let k = 0; k < 64; k++)
      for (let i = 0; i < H * W; i++) {
        const [px, py] = centre(k, Math.floor(i / W), i % W);
        expect(rgbAt(png.data, png.width, px, py), `image ${k} pixel ${i}`).toBe(colour(samples[k][i] === '1' ? paletteIndex.one : paletteIndex.zero));
      }
    expect(rgbAt(png.data, png.width, 1, 1)).toBe(colour(paletteIndex.background));

    // The last frame of samples over training is the last evaluation's grid: the same samples.
    const reader = new GifReader(readFileSync(join(run, 'samples_over_training.gif')));
    expect(reader.numFrames()).toBe(2); // evaluations at steps 10 and 20
    const frame = new Uint8Array(reader.width * reader.height * 4);
    reader.decodeAndBlitFrameRGBA(1, frame);
    for (let k = 0; k < 64; k++)
      for (let i = 0; i < H * W; i++) {
        const [px, py] = centre(k, Math.floor(i / W), i % W, header);
        expect(rgbAt(frame, reader.width, px, py)).toBe(colour(samples[k][i] === '1' ? paletteIndex.one : paletteIndex.zero));
      }
    // The label row has ink, the bar is full on the last frame.
    const labelRow = Array.from({ length: reader.width }, (_, x) => rgbAt(frame, reader.width, x, 8 + 6));
    expect(labelRow).toContain(colour(paletteIndex.text));
    expect(rgbAt(frame, reader.width, reader.width - 9, 8 + 22 + 1)).toBe(colour(paletteIndex.progress));
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

  it('--given-png reads a mask picture: black = 0, white = 1, mid-grey or transparent = unknown', () => {
    // Row 0: black, white, mid-grey, transparent white, dark grey, light grey; the other rows mid-grey.
    const first: [number, number, number, number][] = [
      [0, 0, 0, 255],
      [255, 255, 255, 255],
      [128, 128, 128, 255],
      [255, 255, 255, 0],
      [40, 40, 40, 255],
      [220, 220, 220, 255],
    ];
    writePng(join(work, 'mask.png'), W, H, (p) => (p < W ? first[p] : [128, 128, 128, 255]));
    const result = cli(work, ['generate', model, '-n', '6', '--seed', '3', '--given-png', 'mask.png', '--json']);
    expect(result.status, result.stderr).toBe(0);
    const lines = JSON.parse(result.stdout) as string[];
    expect(lines).toHaveLength(6);
    for (const line of lines) expect([line[0], line[1], line[4], line[5]]).toEqual(['0', '1', '0', '1']);
    // The same mask as a --given pattern gives the same completions (same seed).
    const pattern = ['01??01', '??????', '??????', '??????'].join('\n');
    expect(JSON.parse(cli(work, ['generate', model, '-n', '6', '--seed', '3', '--given', pattern, '--json']).stdout)).toEqual(lines);
  });

  it('reads mask pixels at the documented levels', () => {
    const { opaqueAlpha, darkBelow, lightAbove } = MASK_LEVELS;
    const pixels: [number, number, number, number][] = [
      [darkBelow - 1, darkBelow - 1, darkBelow - 1, 255], // dark: 0
      [darkBelow, darkBelow, darkBelow, 255], // mid-grey: unknown
      [lightAbove, lightAbove, lightAbove, 255], // mid-grey: unknown
      [lightAbove + 1, lightAbove + 1, lightAbove + 1, 255], // light: 1
      [0, 0, 0, opaqueAlpha - 1], // transparent: unknown
      [0, 0, 0, opaqueAlpha], // opaque enough: 0
      [255, 0, 0, 255], // pure red: grey level 76: 0
      [0, 255, 0, 255], // pure green: grey level 150: unknown
      [255, 255, 0, 255], // yellow: grey level 226: 1
    ];
    expect([...maskPattern(Uint8Array.from(pixels.flat()), pixels.length)]).toEqual([0, 2, 2, 1, 2, 0, 0, 2, 1]);
  });

  it('rejects bad --given-png masks with one line naming the file, exit 2', () => {
    writePng(join(work, 'mask-turned.png'), H, W, () => [0, 0, 0, 255]);
    expectUserError(
      cli(work, ['generate', model, '--given-png', 'mask-turned.png']),
      /^error: --given-png: mask-turned\.png is 4 pixels wide and 6 high but the model's images are 6 wide and 4 high \(4x6\)$/,
    );
    writeFileSync(join(work, 'not-a.png'), 'hello\n');
    expectUserError(cli(work, ['generate', model, '--given-png', 'not-a.png']), /^error: --given-png: not-a\.png is not a readable PNG picture \(.+\)$/);
    expectUserError(cli(work, ['generate', model, '--given-png', 'absent.png']), /^error: cannot read absent\.png/);
    expectUserError(
      cli(work, ['generate', model, '--given-png', 'mask-turned.png', '--given', '1']),
      /^error: give one of --given, --given-top-half and --given-png, not --given and --given-png$/,
    );
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
    expectUserError(
      cli(work, ['generate', model, '--given-top-half', 'val.txt:1', '--given', '1']),
      /^error: give one of --given, --given-top-half and --given-png, not --given and --given-top-half$/,
    );
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
