/** `generate CKPT`: sample sequences from a trained model, optionally with some bits fixed (inpainting). */
import type { Argv, CommandModule } from 'yargs';
import { rowStrings } from '../data.js';
import type { InpaintMode } from '../model.js';
import { UserError } from '../errors.js';
import type { CommandContext } from './io.js';
import { readCheckpoint } from '../run/load.js';
import { integerFlag, parseGivenPattern } from './flags.js';

interface GenerateArgs {
  checkpoint: string;
  n: number;
  given?: string;
  'inpaint-mode'?: string;
  particles?: number;
  seed?: number;
  json: boolean;
}

function builder(yargs: Argv): Argv<GenerateArgs> {
  return yargs
    .usage('$0 generate CKPT [options]\n\nPrint N sampled sequences, one line of 0/1 each.')
    .positional('checkpoint', { type: 'string', describe: 'a model.safetensors or checkpoints/step-<n>.safetensors', demandOption: true })
    .option('n', { type: 'number', default: 10, describe: 'number of sequences' })
    .option('given', { type: 'string', describe: "fix known bits: a pattern of 0, 1 and ? (unknown), one character per bit, e.g. '1?0??'" })
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
    .option('seed', { type: 'number', describe: 'random seed', defaultDescription: 'a fresh random seed' })
    .option('json', { type: 'boolean', default: false, describe: 'print a JSON array of strings instead' }) as unknown as Argv<GenerateArgs>;
}

async function handler({ io }: CommandContext, args: GenerateArgs): Promise<void> {
  const n = integerFlag('n', args.n, 1, 1_000_000);
  const seed = args.seed === undefined ? Math.floor(Math.random() * 4_294_967_296) : integerFlag('seed', args.seed, 0, 4_294_967_295);
  if (args.given !== undefined) parseGivenPattern(args.given, args.given.length); // bad characters before loading anything
  const mode = args['inpaint-mode'];
  if (mode !== undefined && mode !== 'smc' && mode !== 'clamp') throw new UserError(`--inpaint-mode: expected 'smc' or 'clamp', got '${mode}'`);
  if ((mode !== undefined || args.particles !== undefined) && args.given === undefined) throw new UserError('--inpaint-mode and --particles need --given');
  if (args.particles !== undefined && mode === 'clamp') throw new UserError('--particles: only with --inpaint-mode smc');
  const particles = args.particles === undefined ? undefined : integerFlag('particles', args.particles, 1, 4096);
  const { model } = await readCheckpoint(io, args.checkpoint);
  try {
    const bits =
      args.given !== undefined
        ? model.inpaint(parseGivenPattern(args.given, model.length), n, { seed, mode: mode as InpaintMode | undefined, particles })
        : model.sample(n, { seed }).samples;
    const lines = rowStrings({ length: model.length, rows: n, bits });
    if (args.json) io.print(JSON.stringify(lines));
    else for (const line of lines) io.print(line);
  } finally {
    model.free();
  }
}

export function generateCommand(context: CommandContext): CommandModule<object, GenerateArgs> {
  return {
    command: 'generate <checkpoint>',
    describe: 'sample sequences from a trained model (--given: inpaint)',
    builder,
    handler: (args) => handler(context, args),
  };
}
