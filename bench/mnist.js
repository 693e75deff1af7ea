#!/usr/bin/env node
/**
 * MNIST reference numbers (issue 13) on a split written by `bernoulli-diffusion data mnist`:
 *
 * - independent Bernoulli per pixel (Laplace α = 1), val NLL in nats/image;
 * - a 100-component Bernoulli mixture fitted by EM (50 iterations, Laplace α per component), val NLL;
 * - the sample scorer: an MLP digit classifier trained on train images + labels; its val accuracy
 *   and the share of val images it classifies with confidence >= 0.9 (what real digits score);
 *   with --samples FILE, the same score and class histogram for generated samples.
 *
 *   npm run bench:mnist                                  writes the split into a temporary folder (built CLI)
 *   node bench/mnist.js --data DIR [--samples FILE]      DIR holds train.txt, val.txt, train.labels, val.labels
 *   node bench/mnist.js --alpha 1,0.001                  the mixture once per smoothing
 *   node bench/mnist.js --json FILE                      also write the numbers as JSON
 *
 * --samples FILE: a data file (rows of 784 bits) or the JSON array of strings of `generate --json`.
 * Other options: --components K (100), --iterations N (50), --seed S (0: EM start and classifier),
 * --threshold, --val (passed to `data mnist` when no --data is given).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bernoulliMixture,
  bitRowsFromStrings,
  classifierAccuracy,
  independentBernoulli,
  parseBitRows,
  parseLabelLines,
  scoreDigitSamples,
  trainDigitClassifier,
} from './mnist-models.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin', 'bernoulli-diffusion.js');

/** Reads a split folder: { train, val, trainLabels, valLabels }. */
export function readMnistSplit(dir) {
  const read = (name) => readFileSync(join(dir, name), 'utf8');
  const split = {
    train: parseBitRows(read('train.txt')),
    val: parseBitRows(read('val.txt')),
    trainLabels: parseLabelLines(read('train.labels')),
    valLabels: parseLabelLines(read('val.labels')),
  };
  if (split.trainLabels.length !== split.train.rows || split.valLabels.length !== split.val.rows) {
    throw new Error(`${dir}: the labels files do not have one label per image`);
  }
  return split;
}

/** Samples from a data file or from `generate --json` output (a JSON array of strings). */
export function readSamples(path) {
  const text = readFileSync(path, 'utf8');
  const trimmed = text.trimStart();
  return trimmed.startsWith('[') ? bitRowsFromStrings(JSON.parse(trimmed), [28, 28]) : parseBitRows(text);
}

function timed(work) {
  const start = performance.now();
  const value = work();
  return { value, seconds: (performance.now() - start) / 1000 };
}

/**
 * The baselines and the scorer on one split. Returns the numbers (nats/image, shares) and seconds;
 * `classifier` is returned too so samples can be scored later with scoreDigitSamples.
 */
export function mnistBaselines(split, { components = 100, iterations = 50, seed = 0, alphas = [1], log = () => {} } = {}) {
  const results = { n_train: split.train.rows, n_val: split.val.rows, pixels: split.train.length };
  const independent = timed(() => independentBernoulli(split.train, { alpha: 1 }).nll(split.val));
  results.independent = { nll_nats: independent.value, alpha: 1, seconds: independent.seconds };
  log(`independent Bernoulli per pixel (Laplace α = 1): ${independent.value.toFixed(2)} nats/image on val (${independent.seconds.toFixed(1)} s)`);
  results.mixtures = alphas.map((alpha) => {
    const fit = timed(() => bernoulliMixture(split.train, { components, iterations, seed, alpha }));
    const nll = fit.value.nll(split.val);
    const trainNll = fit.value.nll(split.train);
    log(
      `${components}-component Bernoulli mixture (EM, ${iterations} iterations, α = ${alpha}): ${nll.toFixed(2)} nats/image on val, ${trainNll.toFixed(2)} on train (${fit.seconds.toFixed(1)} s)`,
    );
    return { components, iterations, alpha, seed, nll_nats: nll, train_nll_nats: trainNll, seconds: fit.seconds };
  });
  const trained = timed(() => trainDigitClassifier(split.train, split.trainLabels, { seed }));
  const classifier = trained.value;
  const accuracy = classifierAccuracy(classifier, split.val, split.valLabels);
  const valScore = scoreDigitSamples(classifier, split.val);
  results.classifier = {
    model: 'MLP 784-128-10 (ReLU), Adam 1e-3, 10 epochs, batch 64',
    val_accuracy: accuracy,
    val_confident_share: valScore.confident_share,
    seconds: trained.seconds,
  };
  log(
    `digit classifier: val accuracy ${(100 * accuracy).toFixed(1)}%, val images classified with confidence >= 0.9: ${(100 * valScore.confident_share).toFixed(1)}% (${trained.seconds.toFixed(1)} s)`,
  );
  return { results, classifier };
}

// ---- the command line --------------------------------------------------------------------------
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const option = (name, fallback) => {
    const index = argv.indexOf(`--${name}`);
    return index >= 0 ? argv[index + 1] : fallback;
  };
  let dir = option('data');
  let work;
  const dataCommand = ['data', 'mnist', '--threshold', option('threshold', '0.5'), '--val', option('val', '1000'), '--seed', '0'];
  if (dir === undefined) {
    work = mkdtempSync(join(tmpdir(), 'bd-mnist-'));
    dir = join(work, 'mnist');
    const result = spawnSync(process.execPath, [CLI, ...dataCommand, '--out', dir], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`bernoulli-diffusion ${dataCommand.join(' ')} failed:\n${result.stderr}`);
    console.log(`bernoulli-diffusion ${dataCommand.join(' ')} --out <temporary folder>`);
  }
  const split = readMnistSplit(dir);
  console.log(`split: ${split.train.rows} train / ${split.val.rows} val images of ${split.train.shape.join('x')}`);
  const { results, classifier } = mnistBaselines(split, {
    components: Number(option('components', '100')),
    iterations: Number(option('iterations', '50')),
    seed: Number(option('seed', '0')),
    alphas: option('alpha', '1').split(',').map(Number),
    log: (line) => console.log(line),
  });
  const samplesPath = option('samples');
  if (samplesPath !== undefined) {
    const score = scoreDigitSamples(classifier, readSamples(samplesPath));
    results.samples = { file: samplesPath, ...score };
    console.log(
      `samples (${score.samples}): classified with confidence >= 0.9: ${(100 * score.confident_share).toFixed(1)}%; classes ${score.class_shares.map((s, c) => `${c}: ${(100 * s).toFixed(1)}%`).join(', ')}`,
    );
  }
  const jsonPath = option('json');
  if (jsonPath !== undefined) {
    const output = {
      format: 'bernoulli-diffusion-mnist-baselines/1',
      date: new Date().toISOString(),
      data_command: dir === option('data') ? undefined : dataCommand.join(' '),
      machine: { cpus: cpus().length, loadavg_at_end: loadavg() },
      ...results,
    };
    writeFileSync(jsonPath, JSON.stringify(output, null, 2) + '\n');
    console.log(`wrote ${jsonPath}`);
  }
  if (work) rmSync(work, { recursive: true, force: true });
}
