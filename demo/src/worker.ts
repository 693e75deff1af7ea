/**
 * The demo's worker: it owns the wasm model, the data and the in-page files, so that training,
 * sampling and the command box never block the page. Requests are handled one at a time, in order;
 * 'stop' is handled at once (training yields to the event loop every few tens of milliseconds).
 */
import {
  checkAgainstLength,
  coreModelConfig,
  coreTrainingConfig,
  DEFAULTS,
  DiffusionModel,
  evaluateModel,
  formatSequences,
  heartbeatData,
  init,
  isHeartbeat,
  isUserError,
  loadCheckpoint,
  loopSettings,
  MAX_LENGTH,
  parseSequences,
  resolveConfig,
  rowStrings,
  runMetadata,
  runMetadataOf,
  runTraining,
  sequenceSet,
  totalSteps,
  UserError,
  valuesLayer,
  type DataSection,
  type Sequences,
} from 'bernoulli-diffusion';
import { browserYargs, MemoryIo } from 'bernoulli-diffusion/cli';
import { progressBarLine, runCommandLine } from './terminal.js';
import type {
  DataSource,
  DataSummary,
  EvaluationSummary,
  ModelInfo,
  Operations,
  Request,
  SampleRow,
  StopMessage,
  WorkerEvent,
  WorkerMessage,
} from './protocol.js';

/** Where the page's own training leaves its model among the in-page files. */
const TRAINED_MODEL_PATH = '/demo.safetensors';

interface LoadedData {
  summary: DataSummary;
  train: Sequences;
  val: Sequences;
  trainSet: Set<string>;
  valSet: Set<string>;
  /** The data section of a run config naming this data. */
  section: DataSection;
}

/** Where the running command's output goes (the request that runs it). */
let output: ((event: WorkerEvent) => void) | undefined;
/**
 * The in-page files, shared by the page's own actions and the command box: the package's
 * in-memory `Io`, whose printing goes to the command running at the time.
 */
const files = new MemoryIo({
  onPrint: (line) => output?.({ type: 'stdout', line }),
  onNote: (line) => output?.({ type: 'stderr', line }),
  onProgress: (update) => output?.({ type: 'progressLine', text: progressBarLine(update) }),
});
let currentData: LoadedData | undefined;
let model: DiffusionModel | undefined;
let modelSource = '';
/** Metadata the current model's checkpoints carry (the run config, when known). */
let modelMetadata: Record<string, string> = {};
/** Stops what is running: training from the page, or a command's Io. */
let stopCurrent: (() => void) | undefined;

function post(message: WorkerMessage): void {
  self.postMessage(message);
}

/** A whole number from a form field, within limits; otherwise a message naming the field. */
function whole(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new UserError(`${field}: expected a whole number from ${min} to ${max}, got ${Number.isNaN(value) ? 'nothing' : value}`);
  return value;
}

const MAX_SEED = 4_294_967_295;

function postFiles(): void {
  const list = [...files.files.entries()].map(([path, bytes]) => ({ path, size: bytes.length }));
  post({ kind: 'files', files: list.sort((a, b) => a.path.localeCompare(b.path)) });
}

function readFile(path: string): Uint8Array {
  const bytes = files.files.get(files.resolve(path));
  if (!bytes) throw new UserError(`${files.displayPath(path)}: no such file`);
  return bytes;
}

function modelInfo(): ModelInfo | null {
  if (!model) return null;
  return {
    architecture: model.modelConfig.architecture,
    T: model.modelConfig.T,
    length: model.length,
    step: model.step,
    parameters: model.parameterCount,
    source: modelSource,
  };
}

function setModel(next: DiffusionModel, source: string, metadata: Record<string, string>): ModelInfo {
  model?.free();
  model = next;
  modelSource = source;
  modelMetadata = metadata;
  const info = modelInfo()!;
  post({ kind: 'model', info });
  return info;
}

function requireModel(): DiffusionModel {
  if (!model) throw new UserError('there is no model yet: train one, or load a checkpoint');
  return model;
}

// ---- data ---------------------------------------------------------------------------------------

function loadData(source: DataSource): DataSummary {
  let train: Sequences;
  let val: Sequences;
  let trainSource: string;
  let valSource: string;
  let section: DataSection;
  let heartbeat: DataSummary['heartbeat'] = null;
  if (source.kind === 'heartbeat') {
    // Validated exactly as the config's data.heartbeat is.
    const layer = valuesLayer(
      {
        'data.heartbeat.length': source.length,
        'data.heartbeat.period': source.period,
        'data.heartbeat.holdout': source.holdout,
        'data.heartbeat.count': source.count,
      },
      (key) =>
        `the field "${({ 'data.heartbeat.length': 'length L', 'data.heartbeat.period': 'period P', 'data.heartbeat.holdout': 'held out K' } as Record<string, string>)[key] ?? key}"`,
    );
    const spec = resolveConfig([layer]).config.data.heartbeat!;
    const made = heartbeatData(spec);
    train = made.train;
    val = made.val;
    trainSource = `heartbeat L=${spec.length} P=${spec.period}, phases ${made.trainPhases.join(', ')}`;
    valSource = `heartbeat L=${spec.length} P=${spec.period}, phases ${made.valPhases.join(', ')}`;
    section = { heartbeat: spec };
    heartbeat = { length: spec.length, period: spec.period, holdout: spec.holdout };
  } else {
    train = parseSequences(source.text, source.name);
    val = train;
    trainSource = valSource = source.name;
    section = { train: '/data/train.txt' };
  }
  if (train.length > MAX_LENGTH) throw new UserError(`${trainSource}: sequences of ${train.length} bits are longer than the ${MAX_LENGTH}-bit limit`);
  // The command box sees the same data as files.
  files.setFile('/data/train.txt', formatSequences(train, [`${trainSource} (${train.rows} sequences)`]));
  files.setFile('/data/val.txt', formatSequences(val, [`${valSource} (${val.rows} sequences)`]));
  const summary: DataSummary = {
    length: train.length,
    trainRows: train.rows,
    valRows: val.rows,
    trainSource,
    valSource,
    period: heartbeat?.period ?? null,
    heartbeat,
    preview: rowStrings({ ...train, rows: Math.min(train.rows, 6), bits: train.bits.subarray(0, Math.min(train.rows, 6) * train.length) }),
  };
  currentData = { summary, train, val, trainSet: sequenceSet(train), valSet: sequenceSet(val), section };
  return summary;
}

function labelRows(lines: string[]): SampleRow[] {
  const period = currentData?.summary.period ?? null;
  return lines.map((bits) => ({
    bits,
    where: currentData?.trainSet.has(bits) ? 'train' : currentData?.valSet.has(bits) ? 'val' : 'other',
    valid: period !== null && bits.length === currentData!.summary.length ? isHeartbeat(bits, period) : null,
  }));
}

function rowsOf(bits: Uint8Array, length: number): string[] {
  return rowStrings({ length, rows: bits.length / length, bits });
}

// ---- models -------------------------------------------------------------------------------------

async function train(settings: Operations['train']['request']['settings'], emit: (event: WorkerEvent) => void) {
  if (!currentData) throw new UserError('choose the data first');
  const dataset = currentData;
  const fieldNames: Record<string, string> = {
    'model.T': 'T',
    'model.architecture': 'architecture',
    'training.steps': 'steps',
    'training.lr': 'learning rate',
    'training.batch_size': 'batch size',
    'training.eval_every': 'evaluate every',
    'training.seed': 'seed',
  };
  const values: Record<string, unknown> = {
    'model.T': settings.T,
    'model.architecture': settings.architecture,
    'training.steps': settings.steps,
    'training.lr': settings.lr,
    'training.batch_size': settings.batchSize,
    'training.eval_every': settings.evalEvery,
    'training.seed': settings.seed,
    'training.checkpoint_every': 0,
    // No early stopping in the page (so the stored config says so, and a resumed run does the same).
    'training.early_stopping': 0,
    // Short runs are the point here: warm up over a tenth of them (the CLI's default is 100 steps).
    'training.warmup_steps':
      Number.isInteger(settings.steps) && settings.steps > 0 ? Math.min(DEFAULTS.training.warmup_steps, Math.floor(settings.steps / 10)) : undefined,
  };
  if (dataset.section.heartbeat) {
    for (const [key, value] of Object.entries(dataset.section.heartbeat)) values[`data.heartbeat.${key}`] = value;
  } else {
    values['data.train'] = dataset.section.train;
  }
  const resolved = resolveConfig([valuesLayer(values, (key) => `the field "${fieldNames[key] ?? key}"`)]);
  checkAgainstLength(resolved, dataset.train.length, dataset.summary.trainSource);
  const runConfig = resolved.config;
  const total = totalSteps(runConfig.training, dataset.train.rows);
  const next = await DiffusionModel.create(
    coreModelConfig(runConfig.model, dataset.train.length),
    coreTrainingConfig(runConfig.training, total),
    runConfig.training.seed,
  );
  const metadata = runMetadata(runConfig);
  setModel(next, 'trained here', metadata);

  const controller = new AbortController();
  stopCurrent = () => controller.abort();
  try {
    const outcome = await runTraining({
      model: next,
      data: { train: dataset.train, val: dataset.val, trainSet: dataset.trainSet, valSet: dataset.valSet },
      settings: loopSettings(runConfig, total, dataset.train.length),
      signal: controller.signal,
      now: () => performance.now(),
      hooks: {
        onRecord: (record) => emit({ type: 'record', record, grid: record.grid ? labelRows(record.grid) : null }),
        onProgress: (update) => emit({ type: 'progress', update }),
        onCheckpoint: (_reason, state) => {
          // With the run config and loop state, `evaluate demo.safetensors` and `train --resume` work on it.
          modelMetadata = runMetadata(runConfig, state);
          files.setFile(TRAINED_MODEL_PATH, next.toBytes(modelMetadata));
        },
      },
    });
    const info = modelInfo()!;
    post({ kind: 'model', info });
    return { info, stopped: outcome.stopped };
  } finally {
    stopCurrent = undefined;
  }
}

/** Loads checkpoint bytes as the current model; when the data does not fit it, the run's heartbeat (if any) becomes the data. */
async function loadModel(bytes: Uint8Array, name: string): Promise<{ info: ModelInfo; data: DataSummary | null }> {
  const { model: loaded, metadata, runConfig } = await loadCheckpoint(bytes, name);
  const info = setModel(loaded, name, runMetadataOf(metadata));
  let summary: DataSummary | null = null;
  if (!currentData || currentData.summary.length !== loaded.length) {
    const heartbeat = runConfig?.data.heartbeat;
    if (heartbeat && heartbeat.length === loaded.length) summary = loadData({ kind: 'heartbeat', ...heartbeat });
  }
  return { info, data: summary };
}

function evaluate(request: Operations['evaluate']['request']): EvaluationSummary {
  const current = requireModel();
  const repeats = whole('repeats', request.repeats, 1, 1000);
  const samples = whole('samples', request.samples, 1, 100_000);
  const seed = whole('seed', request.seed, 0, MAX_SEED - 1);
  if (!currentData) throw new UserError('choose the data first');
  if (currentData.summary.length !== current.length) {
    throw new UserError(`the data's sequences have ${currentData.summary.length} bits but the model's have ${current.length}`);
  }
  const evaluation = evaluateModel(current, {
    data: currentData.val,
    trainSet: currentData.trainSet,
    dataSet: currentData.valSet,
    repeats,
    samples,
    boundSeed: seed,
    sampleSeed: seed + 1,
  });
  return {
    boundBits: evaluation.bound_bits,
    boundStderr: evaluation.bound_stderr,
    repeats: evaluation.bound_repeats,
    nData: evaluation.n_data,
    dataSource: currentData.summary.valSource,
    samples: evaluation.samples,
    distinct: evaluation.distinct,
    propTrain: evaluation.prop_train,
    propVal: evaluation.prop_data,
    propOther: evaluation.prop_other,
  };
}

// ---- the command box ----------------------------------------------------------------------------

async function runCommand(line: string, columns: number, emit: (event: WorkerEvent) => void): Promise<number> {
  output = emit;
  stopCurrent = () => files.interrupt();
  try {
    return await runCommandLine(browserYargs, line, files, { columns });
  } finally {
    output = undefined;
    stopCurrent = undefined;
  }
}

// ---- dispatch -----------------------------------------------------------------------------------

async function handle(request: Request, emit: (event: WorkerEvent) => void): Promise<unknown> {
  switch (request.op) {
    case 'setData':
      return loadData(request.source);
    case 'train':
      return train(request.settings, emit);
    case 'generate': {
      const current = requireModel();
      const n = whole('n', request.n, 1, 4096);
      return labelRows(rowsOf(current.sample(n, { seed: whole('seed', request.seed, 0, MAX_SEED) }).samples, current.length));
    }
    case 'inpaint': {
      const current = requireModel();
      const n = whole('n', request.n, 1, 4096);
      const pattern = Uint8Array.from(request.pattern, (c) => (c === '1' ? 1 : c === '0' ? 0 : 2));
      return labelRows(rowsOf(current.inpaint(pattern, n, { seed: whole('seed', request.seed, 0, MAX_SEED) }), current.length));
    }
    case 'evaluate':
      return evaluate(request);
    case 'checkpoint': {
      const current = requireModel();
      return {
        bytes: current.toBytes(modelMetadata),
        name: `bernoulli-diffusion-${current.modelConfig.architecture}-T${current.modelConfig.T}-step${current.step}.safetensors`,
      };
    }
    case 'loadCheckpoint': {
      const path = `/${request.name.replace(/^.*[/\\]/, '')}`;
      files.setFile(path, request.bytes); // the command box can use it too
      return loadModel(request.bytes, path.slice(1));
    }
    case 'useFile':
      return loadModel(readFile(request.path), files.displayPath(request.path));
    case 'readFile':
      return readFile(request.path).slice();
    case 'writeFile':
      files.setFile(request.path, request.bytes);
      return request.path;
    case 'command':
      return runCommand(request.line, request.columns, emit);
  }
}

let queue: Promise<void> = Promise.resolve();

self.onmessage = (message: MessageEvent<Request | StopMessage>) => {
  const request = message.data;
  if (request.op === 'stop') {
    stopCurrent?.();
    return;
  }
  const emit = (event: WorkerEvent) => post({ kind: 'event', id: request.id, event });
  queue = queue.then(async () => {
    try {
      const result = await handle(request, emit);
      post({ kind: 'result', id: request.id, result });
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      post({ kind: 'error', id: request.id, message: isUserError(error) ? text.split('\n')[0] : `internal error: ${text}` });
    }
    postFiles(); // the page's list of in-page files, after whatever the request wrote
  });
};

// Instantiate the wasm core before saying ready (its URL comes from the bundler).
init()
  .then(() => post({ kind: 'ready' }))
  .catch((error: unknown) =>
    post({ kind: 'error', id: 0, message: `could not load the WebAssembly core: ${error instanceof Error ? error.message : String(error)}` }),
  );
