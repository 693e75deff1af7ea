/**
 * The records of a run, each defined once: what a training step reports, the loop state a resume
 * continues from, a line of metrics.jsonl (and its reader), the results.json format tag, and what
 * a run's pictures are drawn from. Browser-safe, no dependencies but the error type (and
 * the picture types of src/plots/bitgrid.ts).
 */
import { checkMetricsRecord } from './metrics-check.js';
import { UserError } from '../errors.js';
import type { EvaluationGrid, ReverseFrame } from '../plots/bitgrid.js';

/** What a training step reports (bits per sequence, the gradient's global norm before clipping, the learning rate used). */
export interface StepReport {
  /** The batch mean of the estimated bound, bits per sequence. */
  loss: number;
  /** Global norm of the mean gradient before clipping. */
  gradNorm: number;
  lr: number;
  /** The weights, optimiser moments and EMA are all finite after the step (false: diverged; the core always says). */
  finite?: boolean;
}

/** Loop state that survives a resume (stored in checkpoint metadata, src/run/checkpoint.ts). */
export interface LoopState {
  step: number;
  bestStep: number | null;
  bestBoundBits: number | null;
  evalsSinceBest: number;
  /** Seconds of training wall time before this session. */
  elapsedSeconds: number;
}

/**
 * One line of metrics.jsonl. The training loop writes every field but the evaluation ones at each
 * record; evaluation points add the bound, the sample proportions and the grid. Only `step` and
 * `loss` are required of a file read back (older files, other writers).
 */
export interface MetricRecord {
  step: number;
  /** Passes over the training data so far (fractional). */
  epoch?: number;
  /** Training loss in bits per sequence, averaged over the steps since the previous record. */
  loss: number;
  grad_norm?: number;
  lr?: number;
  /** Seconds of training wall time since the run started (across resumes). */
  elapsed?: number;
  bound_bits?: number;
  bound_stderr?: number;
  /** Shares of generated samples: in the training data, only in the validation data, in neither. */
  prop_train?: number;
  prop_val?: number;
  prop_other?: number;
  distinct?: number;
  /** Samples from the same fixed starting noise at every evaluation point: one '0'/'1' string per sequence. */
  grid?: string[];
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * Parses metrics.jsonl text (one JSON object per line, blank lines ignored). A resumed run may log
 * a step twice: the later line wins, and records come back sorted by step. An unfinished last line
 * (a run killed mid-write) is dropped; any other bad line is an error naming the file and line.
 */
export function parseMetricsJsonl(text: string, fileName = 'metrics.jsonl'): MetricRecord[] {
  const lines = text.split('\n');
  const byStep = new Map<number, MetricRecord>();
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    const unfinished = index === lines.length - 1; // no newline after it
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      if (unfinished) return;
      throw new UserError(`${fileName}:${index + 1}: not valid JSON`);
    }
    const r = record as Partial<MetricRecord> | null;
    if (r === null || typeof r !== 'object' || !isFiniteNumber(r.step) || !isFiniteNumber(r.loss))
      throw new UserError(`${fileName}:${index + 1}: a metrics record needs numeric "step" and "loss"`);
    checkMetricsRecord(r as Record<string, unknown>, `${fileName}:${index + 1}`);
    byStep.set(r.step, r as MetricRecord);
  });
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** The `format` field of results.json. */
export const RESULTS_FORMAT = 'bernoulli-diffusion-results/1';

/** What a run's pictures and report (src/plots) are drawn from. */
export interface RunPictureInputs {
  /** metrics.jsonl records, sorted by step. */
  metrics: readonly MetricRecord[];
  /** Samples from the same fixed noise at each evaluation point (default: the records' `grid`). */
  evaluationGrids?: readonly EvaluationGrid[];
  /** A batch of the reverse chain from t = T to 0 (from the model's sample with recordEvery); none: no reverse_process.gif. */
  reverseProcess?: { frames: readonly ReverseFrame[]; sequenceLength: number };
  /** The final samples for the report's grid (default: results.samples, else the last evaluation grid). */
  finalSamples?: readonly string[];
  configText: string;
  results: unknown;
  /** The model's row shape: [H, W] draws every sample as an image (grids of images); [L] or absent: one row of cells per sequence. */
  shape?: readonly number[];
  /** Heading of the report. */
  title?: string;
}

/** Where drawn pictures go: one file, `name` relative to the run directory. */
export type WriteFile = (name: string, data: Uint8Array | string) => Promise<void>;

/** The files a picture renderer wrote, and the pictures it skipped (with why). */
export interface RunPicturesWritten {
  /** File names written, in order. */
  written: string[];
  /** Pictures not drawn, with the reason (also listed in the report). */
  missing: string[];
}

/** Draws a run's pictures and report (src/plots/node.ts on Node). */
export type RunPictureRenderer = (inputs: RunPictureInputs, write: WriteFile) => Promise<RunPicturesWritten>;
