/**
 * Grids of bits as pictures: one row per sequence, one square per bit, with an optional label and
 * progress bar on top; as indexed frames, RGBA images and animated GIFs (gifenc). Browser-safe.
 */
import * as gifencNamespace from 'gifenc';
import { drawText, glyphHeight, textWidth } from './bitmap-font.js';

/** Colour indices of every bit-grid picture. */
export const paletteIndex = { background: 0, zero: 1, one: 2, text: 3, track: 4, progress: 5 } as const;

/** RGB colours, by palette index: white, light grey 0-bits, dark blue 1-bits, ink, bar track, orange bar. */
export const bitGridPalette: readonly (readonly [number, number, number])[] = [
  [255, 255, 255],
  [226, 231, 238],
  [22, 50, 92],
  [34, 34, 34],
  [221, 221, 221],
  [230, 159, 0],
];

/** Sequences as one Uint8Array (rows × length, row-major, 0/1). */
export interface BitRows {
  bits: Uint8Array;
  rows: number;
  length: number;
}

/** Parses strings of '0'/'1' (all the same length) into a row-major bit array. */
export function parseBitRows(lines: readonly string[]): BitRows {
  const length = lines.length > 0 ? lines[0].length : 0;
  const bits = new Uint8Array(lines.length * length);
  lines.forEach((line, row) => {
    if (line.length !== length) throw new Error(`grid row ${row + 1} has ${line.length} bits, row 1 has ${length}`);
    for (let i = 0; i < length; i++) {
      const c = line[i];
      if (c !== '0' && c !== '1') throw new Error(`grid row ${row + 1} has '${c}' at position ${i + 1}; only 0 and 1 are allowed`);
      bits[row * length + i] = c === '1' ? 1 : 0;
    }
  });
  return { bits, rows: lines.length, length };
}

/** Where everything goes in a bit-grid picture. */
export interface BitGridLayout {
  rows: number;
  length: number;
  width: number;
  height: number;
  /** Side of one bit's square, and the blank line between squares. */
  cell: number;
  gap: number;
  gridLeft: number;
  gridTop: number;
  /** 0 when the picture has no label. */
  labelScale: number;
  labelTop: number;
  barTop: number;
  barHeight: number;
}

/** Layout options of a bit grid: the largest grid size, the frame labels, a progress bar. */
export interface BitGridLayoutOptions {
  /** Largest grid size in pixels the cells are fitted into (the label may widen the picture). */
  maxGridWidth?: number;
  maxGridHeight?: number;
  /** Labels the frames will carry (to leave room for the longest); none: no label row. */
  labels?: readonly string[];
  /** Leave room for a progress bar under the label. */
  progressBar?: boolean;
}

const margin = 8;

export function bitGridLayout(rows: number, length: number, options: BitGridLayoutOptions = {}): BitGridLayout {
  if (rows < 1 || length < 1) throw new Error(`a bit grid needs at least one row and one column (got ${rows} × ${length})`);
  const maxWidth = options.maxGridWidth ?? 480;
  const maxHeight = options.maxGridHeight ?? 640;
  const cell = Math.max(1, Math.min(16, Math.floor(maxWidth / length), Math.floor(maxHeight / rows)));
  const gap = cell >= 6 ? 1 : 0;
  const gridWidth = length * (cell + gap) - gap;
  const gridHeight = rows * (cell + gap) - gap;
  const labels = options.labels ?? [];
  const labelScale = labels.length > 0 ? 2 : 0;
  const labelWidth = Math.max(0, ...labels.map((l) => textWidth(l, labelScale)));
  const labelTop = margin;
  const labelHeight = labelScale > 0 ? glyphHeight * labelScale + 6 : 0;
  const barHeight = options.progressBar ? 4 : 0;
  const barTop = labelTop + labelHeight;
  const gridTop = barTop + (barHeight > 0 ? barHeight + 8 : 0);
  const width = Math.max(gridWidth, labelWidth) + 2 * margin;
  const height = gridTop + gridHeight + margin;
  const gridLeft = Math.floor((width - gridWidth) / 2);
  return { rows, length, width, height, cell, gap, gridLeft, gridTop, labelScale, labelTop, barTop, barHeight };
}

export interface BitGridFrame {
  /** rows × length bits, row-major. */
  bits: Uint8Array;
  label?: string;
  /** Fill of the progress bar, 0..1. */
  progress?: number;
}

/** Draws one frame as palette indices (width × height, row-major). */
export function drawBitGridFrame(layout: BitGridLayout, frame: BitGridFrame): Uint8Array {
  const { rows, length, width, height, cell, gap } = layout;
  if (frame.bits.length !== rows * length) throw new Error(`frame has ${frame.bits.length} bits, the grid needs ${rows} × ${length}`);
  const pixels = new Uint8Array(width * height).fill(paletteIndex.background);
  const fillRect = (x: number, y: number, w: number, h: number, index: number) => {
    for (let py = y; py < y + h; py++) pixels.fill(index, py * width + x, py * width + x + w);
  };
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < length; i++) {
      const colour = frame.bits[r * length + i] ? paletteIndex.one : paletteIndex.zero;
      fillRect(layout.gridLeft + i * (cell + gap), layout.gridTop + r * (cell + gap), cell, cell, colour);
    }
  }
  if (frame.label !== undefined && layout.labelScale > 0) {
    drawText(pixels, width, frame.label, margin, layout.labelTop, paletteIndex.text, layout.labelScale);
  }
  if (layout.barHeight > 0) {
    const barWidth = width - 2 * margin;
    fillRect(margin, layout.barTop, barWidth, layout.barHeight, paletteIndex.track);
    const progress = Math.min(1, Math.max(0, frame.progress ?? 0));
    fillRect(margin, layout.barTop, Math.round(progress * barWidth), layout.barHeight, paletteIndex.progress);
  }
  return pixels;
}

/** Palette indices to RGBA bytes (opaque). */
export function indexedToRgba(pixels: Uint8Array, palette = bitGridPalette): Uint8Array {
  const rgba = new Uint8Array(pixels.length * 4);
  for (let p = 0; p < pixels.length; p++) {
    const [r, g, b] = palette[pixels[p]];
    rgba.set([r, g, b, 255], p * 4);
  }
  return rgba;
}

export interface GifTiming {
  /** Milliseconds each frame shows; the first and last may stay longer. */
  frameMs: number;
  firstMs?: number;
  lastMs?: number;
}

// gifenc ships CommonJS: Node's ESM loader puts its exports under `default`, bundlers expose them directly.
interface GifEncoder {
  writeFrame(index: Uint8Array, width: number, height: number, options: { palette?: number[][]; delay?: number; repeat?: number }): void;
  finish(): void;
  bytes(): Uint8Array;
}
const gifenc = ('GIFEncoder' in gifencNamespace ? gifencNamespace : (gifencNamespace as { default: unknown }).default) as {
  GIFEncoder: () => GifEncoder;
};

/** An animated GIF (looping forever) of bit-grid frames, all drawn with `layout`. */
export function encodeBitGridGif(layout: BitGridLayout, frames: readonly BitGridFrame[], timing: GifTiming): Uint8Array {
  if (frames.length === 0) throw new Error('an animation needs at least one frame');
  const encoder = gifenc.GIFEncoder();
  const palette = bitGridPalette.map((c) => [...c]);
  while (palette.length < 8) palette.push([0, 0, 0]); // GIF colour tables hold a power of two entries
  frames.forEach((frame, k) => {
    const delay =
      k === 0 && timing.firstMs !== undefined ? timing.firstMs : k === frames.length - 1 && timing.lastMs !== undefined ? timing.lastMs : timing.frameMs;
    encoder.writeFrame(drawBitGridFrame(layout, frame), layout.width, layout.height, {
      palette: k === 0 ? palette : undefined, // one global colour table
      delay,
      repeat: 0,
    });
  });
  encoder.finish();
  return encoder.bytes();
}

/** Samples drawn from the same fixed starting noise at one evaluation point. */
export interface EvaluationGrid {
  step: number;
  grid: readonly string[];
}

/** One frame per evaluation point, labelled with its step; the bar shows how far training got. */
export function samplesOverTrainingGif(points: readonly EvaluationGrid[], layoutOptions: BitGridLayoutOptions = {}): Uint8Array {
  if (points.length === 0) throw new Error('no evaluation points with a sample grid to animate');
  const parsed = points.map((p) => parseBitRows(p.grid));
  const { rows, length } = parsed[0];
  parsed.forEach((g, k) => {
    if (g.rows !== rows || g.length !== length)
      throw new Error(`the sample grid at step ${points[k].step} is ${g.rows} × ${g.length}, the first is ${rows} × ${length}`);
  });
  const lastStep = Math.max(...points.map((p) => p.step));
  const labels = points.map((p) => `step ${p.step}`);
  const layout = bitGridLayout(rows, length, { ...layoutOptions, labels, progressBar: true });
  const frames = parsed.map((g, k) => ({ bits: g.bits, label: labels[k], progress: lastStep > 0 ? points[k].step / lastStep : 1 }));
  return encodeBitGridGif(layout, frames, { frameMs: 500, lastMs: 2500 });
}

/** One recorded state of the reverse chain: the batch at time step t (rows × L bits). */
export interface ReverseFrame {
  t: number;
  bits: Uint8Array;
}

/** The batch denoising from t = T to t = 0, one frame per recorded step, labelled with t. */
export function reverseProcessGif(frames: readonly ReverseFrame[], sequenceLength: number, layoutOptions: BitGridLayoutOptions = {}): Uint8Array {
  if (frames.length === 0) throw new Error('no reverse-process frames to animate');
  if (!(sequenceLength >= 1) || frames[0].bits.length % sequenceLength !== 0)
    throw new Error(`reverse-process frames of ${frames[0].bits.length} bits do not split into sequences of length ${sequenceLength}`);
  const rows = frames[0].bits.length / sequenceLength;
  const steps = Math.max(...frames.map((f) => f.t));
  const labels = frames.map((f) => `t = ${f.t}`);
  const layout = bitGridLayout(rows, sequenceLength, { ...layoutOptions, labels, progressBar: true });
  const gifFrames = frames.map((f, k) => ({ bits: f.bits, label: labels[k], progress: steps > 0 ? (steps - f.t) / steps : 1 }));
  // About four seconds however many frames were recorded, holding the noise and the result longer.
  const frameMs = Math.min(400, Math.max(60, Math.round(4000 / frames.length)));
  return encodeBitGridGif(layout, gifFrames, { frameMs, firstMs: 1000, lastMs: 2500 });
}

/** A still picture of sequences (no label): width, height and RGBA bytes, e.g. for a PNG. */
export function bitGridImage(lines: readonly string[], layoutOptions: BitGridLayoutOptions = {}): { width: number; height: number; rgba: Uint8Array } {
  const { bits, rows, length } = parseBitRows(lines);
  const layout = bitGridLayout(rows, length, { ...layoutOptions, labels: [], progressBar: false });
  return { width: layout.width, height: layout.height, rgba: indexedToRgba(drawBitGridFrame(layout, { bits })) };
}
