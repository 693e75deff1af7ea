/**
 * The demo's worker: it owns the wasm model, the data and the in-page files, so that training,
 * sampling and the command box never block the page. Requests are handled one at a time, in order;
 * 'stop' is handled at once (training yields to the event loop every few tens of milliseconds).
 */
import {
  browserCores,
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
  defaultBoundStrata,
  MAX_LENGTH,
  ParallelModel,
  parseSequences,
  resolveConfig,
  rowStrings,
  runMetadata,
  runMetadataOf,
  runTraining,
  sequenceSet,
  spawnWebWorker,
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
    shape: (model.modelConfig.shape ?? [model.length]).slice(),
    step: model.step,
    parameters: model.parameterCount,
    source: modelSource,
  };
}

function setModel(next: DiffusionModel, source: string, metadata: Record<string, string>): ModelInfo {
  dropHelpers();
  model?.free();
  model = next;
  modelSource = source;
  modelMetadata = metadata;
  const info = modelInfo()!;
  post({ kind: 'model', info });
  return info;
}

/**
 * Completions of an image model are the slow part (particles × T network passes each): the model
 * here plus one Web Worker per further core, each with a copy of it, split them (bit-identical to
 * one model: every completion has its own seed). Made on the first completion, kept while the
 * model stays the same.
 */
let helpers: { model: DiffusionModel; step: number; pool: ParallelModel; cores: number } | undefined;

/** At most this many cores for completions (each worker holds a copy of the model). */
const MAX_COMPLETION_CORES = 4;

async function completionPool(current: DiffusionModel): Promise<{ pool: ParallelModel; cores: number } | undefined> {
  const extra = Math.min(browserCores(), MAX_COMPLETION_CORES) - 1;
  if (extra < 1) return undefined;
  if (helpers && helpers.model === current && helpers.step === current.step) return helpers;
  dropHelpers();
  try {
    const pool = await ParallelModel.create({ spawn: spawnWebWorker, workers: extra, local: current });
    helpers = { model: current, step: current.step, pool, cores: extra + 1 };
    return helpers;
  } catch (error) {
    // No nested Web Workers here (or they failed to start): one core does it, only slower.
    console.info(`completions on one core: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

function dropHelpers(): void {
  void helpers?.pool.close();
  helpers = undefined;
}

function requireModel(): DiffusionModel {
  if (!model) throw new UserError('there is no model yet: train one, or load a checkpoint');
  return model;
}

// ---- data ---------------------------------------------------------------------------------------

/** The page's MNIST files, fetched once (they come with the page: no network beyond its server). */
const fetchedTexts = new Map<string, Promise<string>>();

function fetchText(url: string): Promise<string> {
  let text = fetchedTexts.get(url);
  if (!text) {
    text = fetch(url).then((response) => {
      if (!response.ok) throw new UserError(`could not load the digits from ${url}: ${response.status} ${response.statusText}`);
      return response.text();
    });
    text.catch(() => fetchedTexts.delete(url)); // a failed fetch can be tried again
    fetchedTexts.set(url, text);
  }
  return text;
}

/** The first `count` training digits of the page's MNIST files, and all of their validation digits. */
async function mnistData(source: Extract<DataSource, { kind: 'mnist' }>): Promise<{ train: Sequences; val: Sequences }> {
  const [trainText, valText] = await Promise.all([fetchText(source.trainUrl), fetchText(source.valUrl)]);
  const all = parseSequences(trainText, 'mnist/train.txt');
  const val = parseSequences(valText, 'mnist/val.txt');
  const count = whole('training digits', source.count, 1, all.rows);
  return { train: { ...all, rows: count, bits: all.bits.slice(0, count * all.length) }, val };
}

async function loadData(source: DataSource): Promise<DataSummary> {
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
  } else if (source.kind === 'mnist') {
    ({ train, val } = await mnistData(source));
    trainSource = `MNIST digits, the first ${train.rows} of mnist/train.txt`;
    valSource = 'MNIST digits of mnist/val.txt';
    section = { train: '/data/train.txt', val: '/data/val.txt' };
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
  const previewRows = Math.min(train.rows, train.shape?.length === 2 ? 12 : 6);
  const summary: DataSummary = {
    length: train.length,
    trainRows: train.rows,
    valRows: val.rows,
    trainSource,
    valSource,
    period: heartbeat?.period ?? null,
    heartbeat,
    shape: (train.shape ?? [train.length]).slice(),
    preview: rowStrings({ ...train, rows: previewRows, bits: train.bits.subarray(0, previewRows * train.length) }),
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
    'model.channels': 'U-Net channels',
  };
  const image = dataset.summary.shape.length === 2;
  const values: Record<string, unknown> = {
    'model.T': settings.T,
    'model.architecture': settings.architecture,
    'training.steps': settings.steps,
    'training.lr': settings.lr,
    'training.batch_size': settings.batchSize,
    'training.eval_every': settings.evalEvery,
    'training.seed': settings.seed,
    'model.channels': settings.architecture === 'unet' ? settings.channels : undefined,
    'training.checkpoint_every': 0,
    // No early stopping in the page (so the stored config says so, and a resumed run does the same).
    'training.early_stopping': 0,
    // Short runs are the point here: warm up over a tenth of them (the CLI's default is 100 steps).
    'training.warmup_steps':
      Number.isInteger(settings.steps) && settings.steps > 0 ? Math.min(DEFAULTS.training.warmup_steps, Math.floor(settings.steps / 10)) : undefined,
  };
  if (image) {
    // Evaluations of a 784-bit model cost T network passes per chain: 16 chains instead of the
    // CLI's 128 (8 repeats × 16 digits; 2 repeats give the standard error) and 16 samples instead
    // of 64 keep them to seconds; the grid still shows 16 digits.
    values['training.eval_repeats'] = 2;
    values['training.eval_sequences'] = 8;
    values['training.eval_samples'] = 16;
  }
  if (dataset.section.heartbeat) {
    for (const [key, value] of Object.entries(dataset.section.heartbeat)) values[`data.heartbeat.${key}`] = value;
  } else {
    values['data.train'] = dataset.section.train;
    if (dataset.section.val !== undefined) values['data.val'] = dataset.section.val;
  }
  const resolved = resolveConfig([valuesLayer(values, (key) => `the field "${fieldNames[key] ?? key}"`)]);
  checkAgainstLength(resolved, dataset.train.length, dataset.summary.trainSource);
  const runConfig = resolved.config;
  const total = totalSteps(runConfig.training, dataset.train.rows);
  const next = await DiffusionModel.create(
    coreModelConfig(runConfig.model, dataset.train.length, dataset.train.shape),
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
      // no shape: the page keeps its 16-sample grid for images too (each sample is T network passes; the CLI draws 8×8)
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
    if (heartbeat && heartbeat.length === loaded.length) summary = await loadData({ kind: 'heartbeat', ...heartbeat });
  }
  return { info, data: summary };
}

/** Validation images the Evaluate button uses (the bound's chains run T network passes each). */
const IMAGE_EVAL_ROWS = 16;

function evaluate(request: Operations['evaluate']['request']): EvaluationSummary {
  const current = requireModel();
  const repeats = whole('repeats', request.repeats, 1, 1000);
  const samples = whole('samples', request.samples, 1, 100_000);
  const seed = whole('seed', request.seed, 0, MAX_SEED - 1);
  if (!currentData) throw new UserError('choose the data first');
  if (currentData.summary.length !== current.length) {
    throw new UserError(`the data's sequences have ${currentData.summary.length} bits but the model's have ${current.length}`);
  }
  // Images: the first IMAGE_EVAL_ROWS validation digits only; each row costs repeats × T network passes.
  const val = currentData.val;
  const rows = currentData.summary.shape.length === 2 ? Math.min(val.rows, IMAGE_EVAL_ROWS) : val.rows;
  const data = rows === val.rows ? val : { ...val, rows, bits: val.bits.subarray(0, rows * val.length) };
  const evaluation = evaluateModel(current, {
    data,
    trainSet: currentData.trainSet,
    dataSet: currentData.valSet,
    repeats,
    strata: defaultBoundStrata(current.modelConfig.T, current.length),
    samples,
    boundSeed: seed,
    sampleSeed: seed + 1,
  });
  return {
    boundBits: evaluation.bound_bits,
    boundStderr: evaluation.bound_stderr,
    repeats: evaluation.bound_repeats,
    nData: evaluation.n_data,
    dataSource: rows === val.rows ? currentData.summary.valSource : `the first ${rows} of ${currentData.summary.valSource}`,
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
      if (pattern.length !== current.length) throw new UserError(`the pattern has ${pattern.length} bits but the model's rows have ${current.length}`);
      const particles = request.particles === undefined ? undefined : whole('particles', request.particles, 1, 64);
      const options = { seed: whole('seed', request.seed, 0, MAX_SEED), particles };
      // Images: split over the cores (sequences are quick on one).
      const split = (current.modelConfig.shape?.length ?? 1) === 2 && n > 1 ? await completionPool(current) : undefined;
      const bits = split ? await split.pool.inpaint(pattern, n, options) : current.inpaint(pattern, n, options);
      return { rows: labelRows(rowsOf(bits, current.length)), cores: split?.cores ?? 1 };
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
