/**
 * `evaluate CKPT`: the NLL bound on data (Monte-Carlo, full sum over t, with a standard error),
 * where fresh samples fall (in the training data, only in the evaluated data, neither), and with
 * --exact the exact NLL (L <= 12).
 */
import type { Argv, CommandModule } from 'yargs';
import { perSequenceBreakdown, rowStrings } from '../data.js';
import { UserError } from '../errors.js';
import { type Evaluation, evaluateModel, evaluateModelAsync } from '../training.js';
import type { CommandContext } from './io.js';
import { POOL_MIN_EVALUATION_WORK, requestedWorkers, rowWork, workersFor } from './workers.js';
import { defaultEvaluationData, type NamedSequences, readSequences, setOf } from '../run/data.js';
import { readCheckpoint } from '../run/load.js';
import { integerFlag } from './flags.js';
import { boundText, count, percent } from './text.js';

/** Largest sequence length for the exact NLL (the forward algorithm runs over all 2^L states). */
export const EXACT_MAX_LENGTH = 12;

interface EvaluateArgs {
  checkpoint: string;
  data?: string;
  train?: string;
  samples: number;
  repeats: number;
  exact: boolean;
  seed: number;
  json: boolean;
  workers?: number;
}

function builder(yargs: Argv): Argv<EvaluateArgs> {
  return yargs
    .usage('$0 evaluate CKPT [options]\n\nMeasure a model: the bound on the data (bits/sequence), and where its samples fall.')
    .positional('checkpoint', { type: 'string', describe: 'a model.safetensors or checkpoints/step-<n>.safetensors', demandOption: true })
    .option('data', { type: 'string', describe: 'data to evaluate the bound on', defaultDescription: "the run's val data; heartbeat runs: all phases" })
    .option('train', { type: 'string', describe: 'training data, to tell memorised samples from new ones', defaultDescription: "the run's training data" })
    .option('samples', { type: 'number', default: 200, describe: 'samples to draw' })
    .option('repeats', { type: 'number', default: 4, describe: 'Monte-Carlo repeats of the bound per sequence' })
    .option('exact', {
      type: 'boolean',
      default: false,
      describe: `also the exact NLL by the forward algorithm (sequences of at most ${EXACT_MAX_LENGTH} bits)`,
    })
    .option('seed', { type: 'number', default: 0, describe: 'random seed of the noise and the samples' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object instead of a table' })
    .option('workers', {
      type: 'number',
      describe: 'workers sharing the bound and the samples (1: this thread only; the results are the same)',
      defaultDescription: 'all cores for big evaluations, else 1',
    }) as unknown as Argv<EvaluateArgs>;
}

async function handler({ io }: CommandContext, args: EvaluateArgs): Promise<void> {
  const samples = integerFlag('samples', args.samples, 1, 1_000_000);
  const repeats = integerFlag('repeats', args.repeats, 1, 10_000);
  const seed = integerFlag('seed', args.seed, 0, 4_294_967_295);
  const requested = requestedWorkers(io, args.workers);
  const checkpoint = await readCheckpoint(io, args.checkpoint);
  const { model } = checkpoint;
  try {
    if (args.exact && model.length > EXACT_MAX_LENGTH) {
      throw new UserError(`--exact needs sequences of at most ${EXACT_MAX_LENGTH} bits (it sums over all 2^L of them); this model's have ${model.length}`);
    }
    let data: NamedSequences | undefined = args.data !== undefined ? await readSequences(io, args.data) : undefined;
    let train: NamedSequences | undefined = args.train !== undefined ? await readSequences(io, args.train) : undefined;
    if (data === undefined || train === undefined) {
      if (checkpoint.runConfig === undefined) {
        throw new UserError(`${args.checkpoint}: names no run data (it was not written by train): give --data and --train`);
      }
      const defaults = await defaultEvaluationData(io, checkpoint.runConfig);
      data ??= defaults.data;
      train ??= defaults.train;
    }
    for (const named of [data, train]) {
      if (named.data.length !== model.length) {
        throw new UserError(`${named.source}: its sequences have ${named.data.length} bits but the model's have ${model.length}`);
      }
    }

    const options = {
      data: data.data,
      trainSet: setOf(train),
      dataSet: setOf(data),
      repeats,
      samples,
      boundSeed: seed,
      sampleSeed: seed + 1 > 4_294_967_295 ? 0 : seed + 1,
    };
    // Work: a network pass per t for every (sequence, repeat) of the bound and every sample.
    const work = (data.data.rows * repeats + samples) * model.modelConfig.T * rowWork(model.modelConfig, model.length);
    const workers = workersFor(io, requested, work, POOL_MIN_EVALUATION_WORK);
    // A pool gives the same bound and samples as one thread (src/parallel/pool.ts), sooner.
    const pool = workers > 1 && io.parallel ? await io.parallel.createPool(model, workers - 1) : undefined;
    let evaluation: Evaluation;
    try {
      evaluation = pool ? await evaluateModelAsync(pool, options) : evaluateModel(model, options);
    } finally {
      await pool?.close();
    }
    // A broken model's bound is never printed as a number (issue 16: 0.0000 or null were).
    if (!Number.isFinite(evaluation.bound_bits))
      throw new UserError(`${args.checkpoint}: the model's bound is ${evaluation.bound_bits} bits: the model is broken (from a diverged run?)`);
    const exact = args.exact ? model.exactNll(data.data.bits).meanBits : undefined;
    const { sampleLines, boundPerSequence, ...numbers } = evaluation;
    const perSequence = perSequenceBreakdown(rowStrings(data.data), boundPerSequence, sampleLines);
    const result = {
      checkpoint: args.checkpoint,
      step: model.step,
      data: data.source,
      train: train.source,
      ...numbers,
      ...(exact !== undefined ? { exact_nll_bits: exact } : {}),
      ...(perSequence ? { per_sequence: perSequence } : {}),
      seed,
      examples: sampleLines.slice(0, 10),
    };
    if (args.json) {
      io.print(JSON.stringify(result));
      return;
    }
    const rows: [string, string][] = [
      ['checkpoint', `${args.checkpoint} (step ${model.step})`],
      ['data', `${data.source} (${count(evaluation.n_data, 'sequence')})`],
      ['train', `${train.source} (${count(train.data.rows, 'sequence')})`],
      ['bound', `${boundText(evaluation)} (full sum over t, ${count(evaluation.bound_repeats, 'Monte-Carlo repeat')})`],
    ];
    if (exact !== undefined) rows.push(['exact NLL', `${exact.toFixed(4)} bits/sequence (forward algorithm over all 2^${model.length} sequences)`]);
    rows.push(
      ['samples', `${evaluation.samples} drawn, ${evaluation.distinct} distinct`],
      ['  in train', percent(evaluation.prop_train)],
      ['  only in data', percent(evaluation.prop_data)],
      ['  other', percent(evaluation.prop_other)],
    );
    if (perSequence) {
      rows.push(['per data sequence', 'share of samples, bound']);
      for (const { sequence, share, bound_bits } of perSequence) rows.push([`  ${sequence}`, `${percent(share).padStart(6)}  ${bound_bits.toFixed(3)} bits`]);
    }
    const width = Math.max(...rows.map(([key]) => key.length));
    for (const [key, value] of rows) io.print(`${key.padEnd(width)}  ${value}`);
  } finally {
    model.free();
  }
}

export function evaluateCommand(context: CommandContext): CommandModule<object, EvaluateArgs> {
  return {
    command: 'evaluate <checkpoint>',
    describe: 'the bound on data, sample proportions, and the exact NLL for short sequences',
    builder,
    handler: (args) => handler(context, args),
  };
}
