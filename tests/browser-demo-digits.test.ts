// The demo page's image mode in headless Chromium (Debian's chromium, driven by playwright-core):
// the MNIST digits served with the page, a small U-Net trained in the page for a few steps with its
// samples drawn as digit pictures, and a drawn, partly unknown digit completed by a checkpoint that
// the CLI trained (a tiny U-Net on a few MNIST rows) — the given pixels kept, the unknown ones filled,
// bit for bit what `generate --given` prints for the same seed. Screenshot: test-output/demo-digits.png.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { BrowserContext, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium, missingChromium, serveFolder } from './browser-helpers.js';

const run = promisify(execFile);
const repository = resolve(import.meta.dirname, '..');
const cli = join(repository, 'bin', 'bernoulli-diffusion.js');
const env = { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '1' }; // the current source, not an older dist/
const title = haveChromium ? 'the demo page with digits in headless Chromium' : `the demo page with digits in headless Chromium — ${missingChromium}`;
if (!haveChromium) console.warn(`browser-demo-digits: ${missingChromium}`);

const SIDE = 28;
const PIXELS = SIDE * SIDE;

async function pictures(page: Page, selector: string): Promise<string[]> {
  return page.$$eval(`${selector} canvas.digit`, (list) => list.map((canvas) => (canvas as HTMLElement).dataset.bits ?? ''));
}

/** Drags the pointer over the drawing through the centres of the given pixels (x, y). */
async function stroke(page: Page, pixels: [number, number][]): Promise<void> {
  const box = (await page.locator('#draw-canvas').boundingBox())!;
  const at = ([x, y]: [number, number]) => [box.x + ((x + 0.5) * box.width) / SIDE, box.y + ((y + 0.5) * box.height) / SIDE] as const;
  await page.mouse.move(...at(pixels[0]));
  await page.mouse.down();
  for (const pixel of pixels.slice(1)) await page.mouse.move(...at(pixel), { steps: 4 });
  await page.mouse.up();
}

describe.skipIf(!haveChromium)(title, () => {
  let closeServer: () => Promise<void>;
  let closeBrowser: () => Promise<void>;
  let origin: string;
  let browser: BrowserContext;
  let page: Page;
  let workDir: string;
  let checkpoint: string;
  let firstDigit: string;
  const problems: string[] = [];
  const foreignRequests: string[] = [];

  beforeAll(async () => {
    mkdirSync('test-output', { recursive: true });
    workDir = mkdtempSync(join(tmpdir(), 'bd-demo-digits-'));
    // A tiny U-Net checkpoint from the CLI: 64 MNIST rows, 8 steps (quality is not the point here).
    const made = run(process.execPath, [cli, 'data', 'mnist', '--out', 'mnist'], { cwd: workDir, env }).then(async () => {
      const lines = readFileSync(join(workDir, 'mnist', 'train.txt'), 'utf8').split('\n');
      const header = lines.filter((line) => line.startsWith('#'));
      const rows = lines.filter((line) => /^[01]+$/.test(line)).slice(0, 64);
      writeFileSync(join(workDir, 'few.txt'), `${[...header, ...rows].join('\n')}\n`);
      writeFileSync(join(workDir, 'tiny.yaml'), 'model:\n  architecture: unet\n  T: 20\n  channels: 4\n');
      await run(
        process.execPath,
        [
          cli,
          'train',
          '--config',
          'tiny.yaml',
          '--data',
          'few.txt',
          '--steps',
          '8',
          '--batch-size',
          '16',
          '--eval-every',
          '0',
          '--name',
          'tiny',
          '--no-plots',
          '--quiet',
        ],
        { cwd: workDir, env },
      );
      checkpoint = join(workDir, 'results', 'tiny', 'model.safetensors');
    });
    // The demo's static files as `npm run build:demo` writes them (with the digits beside them), into
    // a folder of this test's own: tests/browser-demo.test.ts builds demo/dist, maybe at the same time.
    const dist = join(workDir, 'demo-dist');
    await build({ configFile: join(repository, 'demo', 'vite.config.ts'), logLevel: 'warn', build: { outDir: dist, emptyOutDir: true } });
    await made;
    ({ origin, close: closeServer } = await serveFolder(dist));
    ({ browser, close: closeBrowser } = await launchChromium());
    page = await browser.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    browser.on('request', (request) => {
      const url = request.url();
      if (!url.startsWith(origin) && !url.startsWith('blob:') && !url.startsWith('data:')) foreignRequests.push(url);
    });
    await page.goto(`${origin}/`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.body.dataset.state === 'ready' && document.querySelector('#data-summary p') !== null, null, { timeout: 30_000 });
  }, 120_000);

  afterAll(async () => {
    await closeBrowser?.();
    await closeServer?.();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('serves the digits with the page: the first rows of `data mnist`, shown as pictures', async () => {
    await page.click('[data-tab="mnist"]');
    await page.fill('#mnist-count', '200');
    await page.click('#use-data');
    await page.waitForFunction(() => document.getElementById('data-summary')!.textContent!.includes('MNIST'));
    expect(await page.textContent('#data-summary p')).toMatch(/^200 training images of 28×28 pixels \(.*\); 100 validation images \(/);
    const preview = await pictures(page, '#data-summary');
    expect(preview).toHaveLength(12);
    // The page's digits are `data mnist`'s (default split: threshold 0.5, seed 0), row for row.
    const cliRows = readFileSync(join(workDir, 'mnist', 'train.txt'), 'utf8')
      .split('\n')
      .filter((line) => /^[01]+$/.test(line));
    expect(preview).toEqual(cliRows.slice(0, 12));
    firstDigit = cliRows[0];
    // Choosing images set the training fields to the small in-page U-Net.
    expect(await page.inputValue('#train-arch')).toBe('unet');
    expect(await page.inputValue('#train-T')).toBe('100');
    expect(await page.inputValue('#train-steps')).toBe('300');
    expect(await page.inputValue('#train-channels')).toBe('8');
    expect(await page.isVisible('#draw')).toBe(true);
  });

  it('trains a small U-Net in the page for a few steps; its samples are 28×28 pictures', async () => {
    await page.fill('#train-T', '20'); // the documented defaults, but short: this checks the path, not the quality
    await page.fill('#train-steps', '6');
    await page.fill('#train-eval', '3');
    await page.click('#train');
    await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.getElementById('train-status')!.dataset.state ?? ''), null, {
      timeout: 60_000,
    });
    expect(await page.textContent('#train-status')).toMatch(/^trained at step 6; bound [\d.]+ ± [\d.]+ bits\/image at step 6$/);
    // The parameter count that index.html and demo/README.md give for the default (T does not change it).
    expect(await page.textContent('#model-info')).toBe('unet, T = 20, L = 784 bits (28×28 images), step 6, 21,977 parameters — trained here');
    expect(await page.textContent('#samples-caption')).toContain('step 6');
    const grid = await pictures(page, '#samples');
    expect(grid).toHaveLength(16);
    for (const bits of grid) expect(bits).toMatch(/^[01]{784}$/);
    expect(await page.$$eval('#samples .row', (rows) => rows.length)).toBe(0); // pictures, not text rows
    const size = await page.$eval('#samples canvas.digit', (canvas) => [(canvas as HTMLCanvasElement).width, (canvas as HTMLCanvasElement).height]);
    expect(size).toEqual([SIDE, SIDE]);

    // Evaluate on images: the first 16 validation digits.
    await page.fill('#eval-samples', '4');
    await page.click('#evaluate');
    await page.waitForFunction(() => document.getElementById('evaluation')!.dataset.boundBits !== undefined, null, { timeout: 60_000 });
    expect(Number(await page.getAttribute('#evaluation', 'data-bound-bits'))).toBeGreaterThan(0);
    expect(await page.textContent('#evaluation')).toContain('the first 16 of MNIST digits of mnist/val.txt (16 images, 2 repeats');

    await page.fill('#gen-n', '8');
    await page.click('#generate');
    await page.waitForFunction(() => document.getElementById('samples-caption')!.textContent!.startsWith('8 fresh samples'));
    expect(await pictures(page, '#samples')).toHaveLength(8);
  });

  it('completes a drawn, partly unknown digit with a CLI checkpoint: given pixels kept, unknown ones sampled as `generate --given` does', async () => {
    await page.setInputFiles('#load-checkpoint', checkpoint);
    await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('model.safetensors'));
    expect(await page.textContent('#model-info')).toMatch(/^unet, T = 20, L = 784 bits \(28×28 images\), step 8, /);

    // A digit of the data into the drawing: the first preview digit (the first row of `data mnist`'s train.txt).
    await page.click('#draw-from-data');
    expect(await page.getAttribute('#draw-canvas', 'data-pattern')).toBe(firstDigit);

    // Erase everything, draw a vertical stroke, mark a small patch unknown, then the lower half.
    await page.check('input[name="draw-tool"][value="0"]');
    await page.click('#draw-fill');
    await page.check('input[name="draw-tool"][value="1"]');
    await page.selectOption('#draw-brush', '2');
    await stroke(page, [
      [14, 3],
      [14, 12],
    ]);
    await page.check('input[name="draw-tool"][value="2"]');
    await page.selectOption('#draw-brush', '1');
    await stroke(page, [
      [3, 5],
      [8, 5],
    ]);
    await page.click('#draw-lower-unknown');
    const pattern = (await page.getAttribute('#draw-canvas', 'data-pattern'))!;
    expect(pattern).toHaveLength(PIXELS);
    const at = (x: number, y: number) => pattern[y * SIDE + x];
    expect(at(14, 3)).toBe('1');
    expect(at(14, 12)).toBe('1');
    expect(at(20, 8)).toBe('0');
    expect(at(5, 5)).toBe('?');
    expect(pattern.slice(14 * SIDE)).toBe('?'.repeat(14 * SIDE));
    const ones = [...pattern].filter((c) => c === '1').length;
    expect(ones).toBeGreaterThanOrEqual(10); // a stroke 2 pixels wide and 10 long
    expect(ones).toBeLessThanOrEqual(30);

    await page.fill('#draw-n', '4');
    await page.fill('#gen-seed', '5');
    await page.fill('#draw-particles', '2');
    await page.click('#complete');
    await page.waitForFunction(() => document.getElementById('samples-caption')!.textContent!.startsWith('4 completions'), null, { timeout: 60_000 });
    // Split over the browser's cores (up to 4): the page's worker and a Web Worker per further core.
    const cores = Math.min(4, await page.evaluate(() => navigator.hardwareConcurrency));
    expect(await page.textContent('#status')).toMatch(new RegExp(`^completed in [\\d.]+ s on ${cores} cores?$`));
    const completions = await pictures(page, '#samples');
    expect(completions).toHaveLength(4);
    for (const bits of completions) {
      expect(bits).toMatch(/^[01]{784}$/);
      for (let i = 0; i < PIXELS; i++) if (pattern[i] !== '?') expect(bits[i], `pixel ${i}`).toBe(pattern[i]);
    }
    // Filled, not left blank: the unknown pixels were sampled (some are 1).
    expect(completions.some((bits) => [...bits].some((bit, i) => bit === '1' && pattern[i] === '?'))).toBe(true);
    // The sampled pixels are drawn in blue, the given ones in black and white.
    const colours = await page.$eval('#samples canvas.digit', (canvas) => {
      const data = (canvas as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, 28, 28).data;
      const red = (x: number, y: number) => data[4 * (y * 28 + x)];
      return { givenOne: red(14, 3), givenZero: red(20, 8), sampled: red(0, 27) };
    });
    expect(colours).toEqual({ givenOne: 29, givenZero: 255, sampled: expect.toSatisfy((red: number) => red === 0 || red === 214) });

    // The same pattern, seed and particles through the CLI: the same completions, bit for bit.
    const terminal = await run(process.execPath, [cli, 'generate', checkpoint, '--given', pattern, '-n', '4', '--seed', '5', '--particles', '2', '--json'], {
      cwd: workDir,
      env,
    });
    expect(completions).toEqual(JSON.parse(terminal.stdout));
    await page.screenshot({ path: join('test-output', 'demo-digits.png'), fullPage: true });
  });

  it('logged no console error and fetched nothing from elsewhere', () => {
    expect(problems).toEqual([]);
    expect(foreignRequests).toEqual([]);
  });
});
