/** `data heartbeat`: write the heartbeat data set as files (train.txt, val.txt). */
import type { Argv, CommandModule } from 'yargs';
import { resolveConfig, valuesLayer } from '../config.js';
import { formatSequences, heartbeatData } from '../data.js';
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

export function dataCommand(context: CommandContext): CommandModule {
  return {
    command: 'data',
    describe: 'make data sets (data heartbeat)',
    builder: (yargs) =>
      yargs
        .command({
          command: 'heartbeat',
          describe: 'write heartbeat data: train.txt and val.txt',
          builder: heartbeatBuilder,
          handler: (args) => heartbeatHandler(context, args as unknown as HeartbeatArgs),
        })
        .demandCommand(1, 'give a data command: heartbeat'),
    handler: () => {},
  };
}
