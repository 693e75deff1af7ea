/**
 * Node-only: rendering a run's pictures to files. Charts go vega-lite → SVG → PNG (resvg, with the
 * DejaVu Sans font, also used to measure text while vega lays the chart out); PNGs are encoded with
 * pngjs; everything is written through an injected writer.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';
import type { ResvgRenderOptions } from '@resvg/resvg-js';
import { PNG } from 'pngjs';
import { UserError } from '../errors.js';
import { bitGridImage, parseBitRows, reverseProcessGif, samplesOverTrainingGif, type EvaluationGrid } from '../plots/bitgrid.js';
import { gridScaleFor, imageGridGif, imageGridImage } from '../plots/image-grid.js';
import {
  chartFont,
  chartToSvg,
  evaluationPoints,
  lossChartSpec,
  loadOptionalPlotPackage,
  missingPlotPackage,
  parseMetricsJsonl,
  proportionsChartSpec,
  type MetricRecord,
} from '../plots/charts.js';
import { dataUri, reportHtml, type ReportPicture } from '../plots/report.js';
import type { RunPictureInputs, RunPicturesWritten, WriteFile } from '../run/records.js';

type ResvgClass = typeof import('@resvg/resvg-js').Resvg;
let resvgClass: ResvgClass | undefined;

/**
 * resvg (a native module, an optional dependency), loaded on first use so that importing this
 * module costs nothing and works without it. It is CommonJS, so `require` loads it synchronously.
 */
function Resvg(): ResvgClass {
  if (!resvgClass) {
    try {
      resvgClass = (createRequire(import.meta.url)('@resvg/resvg-js') as typeof import('@resvg/resvg-js')).Resvg;
    } catch (error) {
      throw missingPlotPackage('@resvg/resvg-js', error);
    }
  }
  return resvgClass;
}

export type { RunPictureInputs, RunPicturesWritten, WriteFile } from '../run/records.js';

/** Where Debian's fonts-dejavu-core puts the chart font. */
const dejaVuDirectory = '/usr/share/fonts/truetype/dejavu';
const dejaVuFiles = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'].map((f) => join(dejaVuDirectory, f));

let fontOptions: ResvgRenderOptions['font'] | undefined;

/**
 * resvg's font options: DejaVu Sans when installed (as scripts/setup.sh does), otherwise whatever
 * system fonts exist. Throws a clear error when no font can draw text at all.
 */
export function chartFontOptions(): ResvgRenderOptions['font'] {
  if (fontOptions) return fontOptions;
  const files = dejaVuFiles.filter((f) => existsSync(f));
  const options: ResvgRenderOptions['font'] =
    files.length > 0 ? { loadSystemFonts: false, fontFiles: files, defaultFontFamily: chartFont, sansSerifFamily: chartFont } : { loadSystemFonts: true };
  const probe = new (Resvg())('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><text x="0" y="15" font-size="12">10</text></svg>', {
    font: options,
  }).getBBox();
  if (!probe || !(probe.width > 0))
    throw new Error(`no font to draw chart text: install ${chartFont} (Debian package fonts-dejavu-core, files in ${dejaVuDirectory})`);
  fontOptions = options;
  return options;
}

function inkWidth(text: string, fontSize: number, fontWeight: string): number {
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text x="0" y="${2 * fontSize}" font-family="${chartFont}" ` +
    `font-size="${fontSize}" font-weight="${fontWeight}" xml:space="preserve">${escaped}</text></svg>`;
  return new (Resvg())(svg, { font: chartFontOptions() }).getBBox()?.width ?? 0;
}

const widthCache = new Map<string, number>();

/** Advance width of `text` in the chart font: ink of "|text|" minus ink of "||" (the bars anchor the ends). */
export function measureTextWidth(text: string, fontSize: number, fontWeight: string | number = 'normal'): number {
  if (text === '' || fontSize <= 0) return 0;
  const weight = String(fontWeight);
  const key = `${fontSize}|${weight}|${text}`;
  let width = widthCache.get(key);
  if (width === undefined) {
    width = inkWidth(`|${text}|`, fontSize, weight) - inkWidth('||', fontSize, weight);
    widthCache.set(key, width);
  }
  return width;
}

/**
 * Without a canvas, vega guesses text widths at 0.8 em per character (far too wide); in Node we
 * measure with the font resvg draws with, so titles, legends and axes are laid out to fit.
 */
async function useMeasuredTextWidths(): Promise<void> {
  const vega = await loadOptionalPlotPackage('vega');
  type TextItem = { fontSize?: number; fontWeight?: string | number };
  // vega exports textMetrics at run time; its typings leave it out.
  const metrics = (vega as unknown as { textMetrics: { width: (item: TextItem, text: unknown) => number } }).textMetrics;
  metrics.width = (item, text) => measureTextWidth(text == null ? '' : String(text).trim(), item.fontSize ?? 11, item.fontWeight ?? 'normal');
}

/** A vega-lite spec to SVG, laid out with measured text widths (use this rather than chartToSvg in Node). */
export async function renderChartSvg(spec: Parameters<typeof chartToSvg>[0]): Promise<string> {
  await useMeasuredTextWidths();
  return chartToSvg(spec);
}

/** An SVG string to PNG bytes, `scale` times its own size. */
export function svgToPng(svg: string, scale = 2): Uint8Array {
  const rendered = new (Resvg())(svg, { fitTo: { mode: 'zoom', value: scale }, font: chartFontOptions(), background: 'white' }).render();
  return rendered.asPng();
}

/** RGBA bytes to PNG bytes. */
export function rgbaToPng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  const png = new PNG({ width, height });
  png.data.set(rgba);
  return PNG.sync.write(png);
}

/** The samples grid of each evaluation point that has one. */
export function evaluationGridsOf(metrics: readonly MetricRecord[]): EvaluationGrid[] {
  return metrics.filter((r) => Array.isArray(r.grid) && r.grid.length > 0).map((r) => ({ step: r.step, grid: r.grid! }));
}

function finalSamplesOf(inputs: RunPictureInputs, grids: readonly EvaluationGrid[]): readonly string[] | undefined {
  if (inputs.finalSamples) return inputs.finalSamples;
  const fromResults = (inputs.results as { samples?: unknown } | null)?.samples;
  if (Array.isArray(fromResults) && fromResults.length > 0 && fromResults.every((s) => typeof s === 'string')) return fromResults as string[];
  return grids.at(-1)?.grid;
}

/** Largest side of an image-grid animation, and of the still grid of final samples, in pixels. */
const IMAGE_GIF_SIZE = 480;
const IMAGE_PNG_SIZE = 720;

/**
 * Draws every picture of a run and the report, writing loss.svg, loss.png, proportions.png,
 * samples_over_training.gif, reverse_process.gif, samples.png (images only: the final samples as
 * a grid) and report.html through `write`. A picture whose data is absent (no evaluation points, no
 * reverse frames) is skipped and listed in `missing`.
 */
export async function renderRunPictures(inputs: RunPictureInputs, write: WriteFile): Promise<RunPicturesWritten> {
  chartFontOptions(); // fail early and clearly when there is no font
  const written: string[] = [];
  const missing: string[] = [];
  const pictures: ReportPicture[] = [];
  const put = async (name: string, data: Uint8Array | string) => {
    await write(name, data);
    written.push(name);
  };

  const lossSvg = await renderChartSvg(lossChartSpec(inputs.metrics));
  const lossPng = svgToPng(lossSvg);
  await put('loss.svg', lossSvg);
  await put('loss.png', lossPng);
  pictures.push({
    file: 'loss.png',
    caption: 'Training loss and evaluated bound (bits per sequence) against the training step.',
    src: dataUri(lossPng, 'image/png'),
    displayWidth: pngWidth(lossPng) / 2,
  });

  if (evaluationPoints(inputs.metrics).some((r) => typeof r.prop_train === 'number')) {
    const png = svgToPng(await renderChartSvg(proportionsChartSpec(inputs.metrics)));
    await put('proportions.png', png);
    pictures.push({
      file: 'proportions.png',
      caption: 'Share of generated samples in the training data, in the held-out data and in neither.',
      src: dataUri(png, 'image/png'),
      displayWidth: pngWidth(png) / 2,
    });
  } else {
    missing.push('proportions.png: no evaluation point has sample proportions');
  }

  // Images (a 2-D shape) are drawn as grids of images; sequences as one row of cells each.
  const imageShape = inputs.shape !== undefined && inputs.shape.length === 2 ? inputs.shape : undefined;
  const grids = inputs.evaluationGrids ?? evaluationGridsOf(inputs.metrics);
  if (grids.length > 0) {
    const gif = imageShape ? samplesOverTrainingImageGif(grids, imageShape) : samplesOverTrainingGif(grids);
    await put('samples_over_training.gif', gif);
    pictures.push({
      file: 'samples_over_training.gif',
      caption: imageShape
        ? `Samples from the same fixed starting noise at each of the ${grids.length} evaluation points (steps ${grids.map((g) => g.step).join(', ')}; dark = 1).`
        : `Samples from the same fixed starting noise at each of the ${grids.length} evaluation points (one row per sequence; dark = 1).`,
      src: dataUri(gif, 'image/gif'),
      kind: 'animation',
    });
  } else {
    missing.push('samples_over_training.gif: no evaluation point has a sample grid');
  }

  if (inputs.reverseProcess && inputs.reverseProcess.frames.length > 0) {
    const { frames, sequenceLength } = inputs.reverseProcess;
    const count = frames[0].bits.length / sequenceLength;
    const steps = Math.max(...frames.map((f) => f.t));
    const gif = imageShape
      ? imageGridGif(
          frames.map((f) => f.bits),
          count,
          imageShape,
          {
            scale: gridScaleFor(count, imageShape, IMAGE_GIF_SIZE),
            labels: frames.map((f) => `t = ${f.t}`),
            progress: frames.map((f) => (steps > 0 ? (steps - f.t) / steps : 1)),
            // About four seconds however many frames were recorded, holding the noise and the result longer.
            frameMs: Math.min(400, Math.max(60, Math.round(4000 / frames.length))),
            firstMs: 1000,
            lastMs: 2500,
          },
        )
      : reverseProcessGif(frames, sequenceLength);
    await put('reverse_process.gif', gif);
    pictures.push({
      file: 'reverse_process.gif',
      caption: `The reverse process: a batch denoising from t = T (uniform noise) to t = 0, ${inputs.reverseProcess.frames.length} frames.`,
      src: dataUri(gif, 'image/gif'),
      kind: 'animation',
    });
  } else {
    missing.push('reverse_process.gif: no reverse-process frames were given');
  }

  const samples = finalSamplesOf(inputs, grids);
  let finalSamples: { lines: readonly string[]; picture?: ReportPicture } | undefined;
  if (samples && samples.length > 0) {
    try {
      const image = imageShape
        ? imageGridImage(parseBitRows(samples).bits, samples.length, imageShape, { scale: gridScaleFor(samples.length, imageShape, IMAGE_PNG_SIZE) })
        : bitGridImage(samples);
      const png = rgbaToPng(image.width, image.height, image.rgba);
      const caption = imageShape
        ? `Final samples, ${samples.length} images of ${imageShape[0]}x${imageShape[1]} (dark = 1).`
        : 'Final samples, one row per sequence (dark = 1).';
      // Images: the grid is also a file (samples.png), the picture to show of a run.
      if (imageShape) await put('samples.png', png);
      finalSamples = { lines: samples, picture: { caption, src: dataUri(png, 'image/png'), file: imageShape ? 'samples.png' : undefined } };
    } catch (error) {
      missing.push(`final samples: ${(error as Error).message}`);
    }
  }

  const html = reportHtml({
    title: inputs.title ?? 'bernoulli-diffusion run',
    configText: inputs.configText,
    results: inputs.results,
    metrics: inputs.metrics,
    pictures,
    finalSamples,
    missing,
  });
  await put('report.html', html);
  return { written, missing };
}

/** Samples over training for images: one frame per evaluation point, each a grid of images. */
function samplesOverTrainingImageGif(grids: readonly EvaluationGrid[], shape: readonly number[]): Uint8Array {
  const frames = grids.map((g) => parseBitRows(g.grid));
  const count = frames[0].rows;
  frames.forEach((frame, k) => {
    if (frame.rows !== count) throw new Error(`the sample grid at step ${grids[k].step} has ${frame.rows} samples, the first has ${count}`);
  });
  const lastStep = Math.max(...grids.map((g) => g.step));
  return imageGridGif(
    frames.map((frame) => frame.bits),
    count,
    shape,
    {
      scale: gridScaleFor(count, shape, IMAGE_GIF_SIZE),
      labels: grids.map((g) => `step ${g.step}`),
      progress: grids.map((g) => (lastStep > 0 ? g.step / lastStep : 1)),
      frameMs: 500,
      lastMs: 2500,
    },
  );
}

function pngWidth(png: Uint8Array): number {
  return new DataView(png.buffer, png.byteOffset, png.byteLength).getUint32(16); // IHDR width, big-endian
}

/** What a run directory holds for plotting. */
export interface RunDirectoryContents {
  metrics: MetricRecord[];
  configText: string;
  results: unknown;
}

/** Reads metrics.jsonl (required), config.yaml and results.json (optional) from a run directory. */
export async function readRunDirectory(runDir: string): Promise<RunDirectoryContents> {
  const metricsPath = join(runDir, 'metrics.jsonl');
  let metricsText: string;
  try {
    metricsText = await readFile(metricsPath, 'utf8');
  } catch {
    throw new UserError(`${metricsPath}: cannot read it (is ${runDir} a run directory?)`);
  }
  const metrics = parseMetricsJsonl(metricsText, metricsPath);
  if (metrics.length === 0) throw new UserError(`${metricsPath}: no metrics records`);
  const configText = await readFile(join(runDir, 'config.yaml'), 'utf8').catch(() => '(config.yaml not found)');
  let results: unknown = {};
  const resultsPath = join(runDir, 'results.json');
  if (existsSync(resultsPath)) {
    try {
      results = JSON.parse(await readFile(resultsPath, 'utf8'));
    } catch {
      throw new UserError(`${resultsPath}: not valid JSON`);
    }
  }
  return { metrics, configText, results };
}

/** Writes files into `dir` atomically enough for pictures: a temporary file, then a rename. */
export function directoryWriter(dir: string): WriteFile {
  return async (name, data) => {
    const path = join(dir, name);
    const temporary = `${path}.tmp-${process.pid}`;
    await writeFile(temporary, data);
    await rename(temporary, path);
  };
}

/** Options of `renderRunDirectory`. */
export interface RenderRunDirectoryOptions {
  /** Frames of the reverse chain (the CLI samples them from the run's model). */
  reverseProcess?: RunPictureInputs['reverseProcess'];
  finalSamples?: readonly string[];
  /** The model's row shape ([H, W]: images); default [L]. */
  shape?: readonly number[];
  /** Default: write into the run directory. */
  write?: WriteFile;
}

/** `plot RUN_DIR`: reads the run directory and (re)writes all its pictures and report.html. */
export async function renderRunDirectory(runDir: string, options: RenderRunDirectoryOptions = {}): Promise<RunPicturesWritten> {
  const contents = await readRunDirectory(runDir);
  return renderRunPictures(
    {
      ...contents,
      reverseProcess: options.reverseProcess,
      finalSamples: options.finalSamples,
      shape: options.shape,
      title: `bernoulli-diffusion run ${basename(resolve(runDir))}`,
    },
    options.write ?? directoryWriter(runDir),
  );
}
