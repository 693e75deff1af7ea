/** `export CKPT --out FILE`: the inference weights of a checkpoint, for other tools (docs/FORMAT.md). */
import type { Argv, CommandModule } from 'yargs';
import { UserError } from '../errors.js';
import { exportBytes } from '../export.js';
import type { CommandContext } from './io.js';
import { readCheckpoint } from '../run/load.js';
import { count } from './text.js';

interface ExportArgs {
  checkpoint: string;
  out: string;
}

function builder(yargs: Argv): Argv<ExportArgs> {
  return yargs
    .usage(
      '$0 export CKPT --out FILE\n\nWrite the inference weights of a checkpoint (the EMA weights when the model has an EMA) as a safetensors ' +
        'file laid out as PyTorch holds them ([out, in]), with metadata describing the network. docs/FORMAT.md specifies it.',
    )
    .positional('checkpoint', { type: 'string', describe: 'a model.safetensors or checkpoints/step-<n>.safetensors', demandOption: true })
    .option('out', { type: 'string', describe: 'the file to write (replaced if it exists)', demandOption: true }) as unknown as Argv<ExportArgs>;
}

async function handler({ io }: CommandContext, args: ExportArgs): Promise<void> {
  if (typeof args.out !== 'string' || args.out.trim() === '') throw new UserError('--out: expected a file name');
  if (io.resolve(args.out) === io.resolve(args.checkpoint)) {
    throw new UserError(`--out: ${args.out} is the checkpoint itself; choose another file`);
  }
  const { model } = await readCheckpoint(io, args.checkpoint);
  try {
    const bytes = exportBytes(model); // everything that can fail does so before the file is written
    await io.writeAtomic(args.out, bytes);
    const weights = model.trainingConfig.ema_decay > 0 ? 'EMA weights' : 'weights';
    io.print(
      `wrote ${io.displayPath(io.resolve(args.out))} (${model.modelConfig.architecture}, ${count(model.layout().length, 'tensor')}, ` +
        `${model.parameterCount} ${weights} of step ${model.step})`,
    );
  } finally {
    model.free();
  }
}

export function exportCommand(context: CommandContext): CommandModule<object, ExportArgs> {
  return {
    command: 'export <checkpoint>',
    describe: 'write the inference weights (EMA) for other tools: PyTorch layout, metadata describing the network',
    builder,
    handler: (args) => handler(context, args),
  };
}
