/** `plot RUN_DIR`: redraw a run's pictures and report.html from metrics.jsonl and its model. */
import type { Argv, CommandModule } from 'yargs';
import { UserError } from '../errors.js';
import type { CommandContext } from './io.js';
import { drawRunPictures } from '../plots/run-pictures.js';
import { readCheckpoint } from '../run/load.js';

interface PlotArgs {
  run: string;
}

function builder(yargs: Argv): Argv<PlotArgs> {
  return yargs
    .usage('$0 plot RUN_DIR\n\nDraw loss.png/.svg, proportions.png, samples_over_training.gif, reverse_process.gif and report.html into a run directory.')
    .positional('run', { type: 'string', describe: 'a run directory written by train', demandOption: true }) as unknown as Argv<PlotArgs>;
}

async function handler({ io }: CommandContext, args: PlotArgs): Promise<void> {
  if (io.renderRunPictures === undefined) throw new UserError('plot is not available here (no picture renderer)');
  const runDir = io.resolve(args.run);
  const modelPath = io.join(runDir, 'model.safetensors');
  if (!(await io.exists(io.join(runDir, 'metrics.jsonl')))) throw new UserError(`${args.run}: not a run directory (no metrics.jsonl)`);
  if (!(await io.exists(modelPath))) throw new UserError(`${args.run}: the run has no model.safetensors (was it interrupted? resume it first)`);
  const { model } = await readCheckpoint(io, modelPath);
  try {
    const written = await drawRunPictures(io, runDir, model);
    for (const name of written) io.print(`wrote ${io.displayPath(io.join(runDir, name))}`);
  } finally {
    model.free();
  }
}

export function plotCommand(context: CommandContext): CommandModule<object, PlotArgs> {
  return { command: 'plot <run>', describe: "draw a run's pictures and report.html", builder, handler: (args) => handler(context, args) };
}
