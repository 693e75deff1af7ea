// The browser-safe plot modules: bitmap font, bit grids and GIFs, chart specs, metrics parsing, report HTML.
import { GifReader } from 'omggif';
import { describe, expect, it } from 'vitest';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { drawText, fontCharacters, glyphHeight, glyphWidth, textWidth } from '../src/plots/bitmap-font.js';
import {
  bitGridImage,
  bitGridLayout,
  bitGridPalette,
  drawBitGridFrame,
  encodeBitGridGif,
  indexedToRgba,
  paletteIndex,
  parseBitRows,
  reverseProcessGif,
  samplesOverTrainingGif,
} from '../src/plots/bitgrid.js';
import {
  chartToSvg,
  evaluationPoints,
  lossAxisCut,
  lossChartSpec,
  type MetricRecord,
  movingAverage,
  parseMetricsJsonl,
  proportionsChartSpec,
  quantile,
  thinIndices,
  wantsLogScale,
} from '../src/plots/charts.js';
import { dataUri, escapeHtml, flattenForTable, formatValue, reportHtml } from '../src/plots/report.js';
import { UserError } from '../src/errors.js';
import { syntheticReverseFrames, syntheticRun } from './plots-fixtures.js';

function decodeGif(bytes: Uint8Array) {
  const reader = new GifReader(bytes);
  const frames = Array.from({ length: reader.numFrames() }, (_, k) => {
    const rgba = new Uint8Array(reader.width * reader.height * 4);
    reader.decodeAndBlitFrameRGBA(k, rgba);
    return { rgba, delayCs: reader.frameInfo(k).delay };
  });
  return { width: reader.width, height: reader.height, loop: reader.loopCount(), frames };
}

function distinctColours(rgba: Uint8Array): number {
  const seen = new Set<number>();
  for (let p = 0; p < rgba.length; p += 4) seen.add((rgba[p] << 16) | (rgba[p + 1] << 8) | rgba[p + 2]);
  return seen.size;
}

describe('bitmap font', () => {
  it('draws each glyph pixel for pixel, scaled, and clips at the image edge', () => {
    // '1' is ..#.. / .##.. / ..#.. x4 / .###. / (empty descender row)
    const expected = ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.', '.....'];
    const pixels = new Uint8Array(glyphWidth * glyphHeight);
    drawText(pixels, glyphWidth, '1', 0, 0, 9);
    const drawn = Array.from({ length: glyphHeight }, (_, r) =>
      Array.from(pixels.subarray(r * glyphWidth, (r + 1) * glyphWidth), (v) => (v === 9 ? '#' : '.')).join(''),
    );
    expect(drawn).toEqual(expected);

    const scaled = new Uint8Array(10 * 16);
    drawText(scaled, 10, '1', 0, 0, 1, 2);
    expect(scaled.reduce((a, b) => a + b, 0)).toBe(4 * expected.join('').split('#').length - 4); // each ink pixel becomes 2×2

    const clipped = new Uint8Array(3 * 3);
    expect(() => drawText(clipped, 3, '88', 1, 1, 1, 3)).not.toThrow();
  });

  it('has every character the labels use, measures text, and refuses unknown characters', () => {
    for (const c of 'step 0123456789t=/,.-:') expect(fontCharacters).toContain(c);
    expect(textWidth('', 2)).toBe(0);
    expect(textWidth('t = 35', 1)).toBe(6 * 6 - 1);
    expect(textWidth('t = 35', 2)).toBe(2 * (6 * 6 - 1));
    expect(() => drawText(new Uint8Array(100), 10, 'step ?', 0, 0, 1)).toThrow(/no glyph for '\?'/);
  });
});

describe('bit grids', () => {
  it('parses rows of 0/1 and names the row and column of a mistake', () => {
    const { bits, rows, length } = parseBitRows(['0110', '1000']);
    expect([rows, length]).toEqual([2, 4]);
    expect([...bits]).toEqual([0, 1, 1, 0, 1, 0, 0, 0]);
    expect(() => parseBitRows(['0101', '010'])).toThrow(/row 2 has 3 bits/);
    expect(() => parseBitRows(['0101', '01x1'])).toThrow(/row 2 has 'x' at position 3/);
  });

  it('puts each bit in its own square, in the right colour, with gaps and a label', () => {
    const lines = ['10', '01', '11'];
    const layout = bitGridLayout(3, 2, { labels: ['t = 5'], progressBar: true, maxGridWidth: 40, maxGridHeight: 100 });
    expect(layout.cell).toBe(16); // min(16, 40/2, 100/3)
    expect(layout.gap).toBe(1);
    expect(layout.width).toBe(Math.max(2 * 17 - 1, textWidth('t = 5', 2)) + 16);
    expect(layout.height).toBe(layout.gridTop + 3 * 17 - 1 + 8);
    const pixels = drawBitGridFrame(layout, { bits: parseBitRows(lines).bits, label: 't = 5', progress: 0.25 });
    const at = (x: number, y: number) => pixels[y * layout.width + x];
    lines.forEach((line, r) =>
      [...line].forEach((c, i) => {
        const x = layout.gridLeft + i * 17;
        const y = layout.gridTop + r * 17;
        for (const [dx, dy] of [
          [0, 0],
          [15, 15],
          [8, 8],
        ])
          expect(at(x + dx, y + dy)).toBe(c === '1' ? paletteIndex.one : paletteIndex.zero);
        if (i === 0) expect(at(x + 16, y + 8)).toBe(paletteIndex.background); // the gap between squares
      }),
    );
    // Progress bar: a quarter of it filled.
    const barRow = Array.from({ length: layout.width }, (_, x) => at(x, layout.barTop));
    const filled = barRow.filter((v) => v === paletteIndex.progress).length;
    const track = barRow.filter((v) => v === paletteIndex.track).length;
    expect(filled).toBe(Math.round(0.25 * (filled + track)));
    // The label's ink is in the header.
    expect(pixels.subarray(0, layout.barTop * layout.width).includes(paletteIndex.text)).toBe(true);
  });

  it('shrinks cells to fit long sequences and many rows, without gaps below 6 px', () => {
    const layout = bitGridLayout(100, 200);
    expect(layout.cell).toBe(2); // floor(480 / 200)
    expect(layout.gap).toBe(0);
    expect(layout.width).toBe(400 + 16);
    expect(() => bitGridLayout(0, 5)).toThrow(/at least one row/);
  });

  it('maps palette indices to opaque RGBA', () => {
    const rgba = indexedToRgba(Uint8Array.from([paletteIndex.one, paletteIndex.zero]));
    expect([...rgba]).toEqual([...bitGridPalette[paletteIndex.one], 255, ...bitGridPalette[paletteIndex.zero], 255]);
  });

  it('encodes a looping GIF that decodes back to exactly the drawn frames and delays', () => {
    const layout = bitGridLayout(2, 3, { labels: ['step 1', 'step 2'], progressBar: true });
    const frames = [
      { bits: Uint8Array.from([1, 0, 1, 0, 1, 0]), label: 'step 1', progress: 0.5 },
      { bits: Uint8Array.from([0, 1, 0, 1, 0, 1]), label: 'step 2', progress: 1 },
    ];
    const gif = decodeGif(encodeBitGridGif(layout, frames, { frameMs: 300, lastMs: 2000 }));
    expect([gif.width, gif.height, gif.frames.length, gif.loop]).toEqual([layout.width, layout.height, 2, 0]);
    expect(gif.frames.map((f) => f.delayCs)).toEqual([30, 200]);
    gif.frames.forEach((f, k) => expect(f.rgba).toEqual(indexedToRgba(drawBitGridFrame(layout, frames[k]))));
  });

  it('animates samples over training: one frame per evaluation point', () => {
    const run = syntheticRun(600, 100, 20, 16);
    const points = run.metrics.filter((r) => r.grid).map((r) => ({ step: r.step, grid: r.grid! }));
    const gif = decodeGif(samplesOverTrainingGif(points));
    expect(gif.frames.length).toBe(run.evaluationSteps.length);
    expect(gif.width).toBeGreaterThanOrEqual(20 * 16);
    expect(gif.height).toBeGreaterThanOrEqual(16 * 16);
    for (const f of gif.frames) expect(distinctColours(f.rgba)).toBeGreaterThanOrEqual(4);
    expect(gif.frames[0].rgba).not.toEqual(gif.frames.at(-1)!.rgba);
    expect(() => samplesOverTrainingGif([points[0], { step: 700, grid: ['0101'] }])).toThrow(/step 700 is 1 × 4/);
    expect(() => samplesOverTrainingGif([])).toThrow(/no evaluation points/);
  });

  it('animates the reverse process: one frame per recorded step', () => {
    const frames = syntheticReverseFrames(60, 5, 8, 20);
    const gif = decodeGif(reverseProcessGif(frames, 20));
    expect(gif.frames.length).toBe(13);
    expect(gif.frames[0].delayCs).toBe(100); // the noise is held for a second
    expect(gif.frames.at(-1)!.delayCs).toBe(250);
    expect(() => reverseProcessGif(frames, 7)).toThrow(/do not split into sequences of length 7/);
  });

  it('draws a still grid of final samples', () => {
    const image = bitGridImage(['1010', '0101']);
    expect(image.rgba.length).toBe(image.width * image.height * 4);
    expect(distinctColours(image.rgba)).toBe(3); // background, 0-bits, 1-bits
  });
});

describe('chart helpers', () => {
  it('moving average, thinning and the log-scale rule', () => {
    expect(movingAverage([2, 4, 6, 8], 2)).toEqual([2, 3, 5, 7]);
    expect(movingAverage([1, 2, 3], 5)).toEqual([1, 1.5, 2]);
    expect(thinIndices(10, 4)).toEqual([0, 3, 6, 9]);
    expect(thinIndices(11, 4)).toEqual([0, 3, 6, 9, 10]);
    expect(thinIndices(3, 10)).toEqual([0, 1, 2]);
    expect(wantsLogScale([1, 30])).toBe(true);
    expect(wantsLogScale([1, 15])).toBe(false);
    expect(wantsLogScale([0, 100])).toBe(false);
  });

  it('parses metrics.jsonl: resumed steps overwrite, an unfinished last line is dropped, bad lines are named', () => {
    const text = ['{"step":2,"loss":5}', '', '{"step":1,"loss":9}', '{"step":2,"loss":4,"bound_bits":4.5}', '{"step":3,"lo'].join('\n');
    const records = parseMetricsJsonl(text);
    expect(records.map((r) => [r.step, r.loss])).toEqual([
      [1, 9],
      [2, 4],
    ]);
    expect(evaluationPoints(records).map((r) => r.step)).toEqual([2]);
    expect(() => parseMetricsJsonl('{"step":1,"loss":2}\n{oops\n{"step":2,"loss":1}\n', 'run/metrics.jsonl')).toThrow(UserError);
    expect(() => parseMetricsJsonl('{"step":1,"loss":2}\n{oops\n', 'run/metrics.jsonl')).toThrow('run/metrics.jsonl:2: not valid JSON');
    expect(() => parseMetricsJsonl('{"loss":2}\n')).toThrow(/:1: a metrics record needs numeric "step"/);
  });

  it('the loss chart holds the raw loss, its moving average and the bound with ± 1 s.e.', () => {
    const run = syntheticRun(600, 100);
    const spec = lossChartSpec(run.metrics) as { data: { values: { step: number; bits: number; series: string; low?: number; high?: number }[] } };
    const rows = spec.data.values;
    const bound = rows.filter((r) => r.series.startsWith('evaluated bound'));
    expect(bound.map((r) => r.step)).toEqual(run.evaluationSteps);
    for (const r of bound) {
      expect(r.low).toBeCloseTo(r.bits - 0.4, 12);
      expect(r.high).toBeCloseTo(r.bits + 0.4, 12);
    }
    expect(rows.filter((r) => r.series === 'training loss (minibatch)').length).toBe(600);
    const smooth = rows.filter((r) => r.series === 'training loss (moving average)');
    const window = 12; // 600 / 50
    const expectedLast = run.metrics.slice(-window).reduce((a, r) => a + r.loss, 0) / window;
    expect(smooth.at(-1)!.bits).toBeCloseTo(expectedLast, 10);
    expect(() => compile(lossChartSpec(run.metrics))).not.toThrow();
  });

  it('cuts the loss axis so that the run after its initial drop fills the chart', async () => {
    // a loss that starts ~20x above where it settles, with minibatch noise, and a bound every 500 steps
    const records = Array.from({ length: 1500 }, (_, i) => {
      const step = i + 1;
      const record: MetricRecord = { step, loss: 2.5 + 45 * Math.exp(-step / 25) + 0.3 * Math.sin(step * 1.7) };
      if (step % 500 === 0) Object.assign(record, { bound_bits: 2.45, bound_stderr: 0.05 });
      return record;
    });
    const spec = lossChartSpec(records);
    const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
    await view.runAsync();
    const [low, high] = view.scale('y').domain() as [number, number];
    view.finalize();
    const late = records.filter((r) => r.step > 150).map((r) => r.loss); // after the first 10% of the run
    const [lateMin, lateMax] = [Math.min(...late), Math.max(...late)];
    // the y range is about that of the late losses (~2.2 to 2.9 bits), not up to the initial ~47 bits
    expect(high).toBeGreaterThanOrEqual(lateMax);
    expect(high).toBeLessThan(1.5 * lateMax);
    expect(low).toBeLessThanOrEqual(lateMin);
    expect(low).toBeGreaterThan(0.75 * lateMin);
    // the cut is said, and the values above it are marked on the top edge
    const { title, layer } = spec as unknown as { title: { subtitle: string[] }; layer: { data?: { values: { step: number; bits: number }[] } }[] };
    expect(title.subtitle[1]).toMatch(/^y axis cut at 3\.\d\d bits, the range of the run after step 75; ▲ marks values above it \(up to 46\.0\)$/);
    const marked = layer.at(-1)!.data!.values;
    expect(marked.map((r) => r.step)).toEqual(records.filter((r) => r.loss > high).map((r) => r.step));
    expect(marked.every((r) => r.bits === high)).toBe(true);
  });

  it('leaves the loss axis whole when the drop is the run (or there are few points)', () => {
    const run = syntheticRun(600, 100); // decays over the whole run: 72 -> 12 bits
    expect(lossAxisCut(run.metrics, evaluationPoints(run.metrics))).toBeUndefined();
    const short = Array.from({ length: 15 }, (_, i) => ({ step: i + 1, loss: i === 0 ? 100 : 2 + (i % 3) }));
    expect(lossAxisCut(short, [])).toBeUndefined();
    const spec = lossChartSpec(run.metrics) as unknown as { title: { subtitle: unknown }; layer: unknown[] };
    expect(typeof spec.title.subtitle).toBe('string');
    expect(spec.layer.length).toBe(4);
    expect(quantile([1, 2, 3, 5], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 5], 1)).toBe(5);
    expect(quantile([7], 0.99)).toBe(7);
  });

  it('thins a long run to at most ~1500 plotted loss points', () => {
    const run = syntheticRun(6000, 1000);
    const rows = (lossChartSpec(run.metrics) as { data: { values: { series: string }[] } }).data.values;
    expect(rows.filter((r) => r.series === 'training loss (minibatch)').length).toBeLessThanOrEqual(1501);
  });

  it('the proportions chart has one series per share present (prop_data is read as held-out)', () => {
    const values = (spec: unknown) => (spec as { data: { values: { series: string; share: number }[] } }).data.values;
    const withVal = values(proportionsChartSpec(syntheticRun(300, 100).metrics));
    expect(new Set(withVal.map((r) => r.series))).toEqual(new Set(['in the training data', 'in the held-out data', 'in neither']));
    const noVal = values(proportionsChartSpec([{ step: 1, loss: 1, prop_train: 0.5, prop_other: 0.5 }]));
    expect(noVal.map((r) => r.series)).toEqual(['in the training data', 'in neither']);
    const dataKey = values(proportionsChartSpec([{ step: 1, loss: 1, prop_train: 0.5, prop_other: 0.25, prop_data: 0.25 } as never]));
    expect(dataKey.find((r) => r.series === 'in the held-out data')?.share).toBe(0.25);
  });

  it('renders a chart to SVG with its title and labelled axes', async () => {
    const svg = await chartToSvg(lossChartSpec(syntheticRun(300, 100).metrics));
    expect(svg.startsWith('<svg')).toBe(true);
    for (const text of ['Training loss and evaluated bound', 'bits per sequence', 'training step', 'evaluated bound ± 1 s.e.']) expect(svg).toContain(text);
  });
});

describe('report', () => {
  it('escapes HTML, encodes data URIs, flattens results', () => {
    expect(escapeHtml(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
    const bytes = Uint8Array.from({ length: 70000 }, (_, i) => (i * 31) & 255);
    const uri = dataUri(bytes, 'image/png');
    expect(uri.startsWith('data:image/png;base64,')).toBe(true);
    expect(Uint8Array.from(atob(uri.slice(22)), (c) => c.charCodeAt(0))).toEqual(bytes);
    expect(dataUri('é', 'text/plain')).toBe(`data:text/plain;base64,${btoa('\xc3\xa9')}`);
    expect(flattenForTable({ a: 1, b: { c: 'x', d: [1, 2] } })).toEqual([
      ['a', 1],
      ['b.c', 'x'],
      ['b.d', [1, 2]],
    ]);
    expect(formatValue(1 / 3)).toBe('0.333333');
    expect(formatValue(Array.from({ length: 40 }, () => 'abc'))).toBe('(40 items)');
  });

  it('is one page without scripts or outside resources, with metrics, pictures, samples and config', () => {
    const run = syntheticRun(300, 100);
    const html = reportHtml({
      title: 'run <test>',
      configText: 'model:\n  T: 40 # <T>\n',
      results: { bound_bits: 13.25, timings: { train_seconds: 12.5 }, samples: run.metrics.at(-1)!.grid },
      metrics: run.metrics,
      pictures: [{ file: 'loss.png', caption: 'Loss', src: dataUri(Uint8Array.from([1, 2, 3]), 'image/png') }],
      finalSamples: { lines: ['0101', '1010'] },
      missing: ['reverse_process.gif: no frames'],
    });
    expect(html).toContain('<title>run &lt;test&gt;</title>');
    expect(html).toContain("default-src 'none'");
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
    expect(html).toContain('T: 40 # &lt;T&gt;');
    expect(html).toContain('<th>timings.train_seconds</th><td>12.5</td>');
    expect(html).toContain('<th>bound (bits/sequence)</th><td>');
    expect(html).toContain('reverse_process.gif: no frames');
    expect(html).toContain('0101\n1010');
    expect(html).not.toContain('<th>samples</th>'); // the long samples array is shown as the grid, not in the table
  });
});
