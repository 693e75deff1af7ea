/**
 * A run's pictures from its run directory, for the commands that draw them (`train` at the end,
 * `plot`): reads metrics.jsonl, config.yaml and results.json through the command's `Io`, records
 * the reverse chain of a batch from the run's model, and hands it all to the `Io`'s renderer
 * (src/plots/node.ts on Node). Browser-safe: nothing here draws or loads a chart library.
 */
import type { Io } from '../commands/io.js';
import { UserError } from '../errors.js';
import type { DiffusionModel, SampleOptions, SampleResult } from '../model.js';
import { parseMetricsJsonl } from '../run/records.js';
import { defaultSampleSteps, gridSizeFor } from '../run/settings.js';

/** Number of reverse-process frames drawn for reverse_process.gif. */
const REVERSE_FRAMES = 50;

/** What draws the reverse chain of the pictures: a model, or a pool of replicas (the same bits, sooner). */
export type PictureSampler = Pick<DiffusionModel, 'modelConfig' | 'length'> & {
  sample(n: number, opts: SampleOptions): SampleResult | Promise<SampleResult>;
};

/** Draws the run's pictures and report.html into the run directory; returns the file names written. */
export async function drawRunPictures(io: Io, runDir: string, model: PictureSampler): Promise<string[]> {
  if (io.renderRunPictures === undefined) throw new UserError('drawing pictures is not available here');
  const metricsSource = io.join(runDir, 'metrics.jsonl');
  if (!(await io.exists(metricsSource))) throw new UserError(`${io.displayPath(metricsSource)}: no such file (is ${io.displayPath(runDir)} a run directory?)`);
  const metricsText = await io.readText(metricsSource);
  const configPath = io.join(runDir, 'config.yaml');
  const configText = (await io.exists(configPath)) ? await io.readText(configPath) : '(config.yaml not found)';
  const resultsPath = io.join(runDir, 'results.json');
  let results: unknown = {};
  if (await io.exists(resultsPath)) {
    try {
      results = JSON.parse(await io.readText(resultsPath));
    } catch {
      throw new UserError(`${io.displayPath(resultsPath)}: not valid JSON`);
    }
  }
  const { T, parameterisation, shape } = model.modelConfig;
  // a strided chain where the full one is expensive (28×28 images at T = 1000), as at evaluations
  const steps = defaultSampleSteps(T, model.length, parameterisation);
  const recordEvery = Math.max(1, Math.floor((steps ?? T) / REVERSE_FRAMES));
  const { frames } = await model.sample(gridSizeFor(shape), { seed: 0, recordEvery, steps });
  const drawn = await io.renderRunPictures(
    {
      metrics: parseMetricsJsonl(metricsText, io.displayPath(metricsSource)),
      reverseProcess: { frames, sequenceLength: model.length },
      configText,
      results,
      shape: model.modelConfig.shape ?? undefined,
      title: `bernoulli-diffusion run ${io.basename(runDir)}`,
    },
    (name, bytes) => io.writeAtomic(io.join(runDir, name), bytes),
  );
  return drawn.written;
}
