/**
 * `evaluate CKPT`: the NLL bound on data (Monte-Carlo, full or stratified sum over t, with a standard error),
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
import { defaultBoundStrata, fullSumIsCheap } from '../run/settings.js';
import { integerFlag } from './flags.js';
import { boundText, count, percent } from './text.js';

/** Largest sequence length for the exact NLL (the forward algorithm runs over all 2^L states). */
export const EXACT_MAX_LENGTH = 12;

/**
 * Defaults when one pass over t is expensive (T · L > 65,536, e.g. 28×28 images at T = 1000): 64
 * strata of t, 2 repeats and 16 samples, so that 1,000 images take minutes; else the full sum over
 * t, 4 repeats and 200 samples.
 */
const EXPENSIVE_DEFAULTS = { repeats: 2, samples: 16 };
const CHEAP_DEFAULTS = { repeats: 4, samples: 200 };

interface EvaluateArgs {
  checkpoint: string;
  data?: string;
  train?: string;
  samples?: number;
  repeats?: number;
  strata?: number;
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
    .option('samples', { type: 'number', describe: 'samples to draw', defaultDescription: '200; 16 when T·L > 65,536' })
    .option('repeats', { type: 'number', describe: 'Monte-Carlo repeats of the bound per sequence', defaultDescription: '4; 2 when T·L > 65,536' })
    .option('strata', {
      type: 'number',
      describe: 'estimate the sum over t with K strata of t, one t drawn in each (unbiased; 0: the full sum, exact in t)',
      defaultDescription: '0; 64 when T·L > 65,536',
    })
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
  const seed = integerFlag('seed', args.seed, 0, 4_294_967_295);
  const requested = requestedWorkers(io, args.workers);
  const checkpoint = await readCheckpoint(io, args.checkpoint);
  const { model } = checkpoint;
  try {
    const defaults = fullSumIsCheap(model.modelConfig.T, model.length) ? CHEAP_DEFAULTS : EXPENSIVE_DEFAULTS;
    const samples = integerFlag('samples', args.samples ?? defaults.samples, 1, 1_000_000);
    const repeats = integerFlag('repeats', args.repeats ?? defaults.repeats, 1, 10_000);
    const strata = integerFlag('strata', args.strata ?? defaultBoundStrata(model.modelConfig.T, model.length), 0, 1e9);
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
      strata,
      samples,
      boundSeed: seed,
      sampleSeed: seed + 1 > 4_294_967_295 ? 0 : seed + 1,
    };
    // Work: a network pass per t (or per stratum) for every (sequence, repeat) of the bound, per t for every sample.
    const passes = strata > 0 ? Math.min(strata, model.modelConfig.T) : model.modelConfig.T;
    const work = (data.data.rows * repeats * passes + samples * model.modelConfig.T) * rowWork(model.modelConfig, model.length);
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
    // the same bound in nats per sequence and in bits per bit (per pixel, for images)
    const boundNats = evaluation.bound_bits * Math.LN2;
    const bitsPerBit = evaluation.bound_bits / model.length;
    const image = (model.modelConfig.shape?.length ?? 1) === 2;
    const [unit, cell] = image ? ['image', 'pixel'] : ['sequence', 'bit'];
    const perSequence = perSequenceBreakdown(rowStrings(data.data), boundPerSequence, sampleLines);
    const result = {
      checkpoint: args.checkpoint,
      step: model.step,
      data: data.source,
      train: train.source,
      ...numbers,
      bound_nats: boundNats,
      bound_bits_per_bit: bitsPerBit,
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
      ['bound', `${boundText(evaluation)} (${overT(evaluation.bound_strata)}, ${count(evaluation.bound_repeats, 'Monte-Carlo repeat')})`],
      [`  per ${unit}`, `${boundNats.toFixed(2)} nats/${unit}, ${bitsPerBit.toFixed(4)} bits/${cell}`],
    ];
    if (!Number.isFinite(evaluation.bound_stderr) && Number.isFinite(evaluation.bound_sequence_stderr)) {
      rows.push(['  s.e. over data', `± ${evaluation.bound_sequence_stderr.toFixed(4)} bits (spread across the ${count(evaluation.n_data, unit)})`]);
    }
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

/** How the sum over t was estimated, for the table. */
function overT(strata: number): string {
  return strata > 0 ? `${strata} ${strata === 1 ? 'stratum' : 'strata'} of t` : 'full sum over t';
}

export function evaluateCommand(context: CommandContext): CommandModule<object, EvaluateArgs> {
  return {
    command: 'evaluate <checkpoint>',
    describe: 'the bound on data, sample proportions, and the exact NLL for short sequences',
    builder,
    handler: (args) => handler(context, args),
  };
}
