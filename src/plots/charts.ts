/**
 * Chart definitions (vega-lite specs) built from training metric records, and rendering a spec to
 * an SVG string. Browser-safe: the CLI (through node.ts) and the browser demo draw the same charts.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { checkMetricsRecord } from './metrics-check.js';
import { UserError } from '../errors.js';

/** One line of metrics.jsonl. Evaluation points also carry the bound, the proportions and the grid. */
export interface MetricRecord {
  step: number;
  epoch?: number;
  /** Training loss (bits per sequence) of this step's minibatch. */
  loss: number;
  lr?: number;
  /** Seconds since training started. */
  elapsed?: number;
  bound_bits?: number;
  bound_stderr?: number;
  /** Shares of generated samples: in the training data, in the held-out data, in neither. */
  prop_train?: number;
  prop_val?: number;
  prop_other?: number;
  distinct?: number;
  /** The samples drawn from the same fixed starting noise at this point: one '0'/'1' string per sequence. */
  grid?: string[];
}

/** Records that are evaluation points (they have an evaluated bound or sample proportions). */
export function evaluationPoints(records: readonly MetricRecord[]): MetricRecord[] {
  return records.filter((r) => isFiniteNumber(r.bound_bits) || isFiniteNumber(r.prop_train));
}

/** Colours that stay distinct for colour-blind readers (Okabe & Ito). */
export const chartColours = {
  blue: '#0072B2',
  orange: '#E69F00',
  green: '#009E73',
  vermillion: '#D55E00',
  grey: '#7f7f7f',
  skyBlue: '#56B4E9',
} as const;

/** Font named first in every chart; the Node renderer loads it (Debian: fonts-dejavu-core). */
export const chartFont = 'DejaVu Sans';

const baseConfig = {
  font: `${chartFont}, Helvetica, Arial, sans-serif`,
  background: 'white',
  view: { stroke: '#dddddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#eeeeee' },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: 'top', direction: 'horizontal', labelLimit: 0, columnPadding: 16 },
  title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: '#555555', anchor: 'start' },
} as const;

/** The x encoding of every chart over training: steps from 0, so charts of one run line up. */
const stepAxis = { field: 'step', type: 'quantitative', title: 'training step', scale: { domainMin: 0 }, axis: { format: ',~r' } } as const;

export interface ChartSize {
  width?: number;
  height?: number;
}

/** Steps over which the training loss is averaged for the smooth curve: about 1/50 of the run. */
export function smoothingWindow(count: number): number {
  return Math.max(1, Math.round(count / 50));
}

/** Trailing moving average of `values` over `window` entries (fewer at the start). */
export function movingAverage(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

/** Every k-th index (and the last) so that at most `maxPoints` remain. */
export function thinIndices(count: number, maxPoints: number): number[] {
  const stride = Math.max(1, Math.ceil(count / maxPoints));
  const kept: number[] = [];
  for (let i = 0; i < count; i += stride) kept.push(i);
  if (count > 0 && kept[kept.length - 1] !== count - 1) kept.push(count - 1);
  return kept;
}

/** A log y axis helps when the values span more than a factor of 20 and are all positive. */
export function wantsLogScale(values: readonly number[]): boolean {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0 || finite.some((v) => v <= 0)) return false;
  return Math.max(...finite) / Math.min(...finite) > 20;
}

/** The value below which a share q of the sorted values lies (linear interpolation between ranks). */
export function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const below = Math.floor(at);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (at - below);
}

/** A y axis cut short so that the loss after its initial drop fills the chart. */
export interface LossAxisCut {
  /** The y domain [low, high] in bits. */
  domain: [number, number];
  /** The last step of the warm-up the range was not taken from. */
  warmupEnd: number;
  /** The largest value above the axis. */
  highest: number;
}

/** The share of the run's steps (from the first logged one) left out when choosing the y range. */
const lossWarmupShare = 0.05;

/**
 * Where to cut the loss chart's y axis, or undefined to show everything. After the first 5% of
 * the steps, the range is from the 1% to the 99% quantile of the minibatch losses (and every
 * bound ± s.e.), widened by 15% of itself each way. The axis is cut only if the values above it
 * would otherwise take more than half of the chart's height (the initial loss is often 10-20
 * times the final one and would squash the rest of the run into a flat line).
 */
export function lossAxisCut(logged: readonly MetricRecord[], bounds: readonly MetricRecord[]): LossAxisCut | undefined {
  if (logged.length === 0) return undefined;
  const first = logged[0].step;
  const warmupEnd = first + lossWarmupShare * (logged.at(-1)!.step - first);
  const late = logged.filter((r) => r.step > warmupEnd).map((r) => r.loss);
  if (late.length < 20) return undefined; // too few points to tell noise from the trend
  late.sort((a, b) => a - b);
  let low = quantile(late, 0.01);
  let high = quantile(late, 0.99);
  for (const r of bounds) {
    if (r.step <= warmupEnd) continue;
    const stderr = isFiniteNumber(r.bound_stderr) ? r.bound_stderr : 0;
    low = Math.min(low, r.bound_bits! - stderr);
    high = Math.max(high, r.bound_bits! + stderr);
  }
  const pad = 0.15 * (high - low || Math.abs(high) || 1);
  const domain: [number, number] = [low >= 0 ? Math.max(0, low - pad) : low - pad, high + pad];
  let highest = -Infinity; // (a loop: a long run has too many values to spread into Math.max)
  for (const r of logged) highest = Math.max(highest, r.loss);
  for (const r of bounds) highest = Math.max(highest, r.bound_bits! + (isFiniteNumber(r.bound_stderr) ? r.bound_stderr : 0));
  if (highest - domain[0] <= 2 * (domain[1] - domain[0])) return undefined;
  return { domain, warmupEnd: Math.floor(warmupEnd), highest };
}

const lossSeries = {
  raw: 'training loss (minibatch)',
  smooth: 'training loss (moving average)',
  bound: 'evaluated bound ± 1 s.e.',
} as const;

/**
 * Training loss per logged step (faint), its moving average, and the evaluated bound with its
 * standard error at evaluation points, all in bits per sequence against the training step.
 */
export function lossChartSpec(records: readonly MetricRecord[], size: ChartSize = {}): TopLevelSpec {
  const logged = records.filter((r) => isFiniteNumber(r.loss));
  const window = smoothingWindow(logged.length);
  const smooth = movingAverage(logged.map((r) => r.loss), window);
  const rows: { step: number; bits: number; series: string; low?: number; high?: number }[] = [];
  for (const i of thinIndices(logged.length, 1500)) {
    rows.push({ step: logged[i].step, bits: logged[i].loss, series: lossSeries.raw });
    rows.push({ step: logged[i].step, bits: smooth[i], series: lossSeries.smooth });
  }
  const bounds = records.filter((r) => isFiniteNumber(r.bound_bits));
  for (const r of bounds) {
    const stderr = isFiniteNumber(r.bound_stderr) ? r.bound_stderr : 0;
    rows.push({ step: r.step, bits: r.bound_bits!, series: lossSeries.bound, low: r.bound_bits! - stderr, high: r.bound_bits! + stderr });
  }
  const cut = lossAxisCut(logged, bounds);
  const logY = !cut && wantsLogScale(rows.map((r) => r.bits));
  if (logY) for (const r of rows) if (r.low !== undefined) r.low = Math.max(r.low, r.bits / 10); // keep bars on the log axis
  // Values above a cut axis: a mark on the top edge at their step.
  const above = cut ? rows.filter((r) => r.series !== lossSeries.smooth && (r.high ?? r.bits) > cut.domain[1]).map((r) => ({ step: r.step, bits: cut.domain[1] })) : [];

  const domain = [lossSeries.raw, lossSeries.smooth, lossSeries.bound];
  const colour = {
    field: 'series',
    type: 'nominal',
    title: null,
    scale: { domain, range: [chartColours.skyBlue, chartColours.blue, chartColours.vermillion] },
  } as const;
  const x = stepAxis;
  const y = {
    field: 'bits',
    type: 'quantitative',
    title: `bits per sequence${logY ? ' (log scale)' : ''}`,
    scale: cut ? { domain: cut.domain, nice: false } : logY ? { type: 'log' } : { zero: false },
  } as const;
  const only = (series: string) => [{ filter: { field: 'series', equal: series } }];
  const final = bounds.at(-1);
  const subtitle = final
    ? `final bound ${final.bound_bits!.toFixed(2)} bits/sequence at step ${final.step}; the training loss is a noisy estimate of the same bound`
    : 'training loss per minibatch (an estimate of the bound on the negative log-likelihood)';
  const cutNote = cut && `y axis cut at ${formatBits(cut.domain[1])} bits, the range of the run after step ${cut.warmupEnd}; ▲ marks values above it (up to ${formatBits(cut.highest)})`;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Training loss and evaluated bound', subtitle: cutNote ? [subtitle, cutNote] : subtitle },
    width: size.width ?? 560,
    height: size.height ?? 300,
    data: { values: rows },
    layer: [
      { transform: only(lossSeries.raw), mark: { type: 'line', strokeWidth: 0.8, strokeOpacity: 0.6, clip: true }, encoding: { x, y, color: colour } },
      { transform: only(lossSeries.smooth), mark: { type: 'line', strokeWidth: 2, clip: true }, encoding: { x, y, color: colour } },
      {
        transform: only(lossSeries.bound),
        mark: { type: 'rule', strokeWidth: 1.5, clip: true },
        encoding: { x, y: { ...y, field: 'low' }, y2: { field: 'high' }, color: colour },
      },
      {
        transform: only(lossSeries.bound),
        mark: { type: 'line', point: { filled: true, size: 36 }, strokeWidth: 1.5, clip: true },
        encoding: { x, y, color: colour },
      },
      ...(above.length > 0
        ? [{ data: { values: above }, mark: { type: 'point', shape: 'triangle-up', filled: true, size: 30, color: chartColours.grey, yOffset: 4 }, encoding: { x, y } }]
        : []),
    ],
    config: baseConfig,
  } as TopLevelSpec;
}

const shareSeries = {
  train: 'in the training data',
  val: 'in the held-out data',
  other: 'in neither',
} as const;

/**
 * Over training, the share of generated samples that are sequences of the training data, of the
 * held-out data, and of neither (the original project's validation picture).
 */
export function proportionsChartSpec(records: readonly MetricRecord[], size: ChartSize = {}): TopLevelSpec {
  const rows: { step: number; share: number; series: string }[] = [];
  const present = new Set<string>();
  for (const r of records) {
    const val = r.prop_val ?? (r as { prop_data?: number }).prop_data; // `evaluate --json` calls it prop_data
    for (const [series, share] of [
      [shareSeries.train, r.prop_train],
      [shareSeries.val, val],
      [shareSeries.other, r.prop_other],
    ] as const) {
      if (!isFiniteNumber(share)) continue;
      rows.push({ step: r.step, share, series });
      present.add(series);
    }
  }
  const all = [shareSeries.train, shareSeries.val, shareSeries.other];
  const colours = [chartColours.blue, chartColours.green, chartColours.vermillion];
  const keep = all.map((s, i) => [s, colours[i]] as const).filter(([s]) => present.has(s));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Where generated samples fall',
      subtitle: 'share of samples that are a sequence of the training data, of the held-out data, or of neither',
    },
    width: size.width ?? 560,
    height: size.height ?? 260,
    data: { values: rows },
    mark: { type: 'line', point: { filled: true, size: 30 }, strokeWidth: 2 },
    encoding: {
      x: stepAxis,
      y: { field: 'share', type: 'quantitative', title: 'share of samples', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        sort: keep.map(([s]) => s),
        scale: { domain: keep.map(([s]) => s), range: keep.map(([, c]) => c) },
      },
    },
    config: baseConfig,
  } as TopLevelSpec;
}

/** Renders a vega-lite spec to a standalone SVG string (no DOM needed: works in Node and browsers). */
export async function chartToSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Bits for a chart note: 3 significant digits. */
function formatBits(bits: number): string {
  return bits.toPrecision(3);
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
