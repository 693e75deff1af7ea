// Rendering a run's pictures under Node: files written, decoded back (PNG with pngjs, GIF with omggif).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GifReader } from 'omggif';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.js';
import { measureTextWidth, renderRunDirectory, renderRunPictures, svgToPng, type RunPicturesWritten } from '../src/node/plots.js';
import { syntheticReverseFrames, syntheticRun } from './plots-fixtures.js';

const outputDir = join('test-output', 'plots-run');

function pixelStats(rgba: Uint8Array) {
  const colours = new Set<number>();
  let sum = 0;
  let sumSquares = 0;
  const n = rgba.length / 4;
  for (let p = 0; p < rgba.length; p += 4) {
    colours.add((rgba[p] << 16) | (rgba[p + 1] << 8) | rgba[p + 2]);
    const grey = (rgba[p] + rgba[p + 1] + rgba[p + 2]) / 3;
    sum += grey;
    sumSquares += grey * grey;
  }
  return { colours: colours.size, variance: sumSquares / n - (sum / n) ** 2 };
}

function svgSize(svg: string): [number, number] {
  const match = /<svg[^>]*\swidth="(\d+)"[^>]*\sheight="(\d+)"/.exec(svg);
  if (!match) throw new Error('no size in the SVG');
  return [Number(match[1]), Number(match[2])];
}

function decodeGif(path: string) {
  const reader = new GifReader(readFileSync(path));
  const frames = Array.from({ length: reader.numFrames() }, (_, k) => {
    const rgba = new Uint8Array(reader.width * reader.height * 4);
    reader.decodeAndBlitFrameRGBA(k, rgba);
    return rgba;
  });
  return { width: reader.width, height: reader.height, frames };
}

describe('chart text under Node', () => {
  it('measures text with the chart font at a plausible, additive width', () => {
    const width = measureTextWidth('training step', 12);
    expect(width / (13 * 12)).toBeGreaterThan(0.4); // DejaVu Sans averages about half an em per character
    expect(width / (13 * 12)).toBeLessThan(0.7);
    expect(measureTextWidth('ab', 12)).toBeCloseTo(measureTextWidth('a', 12) + measureTextWidth('b', 12), 0);
    expect(measureTextWidth('ab ab', 12)).toBeGreaterThan(measureTextWidth('abab', 12)); // spaces count
    expect(measureTextWidth('Title', 14, 'bold')).toBeGreaterThan(measureTextWidth('Title', 14));
  });

  it('draws text into PNGs (a font is installed and found)', () => {
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30"><text x="4" y="22" font-size="18" font-family="DejaVu Sans">Bits 123</text></svg>';
    const png = PNG.sync.read(Buffer.from(svgToPng(svg, 1)));
    expect([png.width, png.height]).toEqual([120, 30]);
    let dark = 0;
    for (let p = 0; p < png.data.length; p += 4) if (png.data[p] < 100) dark++;
    expect(dark).toBeGreaterThan(100);
  });
});

describe('renderRunDirectory', () => {
  const run = syntheticRun(600, 100, 20, 16);
  const reverseFrames = syntheticReverseFrames(60, 5, 12, 20);
  let result: RunPicturesWritten;

  beforeAll(async () => {
    rmSync(outputDir, { recursive: true, force: true });
    mkdirSync(outputDir, { recursive: true });
    writeFileSync(join(outputDir, 'metrics.jsonl'), run.metrics.map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(join(outputDir, 'config.yaml'), 'model:\n  T: 60\ntraining:\n  steps: 600\n  eval_every: 100\n');
    writeFileSync(join(outputDir, 'results.json'), JSON.stringify({ bound_bits: 12.9, bound_stderr: 0.4, samples: run.metrics.at(-1)!.grid }));
    result = await renderRunDirectory(outputDir, { reverseProcess: { frames: reverseFrames, sequenceLength: 20 } });
  });

  it('writes every picture and the report', () => {
    expect(result.written).toEqual(['loss.svg', 'loss.png', 'proportions.png', 'samples_over_training.gif', 'reverse_process.gif', 'report.html']);
    expect(result.missing).toEqual([]);
  });

  it('loss.png is loss.svg at twice the size, and not blank', () => {
    const svg = readFileSync(join(outputDir, 'loss.svg'), 'utf8');
    const [w, h] = svgSize(svg);
    expect(w).toBeGreaterThan(560);
    expect(w).toBeLessThan(800); // text measured, not guessed at 0.8 em per character
    const png = PNG.sync.read(readFileSync(join(outputDir, 'loss.png')));
    expect([png.width, png.height]).toEqual([2 * w, 2 * h]);
    const stats = pixelStats(png.data);
    expect(stats.colours).toBeGreaterThan(20);
    expect(stats.variance).toBeGreaterThan(100);
  });

  it('proportions.png decodes and is not blank', () => {
    const png = PNG.sync.read(readFileSync(join(outputDir, 'proportions.png')));
    expect(png.width).toBeGreaterThan(1000);
    expect(png.height).toBeGreaterThan(400);
    const stats = pixelStats(png.data);
    expect(stats.colours).toBeGreaterThan(20);
    expect(stats.variance).toBeGreaterThan(100);
  });

  it('samples_over_training.gif has one frame per evaluation point', () => {
    const gif = decodeGif(join(outputDir, 'samples_over_training.gif'));
    expect(gif.frames.length).toBe(run.evaluationSteps.length);
    expect(gif.width).toBeGreaterThanOrEqual(20 * 16);
    expect(gif.height).toBeGreaterThanOrEqual(16 * 16);
    for (const frame of gif.frames) expect(pixelStats(frame).colours).toBeGreaterThanOrEqual(4);
    expect(gif.frames[0]).not.toEqual(gif.frames.at(-1));
  });

  it('reverse_process.gif has one frame per recorded step', () => {
    const gif = decodeGif(join(outputDir, 'reverse_process.gif'));
    expect(gif.frames.length).toBe(reverseFrames.length);
    for (const frame of gif.frames) expect(pixelStats(frame).variance).toBeGreaterThan(100);
  });

  it('report.html inlines every picture', () => {
    const html = readFileSync(join(outputDir, 'report.html'), 'utf8');
    expect(html.match(/src="data:image\/png;base64,/g)?.length).toBe(3); // loss, proportions, final samples
    expect(html.match(/src="data:image\/gif;base64,/g)?.length).toBe(2);
    expect(html).toContain('eval_every: 100');
  });

  it('skips what it has no data for, and says so', async () => {
    const written = new Map<string, Uint8Array | string>();
    const plain = run.metrics.map(({ step, loss }) => ({ step, loss }));
    const results = { samples: ['0101', '01x1'] }; // not a valid grid: listed as missing, not fatal
    const result = await renderRunPictures({ metrics: plain, configText: '', results }, async (name, data) => void written.set(name, data));
    expect(result.written).toEqual(['loss.svg', 'loss.png', 'report.html']);
    expect(result.missing.map((m) => m.split(':')[0])).toEqual(['proportions.png', 'samples_over_training.gif', 'reverse_process.gif', 'final samples']);
    expect(written.get('report.html')).toContain('no evaluation point has a sample grid');
  });

  it('a directory without metrics.jsonl is a user error', async () => {
    await expect(renderRunDirectory(join(outputDir, 'nope'))).rejects.toThrow(UserError);
  });
});
