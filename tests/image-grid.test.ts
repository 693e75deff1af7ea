// Grids of binary images (src/plots/image-grid.ts): layout arithmetic, the colour of chosen pixels,
// the PNG decoded by an independent decoder (pngjs) to the same RGBA, and the GIF's size.
import { GifReader } from 'omggif';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { bitGridPalette, paletteIndex } from '../src/plots/bitgrid.js';
import { textWidth } from '../src/plots/bitmap-font.js';
import { crc32, drawImageGrid, encodePng, gridScaleFor, imageGridGif, imageGridImage, imageGridLayout, imageGridPng } from '../src/plots/image-grid.js';

/** Two 2×3 images: A = 100/001, B = 011/110. */
const bits = Uint8Array.of(1, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0);

describe('image grid', () => {
  it('lays 64 digits out 8 × 8 with 1-pixel gaps, scaled', () => {
    const layout = imageGridLayout(64, [28, 28], { scale: 3 });
    expect(layout.columns).toBe(8);
    expect(layout.gridRows).toBe(8);
    expect(layout.width).toBe((8 * 29 + 1) * 3);
    expect(layout.height).toBe((8 * 29 + 1) * 3);
    expect(imageGridLayout(10, [28, 28]).columns).toBe(4); // ceil(sqrt(10))
    expect(() => imageGridLayout(4, [784])).toThrow(/2-D shape/);
    expect(() => imageGridLayout(0, [2, 2])).toThrow(/at least one image/);
  });

  it('puts every image pixel in its place, gaps and empty cells in background', () => {
    // 3 columns for 2 images: the third cell stays background. scale 2, gap 1.
    const layout = imageGridLayout(2, [2, 3], { columns: 3, scale: 2, gap: 1 });
    expect([layout.width, layout.height]).toEqual([(3 * 4 + 1) * 2, (1 * 3 + 1) * 2]);
    const pixels = drawImageGrid(layout, bits);
    /** Palette index at image pixel (y, x) of image k, checking the whole scale × scale block. */
    const at = (k: number, y: number, x: number) => {
      const left = (1 + k * 4 + x) * 2;
      const top = (1 + y) * 2;
      const values = [0, 1].flatMap((dy) => [0, 1].map((dx) => pixels[(top + dy) * layout.width + left + dx]));
      expect(new Set(values).size).toBe(1);
      return values[0];
    };
    const { one, zero, background } = paletteIndex;
    expect([at(0, 0, 0), at(0, 0, 1), at(0, 0, 2), at(0, 1, 0), at(0, 1, 1), at(0, 1, 2)]).toEqual([one, zero, zero, zero, zero, one]);
    expect([at(1, 0, 0), at(1, 0, 1), at(1, 0, 2), at(1, 1, 0), at(1, 1, 1), at(1, 1, 2)]).toEqual([zero, one, one, one, one, zero]);
    expect([at(2, 0, 0), at(2, 1, 2)]).toEqual([background, background]); // no third image
    // The border, and the gap column between images 0 and 1 (image-pixel column 4).
    for (let y = 0; y < layout.height; y++) {
      expect(pixels[y * layout.width]).toBe(background);
      expect(pixels[y * layout.width + 4 * 2]).toBe(background);
      expect(pixels[y * layout.width + 4 * 2 + 1]).toBe(background);
    }
    expect(pixels.subarray(0, 2 * layout.width).every((p) => p === background)).toBe(true);
    // 6 one-bits (2 in A, 4 in B) and 6 zero-bits, each a 2 × 2 block.
    expect(pixels.filter((p) => p === one).length).toBe(6 * 4);
    expect(pixels.filter((p) => p === zero).length).toBe(6 * 4);
    expect(() => drawImageGrid(layout, bits.subarray(1))).toThrow(/11 bits are not 2 images of 2x3/);
  });

  it('gives RGBA in the bit-grid colours and a PNG that decodes to the same pixels', async () => {
    const image = imageGridImage(bits, 2, [2, 3], { scale: 3 });
    const rgbaAt = (x: number, y: number) => Array.from(image.rgba.subarray((y * image.width + x) * 4, (y * image.width + x) * 4 + 4));
    expect(rgbaAt(0, 0)).toEqual([...bitGridPalette[paletteIndex.background], 255]);
    expect(rgbaAt(3, 3)).toEqual([...bitGridPalette[paletteIndex.one], 255]); // image 0, pixel (0, 0)
    expect(rgbaAt(6, 3)).toEqual([...bitGridPalette[paletteIndex.zero], 255]); // image 0, pixel (0, 1)
    const png = await imageGridPng(bits, 2, [2, 3], { scale: 3 });
    const decoded = PNG.sync.read(Buffer.from(png));
    expect([decoded.width, decoded.height]).toEqual([image.width, image.height]);
    expect(new Uint8Array(decoded.data)).toEqual(image.rgba);
  });

  it('encodes any RGBA image losslessly and checksums with CRC-32', async () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926); // the standard check value
    const width = 5;
    const height = 3;
    const rgba = Uint8Array.from({ length: width * height * 4 }, (_, i) => (i * 37) % 256);
    const decoded = PNG.sync.read(Buffer.from(await encodePng(width, height, rgba)));
    expect(new Uint8Array(decoded.data)).toEqual(rgba);
    await expect(encodePng(2, 2, new Uint8Array(3))).rejects.toThrow(/not a 2 x 2 RGBA image/);
  });

  it('scales a grid to the largest of 1-4 pixels per image pixel that fits', () => {
    // 64 digits: 8 × 29 + 1 = 233 image pixels a side.
    expect([720, 699, 698, 480, 466, 465, 100].map((size) => gridScaleFor(64, [28, 28], size))).toEqual([3, 3, 2, 2, 2, 1, 1]);
    expect(gridScaleFor(2, [2, 3], 10_000)).toBe(4);
    // The longer side decides: 2 images of 2×3 side by side are 9 wide and 4 high.
    expect(gridScaleFor(2, [2, 3], 18, { columns: 2 })).toBe(2);
  });

  it('draws a label and a progress bar above the grid of each frame when asked', () => {
    const labels = ['t = 2', 't = 0'];
    const gif = imageGridGif([bits, bits], 2, [2, 3], { scale: 2, labels, progress: [0, 1] });
    const reader = new GifReader(gif);
    const grid = imageGridLayout(2, [2, 3], { scale: 2 });
    // margin 8, label 2 × 8 + 6, bar 4 + margin 8; wide enough for the label and its margins.
    const header = 8 + 22 + 12;
    expect([reader.width, reader.height]).toEqual([Math.max(grid.width, textWidth('t = 2', 2) + 16), header + grid.height]);
    const frame = (k: number) => {
      const rgba = new Uint8Array(reader.width * reader.height * 4);
      reader.decodeAndBlitFrameRGBA(k, rgba);
      return (x: number, y: number) => Array.from(rgba.subarray(4 * (y * reader.width + x), 4 * (y * reader.width + x) + 3));
    };
    const [first, last] = [frame(0), frame(1)];
    const barY = 8 + 22 + 1;
    expect(first(8, barY)).toEqual([...bitGridPalette[paletteIndex.track]]); // progress 0: an empty track
    expect(last(8, barY)).toEqual([...bitGridPalette[paletteIndex.progress]]);
    expect(last(reader.width - 9, barY)).toEqual([...bitGridPalette[paletteIndex.progress]]);
    // The grid sits under the header, centred: image 0's pixel (0, 0) is a 1.
    const left = Math.floor((reader.width - grid.width) / 2);
    expect(first(left + 2, header + 2)).toEqual([...bitGridPalette[paletteIndex.one]]);
    expect(() => imageGridGif([bits, bits], 2, [2, 3], { labels: ['one'] })).toThrow(/1 labels for 2 frames/);
  });

  it('animates grids as a GIF of the grid size', () => {
    const gif = imageGridGif([bits, bits.map((b) => 1 - b)], 2, [2, 3], { scale: 2 });
    expect(new TextDecoder().decode(gif.subarray(0, 6))).toBe('GIF89a');
    const layout = imageGridLayout(2, [2, 3], { scale: 2 });
    const view = new DataView(gif.buffer, gif.byteOffset);
    expect([view.getUint16(6, true), view.getUint16(8, true)]).toEqual([layout.width, layout.height]);
  });
});
