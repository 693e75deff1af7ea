/**
 * `generate CKPT`: sample sequences from a trained model, optionally with some bits fixed
 * (inpainting: a --given pattern, --given-top-half of a data row, or a --given-png mask picture).
 * Images (a model with a 2-D shape) print as H-row text grids; --png draws a picture.
 */
import type { Argv, CommandModule } from 'yargs';
import { formatShape, rowStrings } from '../data.js';
import type { InpaintMode } from '../model.js';
import { UserError } from '../errors.js';
import type { CommandContext, Io } from './io.js';
import { readCheckpoint } from '../run/load.js';
import { readSequences } from '../run/data.js';
import { integerFlag, parseGivenPattern } from './flags.js';
import { POOL_MIN_EVALUATION_WORK, requestedWorkers, rowWork, workersFor } from './workers.js';

interface GenerateArgs {
  checkpoint: string;
  n: number;
  given?: string;
  'given-top-half'?: string;
  'given-png'?: string;
  png?: string;
  'inpaint-mode'?: string;
  particles?: number;
  steps?: number;
  seed?: number;
  json: boolean;
  workers?: number;
}

function builder(yargs: Argv): Argv<GenerateArgs> {
  return yargs
    .usage(
      '$0 generate CKPT [options]\n\nPrint N sampled sequences, one line of 0/1 each; for an image model (2-D shape), each sample as H lines of W characters (# = 1, . = 0), a blank line between samples.',
    )
    .positional('checkpoint', { type: 'string', describe: 'a model.safetensors or checkpoints/step-<n>.safetensors', demandOption: true })
    .option('n', { type: 'number', default: 10, describe: 'number of sequences' })
    .option('given', {
      type: 'string',
      describe:
        "fix known bits: a pattern of 0, 1 and ? (unknown), one character per bit, e.g. '1?0??'; white space is ignored, so an image's pattern may be H lines of W",
    })
    .option('given-top-half', {
      type: 'string',
      describe:
        'complete the lower half of a data row: FILE:ROW takes row ROW (1 = the first data row) of a data file and keeps its top floor(H/2) image rows known (a sequence: its first floor(L/2) bits)',
    })
    .option('given-png', {
      type: 'string',
      describe:
        "fix known pixels from a mask picture: a PNG of the model's size (W pixels wide, H high); black (grey level < 85 of 255) = 0, white (> 170) = 1, mid-grey (85-170) or transparent (alpha < 128) = unknown",
    })
    .option('png', { type: 'string', describe: 'also write the samples as a PNG picture to FILE (images: a grid of images; sequences: one row per sample)' })
    .option('inpaint-mode', {
      type: 'string',
      describe:
        "with --given: 'smc' (completions follow the model's conditional; default) or 'clamp' (the paper's: known bits clamped at every step, cheaper, often inconsistent)",
    })
    .option('particles', {
      type: 'number',
      describe: "with --given and --inpaint-mode smc: chains per completion (more: closer to the model's conditional, slower)",
      defaultDescription: '8',
    })
    .option('steps', {
      type: 'number',
      describe:
        'network calls of the reverse chain, 1..T: fewer jump over steps with their exact posterior (x0 models only), about T/K times faster at some cost in quality',
      defaultDescription: 'T (every step)',
    })
    .option('seed', { type: 'number', describe: 'random seed', defaultDescription: 'a fresh random seed' })
    .option('json', { type: 'boolean', default: false, describe: 'print a JSON array of strings instead' })
    .option('workers', {
      type: 'number',
      describe: 'workers sharing the samples (1: this thread only; the samples are the same)',
      defaultDescription: 'all cores for big jobs, else 1',
    }) as unknown as Argv<GenerateArgs>;
}

async function handler({ io }: CommandContext, args: GenerateArgs): Promise<void> {
  const n = integerFlag('n', args.n, 1, 1_000_000);
  const seed = args.seed === undefined ? Math.floor(Math.random() * 4_294_967_296) : integerFlag('seed', args.seed, 0, 4_294_967_295);
  if (args.given !== undefined) parseGivenPattern(args.given, args.given.replace(/\s+/g, '').length); // bad characters before loading anything
  const sources = (['given', 'given-top-half', 'given-png'] as const).filter((name) => args[name] !== undefined);
  if (sources.length > 1) throw new UserError(`give one of --given, --given-top-half and --given-png, not ${sources.map((name) => `--${name}`).join(' and ')}`);
  if (args['given-png'] !== undefined && args['given-png'].trim() === '') throw new UserError('--given-png: expected a file name');
  const topHalf = args['given-top-half'] === undefined ? undefined : parseFileRow(args['given-top-half']);
  if (args.png !== undefined && args.png.trim() === '') throw new UserError('--png: expected a file name');
  const mode = args['inpaint-mode'];
  if (mode !== undefined && mode !== 'smc' && mode !== 'clamp') throw new UserError(`--inpaint-mode: expected 'smc' or 'clamp', got '${mode}'`);
  const inpainting = sources.length > 0;
  if ((mode !== undefined || args.particles !== undefined) && !inpainting)
    throw new UserError('--inpaint-mode and --particles need --given (or --given-top-half, --given-png)');
  if (args.particles !== undefined && mode === 'clamp') throw new UserError('--particles: only with --inpaint-mode smc');
  const particles = args.particles === undefined ? undefined : integerFlag('particles', args.particles, 1, 4096);
  const requested = requestedWorkers(io, args.workers);
  if (args.steps !== undefined) integerFlag('steps', args.steps, 1, 1_000_000); // not a whole number: before loading
  const { model } = await readCheckpoint(io, args.checkpoint);
  try {
    const T = model.modelConfig.T;
    const steps = args.steps === undefined ? undefined : integerFlag('steps', args.steps, 1, T);
    if (steps !== undefined && steps < T && model.modelConfig.parameterisation !== 'x0')
      throw new UserError(`--steps ${steps} < T = ${T} needs an x0-parameterised model (${args.checkpoint} is '${model.modelConfig.parameterisation}')`);
    const shape = model.modelConfig.shape ?? [model.length];
    const pattern =
      args.given !== undefined
        ? parseGivenPattern(args.given, model.length, shape)
        : topHalf !== undefined
          ? await topHalfPattern(io, topHalf, model.length, shape)
          : args['given-png'] !== undefined
            ? await givenPngPattern(io, args['given-png'], shape)
            : undefined;
    // Work: a network pass per chain step for every chain (an SMC completion runs `particles` of them).
    const chains = n * (pattern !== undefined && mode !== 'clamp' ? (particles ?? 8) : 1);
    const workers = workersFor(io, requested, chains * (steps ?? T) * rowWork(model.modelConfig, model.length), POOL_MIN_EVALUATION_WORK);
    // A pool draws the same samples as one thread (per-sample streams; src/parallel/pool.ts), sooner.
    const pool = workers > 1 && io.parallel ? await io.parallel.createPool(model, workers - 1) : undefined;
    let bits: Uint8Array;
    try {
      const options = { seed, mode: mode as InpaintMode | undefined, particles, steps };
      if (pool) bits = pattern !== undefined ? await pool.inpaint(pattern, n, options) : (await pool.sample(n, { seed, steps })).samples;
      else bits = pattern !== undefined ? model.inpaint(pattern, n, options) : model.sample(n, { seed, steps }).samples;
    } finally {
      await pool?.close();
    }
    const lines = rowStrings({ length: model.length, rows: n, bits });
    // The picture first: a failed write must not follow a printed result.
    if (args.png !== undefined) await io.writeAtomic(args.png, await samplesPng(bits, n, shape, lines));
    if (args.json) io.print(JSON.stringify(lines));
    else if (shape.length === 2) io.print(lines.map((line) => textGrid(line, shape[1])).join('\n\n'));
    else for (const line of lines) io.print(line);
  } finally {
    model.free();
  }
}

/** One image as text: H lines of W characters, '#' for 1 and '.' for 0 (row-major bits). */
export function textGrid(line: string, width: number): string {
  const rows: string[] = [];
  for (let start = 0; start < line.length; start += width)
    rows.push(
      line
        .slice(start, start + width)
        .replace(/1/g, '#')
        .replace(/0/g, '.'),
    );
  return rows.join('\n');
}

/** `FILE:ROW` (ROW counted from 1, split at the last ':') for --given-top-half. */
export function parseFileRow(text: string): { path: string; row: number } {
  const colon = text.lastIndexOf(':');
  const rowText = colon < 0 ? '' : text.slice(colon + 1);
  if (colon <= 0 || !/^[0-9]+$/.test(rowText) || Number(rowText) < 1) {
    throw new UserError(`--given-top-half: expected FILE:ROW with ROW a data row counted from 1 (e.g. val.txt:1), got ${JSON.stringify(text)}`);
  }
  return { path: text.slice(0, colon), row: Number(rowText) };
}

/**
 * The inpainting pattern of --given-top-half: row `row` of the data file, its first floor(H/2)
 * image rows known (a 1-D model: the first floor(L/2) bits), the rest unknown (2).
 */
export async function topHalfPattern(io: Io, where: { path: string; row: number }, length: number, shape: readonly number[]): Promise<Uint8Array> {
  const { data, source } = await readSequences(io, where.path);
  if (where.row > data.rows) throw new UserError(`--given-top-half: ${source} has ${data.rows} data rows, so there is no row ${where.row}`);
  if (data.length !== length) throw new UserError(`--given-top-half: the rows of ${source} have ${data.length} bits but the model's have ${length}`);
  if (data.shape !== undefined && data.shape.length === 2 && formatShape(data.shape) !== formatShape(shape)) {
    throw new UserError(`--given-top-half: ${source} holds ${formatShape(data.shape)} images but the model's shape is ${formatShape(shape)}`);
  }
  // Known: whole image rows above the middle (the first half of the bits for a sequence).
  const known = shape.length === 2 ? Math.floor(shape[0] / 2) * shape[1] : Math.floor(length / 2);
  const pattern = new Uint8Array(length).fill(2);
  pattern.set(data.bits.subarray((where.row - 1) * length, (where.row - 1) * length + known));
  return pattern;
}

/**
 * How a --given-png mask reads, per pixel: transparent (alpha < 128) = unknown; otherwise by its
 * grey level (0.299 R + 0.587 G + 0.114 B, 0..255): dark (< 85) = 0, light (> 170) = 1, mid-grey
 * (85..170) = unknown. So a black-and-white picture fixes every pixel, and grey or transparent
 * paint leaves pixels to the model.
 */
export const MASK_LEVELS = { opaqueAlpha: 128, darkBelow: 85, lightAbove: 170 } as const;

/** An RGBA picture (row-major) as an inpainting pattern (0, 1, 2 = unknown), by MASK_LEVELS. */
export function maskPattern(rgba: Uint8Array, pixels: number): Uint8Array {
  const pattern = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) {
    const grey = 0.299 * rgba[4 * p] + 0.587 * rgba[4 * p + 1] + 0.114 * rgba[4 * p + 2];
    pattern[p] = rgba[4 * p + 3] < MASK_LEVELS.opaqueAlpha ? 2 : grey < MASK_LEVELS.darkBelow ? 0 : grey > MASK_LEVELS.lightAbove ? 1 : 2;
  }
  return pattern;
}

/** The inpainting pattern of --given-png: the mask picture must be W pixels wide and H high (a 1-D model: L x 1). */
export async function givenPngPattern(io: Io, path: string, shape: readonly number[]): Promise<Uint8Array> {
  if (io.decodePng === undefined) throw new UserError('--given-png: reading PNG pictures is not available here');
  const bytes = await io.readBytes(path);
  const shown = io.displayPath(io.resolve(path));
  let image: Awaited<ReturnType<NonNullable<Io['decodePng']>>>;
  try {
    image = await io.decodePng(bytes);
  } catch (error) {
    throw new UserError(`--given-png: ${shown} is not a readable PNG picture (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
  }
  const [height, width] = shape.length === 2 ? shape : [1, shape[0]];
  if (image.width !== width || image.height !== height) {
    const what =
      shape.length === 2
        ? `images are ${width} wide and ${height} high (${formatShape(shape)})`
        : `sequences have ${width} bits (a picture ${width} wide and 1 high)`;
    throw new UserError(`--given-png: ${shown} is ${image.width} pixels wide and ${image.height} high but the model's ${what}`);
  }
  return maskPattern(image.rgba, width * height);
}

/** The samples as PNG bytes: a grid of images for a 2-D shape, else one row of cells per sequence. */
async function samplesPng(bits: Uint8Array, count: number, shape: readonly number[], lines: readonly string[]): Promise<Uint8Array> {
  // Loaded on demand: the picture code (and gifenc) stays out of runs that draw nothing.
  const { encodePng, imageGridPng } = await import('../plots/image-grid.js');
  if (shape.length === 2) return imageGridPng(bits, count, shape);
  const { bitGridImage } = await import('../plots/bitgrid.js');
  const image = bitGridImage(lines);
  return encodePng(image.width, image.height, image.rgba);
}

export function generateCommand(context: CommandContext): CommandModule<object, GenerateArgs> {
  return {
    command: 'generate <checkpoint>',
    describe: 'sample sequences from a trained model (--given, --given-top-half, --given-png: inpaint; --png: a picture)',
    builder,
    handler: (args) => handler(context, args),
  };
}
