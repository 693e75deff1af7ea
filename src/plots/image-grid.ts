/**
 * Grids of binary images (e.g. 8 × 8 MNIST digits) as pictures: palette indices, RGBA bytes, PNG
 * bytes and animated GIFs, in the colours of the bit grids (src/plots/bitgrid.ts). Browser-safe:
 * the PNG is compressed with the platform's CompressionStream (Node >= 18 and every current browser).
 */
import { bitGridPalette, indexedToRgba, paletteIndex } from './bitgrid.js';
import { drawText, glyphHeight, textWidth } from './bitmap-font.js';
import * as gifencNamespace from 'gifenc';

export interface ImageGridOptions {
  /** Images per grid row (default: ceil(sqrt(count)), 8 for 64 images). */
  columns?: number;
  /** Output pixels per image pixel (default 4). */
  scale?: number;
  /** Blank image pixels between images and around the grid, before scaling (default 1). */
  gap?: number;
}

/** Where every image goes: image k at column k mod columns, grid row floor(k / columns). */
export interface ImageGridLayout {
  count: number;
  imageHeight: number;
  imageWidth: number;
  columns: number;
  gridRows: number;
  scale: number;
  gap: number;
  /** Picture size in output pixels. */
  width: number;
  height: number;
}

export function imageGridLayout(count: number, shape: readonly number[], options: ImageGridOptions = {}): ImageGridLayout {
  if (shape.length !== 2 || !shape.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`an image grid needs a 2-D shape, got [${shape.join(', ')}]`);
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`an image grid needs at least one image (got ${count})`);
  const [imageHeight, imageWidth] = shape;
  const columns = options.columns ?? Math.ceil(Math.sqrt(count));
  const scale = options.scale ?? 4;
  const gap = options.gap ?? 1;
  if (!(Number.isInteger(columns) && columns >= 1 && Number.isInteger(scale) && scale >= 1 && Number.isInteger(gap) && gap >= 0)) {
    throw new Error(`image grid options must be whole numbers (columns >= 1, scale >= 1, gap >= 0): ${JSON.stringify(options)}`);
  }
  const gridRows = Math.ceil(count / columns);
  // In image pixels: gap, image, gap, image, …, gap.
  const width = (columns * (imageWidth + gap) + gap) * scale;
  const height = (gridRows * (imageHeight + gap) + gap) * scale;
  return { count, imageHeight, imageWidth, columns, gridRows, scale, gap, width, height };
}

/**
 * The largest scale (output pixels per image pixel, 1 to 4) at which the grid's longer side fits in
 * `maxSize` pixels (1 when even that does not fit): 64 MNIST digits get 3 for 720, 2 for 480.
 */
export function gridScaleFor(count: number, shape: readonly number[], maxSize: number, options: Omit<ImageGridOptions, 'scale'> = {}): number {
  const unscaled = imageGridLayout(count, shape, { ...options, scale: 1 });
  return Math.max(1, Math.min(4, Math.floor(maxSize / Math.max(unscaled.width, unscaled.height))));
}

/**
 * Draws `count` images (rows × H·W bits, row-major, each image row-major) as palette indices of
 * the bit-grid palette: 1-bits dark, 0-bits light grey, gaps and unused cells white.
 */
export function drawImageGrid(layout: ImageGridLayout, bits: Uint8Array): Uint8Array {
  const { count, imageHeight, imageWidth, columns, scale, gap, width, height } = layout;
  const imageSize = imageHeight * imageWidth;
  if (bits.length !== count * imageSize) throw new Error(`${bits.length} bits are not ${count} images of ${imageHeight}x${imageWidth}`);
  const pixels = new Uint8Array(width * height).fill(paletteIndex.background);
  for (let k = 0; k < count; k++) {
    // Top-left corner of image k, in image pixels.
    const left = gap + (k % columns) * (imageWidth + gap);
    const top = gap + Math.floor(k / columns) * (imageHeight + gap);
    for (let y = 0; y < imageHeight; y++) {
      for (let x = 0; x < imageWidth; x++) {
        const colour = bits[k * imageSize + y * imageWidth + x] === 1 ? paletteIndex.one : paletteIndex.zero;
        for (let sy = 0; sy < scale; sy++) {
          const start = ((top + y) * scale + sy) * width + (left + x) * scale;
          pixels.fill(colour, start, start + scale);
        }
      }
    }
  }
  return pixels;
}

/** A grid of binary images as RGBA bytes (opaque). */
export function imageGridImage(
  bits: Uint8Array,
  count: number,
  shape: readonly number[],
  options: ImageGridOptions = {},
): { width: number; height: number; rgba: Uint8Array } {
  const layout = imageGridLayout(count, shape, options);
  return { width: layout.width, height: layout.height, rgba: indexedToRgba(drawImageGrid(layout, bits)) };
}

/** A grid of binary images as PNG bytes. */
export async function imageGridPng(bits: Uint8Array, count: number, shape: readonly number[], options: ImageGridOptions = {}): Promise<Uint8Array> {
  const image = imageGridImage(bits, count, shape, options);
  return encodePng(image.width, image.height, image.rgba);
}

// gifenc ships CommonJS: Node's ESM loader puts its exports under `default`, bundlers expose them directly.
interface GifEncoder {
  writeFrame(index: Uint8Array, width: number, height: number, options: { palette?: number[][]; delay?: number; repeat?: number }): void;
  finish(): void;
  bytes(): Uint8Array;
}
const gifenc = ('GIFEncoder' in gifencNamespace ? gifencNamespace : (gifencNamespace as { default: unknown }).default) as { GIFEncoder: () => GifEncoder };

/** Options of `imageGridGif`: the grid's, frame timing, and an optional caption row per frame. */
export interface ImageGridGifOptions extends ImageGridOptions {
  /** Milliseconds per frame (default 200); the first frame may stay `firstMs`, the last `lastMs` (default 2000). */
  frameMs?: number;
  firstMs?: number;
  lastMs?: number;
  /** One label per frame ("step 1200", "t = 35"), drawn above the grid. */
  labels?: readonly string[];
  /** One progress fraction (0..1) per frame, drawn as a bar under the labels. */
  progress?: readonly number[];
}

/** Pixels around the header's label and bar. */
const headerMargin = 8;
const labelScale = 2;

/** Where the grid sits in a GIF frame with a header: frame size, the grid's offset, label and bar rows. */
export function imageGridFrameLayout(grid: ImageGridLayout, options: Pick<ImageGridGifOptions, 'labels' | 'progress'>) {
  const labelled = (options.labels?.length ?? 0) > 0;
  const barred = (options.progress?.length ?? 0) > 0;
  const labelTop = headerMargin;
  const barTop = labelTop + (labelled ? glyphHeight * labelScale + 6 : 0);
  const gridTop = labelled || barred ? barTop + (barred ? 4 + headerMargin : 0) : 0;
  const labelWidth = Math.max(0, ...(options.labels ?? []).map((label) => textWidth(label, labelScale)));
  const width = Math.max(grid.width, labelWidth + 2 * headerMargin);
  return { width, height: gridTop + grid.height, gridLeft: Math.floor((width - grid.width) / 2), gridTop, labelTop, barTop, labelled, barred };
}

/**
 * An animated GIF (looping) of image grids, one frame per entry of `frames` (each count × H·W bits),
 * e.g. samples over training or the reverse process, with an optional label and progress bar above
 * the grid; `frameMs` per frame, the first held `firstMs`, the last `lastMs`.
 */
export function imageGridGif(frames: readonly Uint8Array[], count: number, shape: readonly number[], options: ImageGridGifOptions = {}): Uint8Array {
  if (frames.length === 0) throw new Error('an animation needs at least one frame');
  for (const [name, list] of [
    ['labels', options.labels],
    ['progress', options.progress],
  ] as const)
    if (list !== undefined && list.length !== frames.length) throw new Error(`${list.length} ${name} for ${frames.length} frames`);
  const layout = imageGridLayout(count, shape, options);
  const frame = imageGridFrameLayout(layout, options);
  const encoder = gifenc.GIFEncoder();
  const palette = bitGridPalette.map((c) => [...c]);
  while (palette.length < 8) palette.push([0, 0, 0]); // GIF colour tables hold a power of two entries
  frames.forEach((bits, k) => {
    const delay = k === frames.length - 1 ? (options.lastMs ?? 2000) : k === 0 && options.firstMs !== undefined ? options.firstMs : (options.frameMs ?? 200);
    const grid = drawImageGrid(layout, bits);
    let pixels = grid;
    if (frame.width !== layout.width || frame.height !== layout.height) {
      pixels = new Uint8Array(frame.width * frame.height).fill(paletteIndex.background);
      for (let y = 0; y < layout.height; y++)
        pixels.set(grid.subarray(y * layout.width, (y + 1) * layout.width), (frame.gridTop + y) * frame.width + frame.gridLeft);
      if (frame.labelled) drawText(pixels, frame.width, options.labels![k], headerMargin, frame.labelTop, paletteIndex.text, labelScale);
      if (frame.barred) {
        const barWidth = frame.width - 2 * headerMargin;
        const filled = Math.round(Math.min(1, Math.max(0, options.progress![k])) * barWidth);
        for (let y = frame.barTop; y < frame.barTop + 4; y++) {
          pixels.fill(paletteIndex.track, y * frame.width + headerMargin, y * frame.width + headerMargin + barWidth);
          pixels.fill(paletteIndex.progress, y * frame.width + headerMargin, y * frame.width + headerMargin + filled);
        }
      }
    }
    encoder.writeFrame(pixels, frame.width, frame.height, { palette: k === 0 ? palette : undefined, delay, repeat: 0 });
  });
  encoder.finish();
  return encoder.bytes();
}

// ---- PNG (RGBA, 8 bits per channel, zlib-compressed) -------------------------------------------

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, the PNG chunk checksum). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** zlib-format deflate (what PNG's IDAT holds), by the platform's CompressionStream. */
async function zlibDeflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** RGBA bytes (width × height × 4) to a PNG file: colour type 6, 8-bit, no interlace, filter 0 per row. */
export async function encodePng(width: number, height: number, rgba: Uint8Array): Promise<Uint8Array> {
  if (rgba.length !== width * height * 4) throw new Error(`${rgba.length} bytes are not a ${width} x ${height} RGBA image`);
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8); // bit depth 8, RGBA, deflate, adaptive filtering, no interlace
  const stride = width * 4;
  const raw = new Uint8Array((stride + 1) * height); // each scanline: filter type 0 (none), then its bytes
  for (let y = 0; y < height; y++) raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const parts = [
    Uint8Array.of(137, 80, 78, 71, 13, 10, 26, 10),
    chunk('IHDR', header),
    chunk('IDAT', await zlibDeflate(raw)),
    chunk('IEND', new Uint8Array(0)),
  ];
  const png = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    png.set(part, offset);
    offset += part.length;
  }
  return png;
}
