/**
 * Messages between the page (main.ts) and the worker that owns the model and the in-page files
 * (worker.ts). Every request carries an id; the worker answers it once with a result or an error,
 * and may send events for it before (training records, progress, a command's output lines).
 */
import type { MetricsRecord, ProgressUpdate } from 'bernoulli-diffusion';

export type DataSource =
  | { kind: 'heartbeat'; length: number; period: number; holdout: number; count?: number }
  | { kind: 'text'; text: string; name: string }
  /** The page's MNIST digits (28×28, served beside the page): the first `count` training digits. */
  | { kind: 'mnist'; count: number; trainUrl: string; valUrl: string };

export interface DataSummary {
  length: number;
  trainRows: number;
  valRows: number;
  trainSource: string;
  valSource: string;
  /** The heartbeat period when the data is a heartbeat (samples can then be checked). */
  period: number | null;
  heartbeat: { length: number; period: number; holdout: number } | null;
  /** The shape of a row: [H, W] for images, [L] for sequences. */
  shape: number[];
  /** A few training rows. */
  preview: string[];
}

export interface ModelInfo {
  architecture: string;
  T: number;
  length: number;
  /** [H, W] for an image model, [L] otherwise. */
  shape: number[];
  step: number;
  parameters: number;
  /** Where the model came from: "trained here", a file name. */
  source: string;
}

/** One generated sequence and where it falls. */
export interface SampleRow {
  bits: string;
  where: 'train' | 'val' | 'other';
  /** For heartbeat data: whether it is a valid heartbeat; otherwise null. */
  valid: boolean | null;
}

export interface TrainSettings {
  T: number;
  steps: number;
  architecture: string;
  lr: number;
  batchSize: number;
  evalEvery: number;
  seed: number;
  /** unet only: channels at the first level. */
  channels: number;
}

export interface EvaluationSummary {
  boundBits: number;
  boundStderr: number;
  repeats: number;
  nData: number;
  dataSource: string;
  samples: number;
  distinct: number;
  propTrain: number;
  propVal: number;
  propOther: number;
}

/** Requests and what each one answers. */
export interface Operations {
  setData: { request: { source: DataSource }; result: DataSummary };
  train: { request: { settings: TrainSettings }; result: { info: ModelInfo; stopped: string } };
  generate: { request: { n: number; seed: number }; result: SampleRow[] };
  /** pattern: one character per bit, '0', '1' or '?'. */
  /** Image models split the completions over up to 4 cores (`cores`: how many did the work). */
  inpaint: { request: { pattern: string; n: number; seed: number; particles?: number }; result: { rows: SampleRow[]; cores: number } };
  evaluate: { request: { repeats: number; samples: number; seed: number }; result: EvaluationSummary };
  checkpoint: { request: Record<string, never>; result: { bytes: Uint8Array; name: string } };
  loadCheckpoint: { request: { bytes: Uint8Array; name: string }; result: { info: ModelInfo; data: DataSummary | null } };
  /** Makes a checkpoint among the in-page files the current model. */
  useFile: { request: { path: string }; result: { info: ModelInfo; data: DataSummary | null } };
  readFile: { request: { path: string }; result: Uint8Array };
  writeFile: { request: { path: string; bytes: Uint8Array }; result: string };
  /** A command line for the shared yargs commands; answers the exit code. */
  command: { request: { line: string; columns: number }; result: number };
}

export type OperationName = keyof Operations;

export type Request = { [K in OperationName]: { id: number; op: K } & Operations[K]['request'] }[OperationName];

/** Aborts the running training or command (like Ctrl-C); not answered. */
export interface StopMessage {
  op: 'stop';
}

export type WorkerEvent =
  | { type: 'record'; record: MetricsRecord; grid: SampleRow[] | null }
  | { type: 'progress'; update: ProgressUpdate }
  | { type: 'stdout'; line: string }
  | { type: 'stderr'; line: string }
  | { type: 'progressLine'; text: string | null };

export type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'files'; files: { path: string; size: number }[] }
  | { kind: 'model'; info: ModelInfo | null }
  | { kind: 'event'; id: number; event: WorkerEvent }
  | { kind: 'result'; id: number; result: unknown }
  | { kind: 'error'; id: number; message: string };
