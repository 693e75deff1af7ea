// The demo page end to end in headless Chromium (Debian's chromium, driven by playwright-core):
// build it with vite, serve demo/dist on 127.0.0.1, train on the heartbeat in the Web Worker while
// the page keeps drawing, check the samples, inpaint, evaluate, download the checkpoint, load one
// written by the CLI, and run the shared yargs commands in the command box. A screenshot is kept
// in test-output/demo.png.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { BrowserContext, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHeartbeat, rowStrings } from '../src/data.js';
import { DiffusionModel } from '../src/index.node.js';
import { haveChromium, launchChromium, missingChromium, serveFolder } from './browser-helpers.js';

const run = promisify(execFile);
const repository = resolve(import.meta.dirname, '..');
const title = haveChromium ? 'the demo page in headless Chromium' : `the demo page in headless Chromium — ${missingChromium}`;
if (!haveChromium) console.warn(`browser-demo: ${missingChromium}`);

const PERIOD = 5;
const LENGTH = 20;

function validShare(rows: string[]): number {
  return rows.filter((row) => isHeartbeat(row, PERIOD)).length / rows.length;
}

async function sampleRows(page: Page): Promise<string[]> {
  return page.$$eval('#samples .row', (rows) => rows.map((row) => (row as HTMLElement).dataset.bits ?? ''));
}

/** The page's command box: type a line, press Enter, wait for the exit code; returns the new output lines. */
async function command(page: Page, line: string): Promise<{ code: number; lines: { kind: string; text: string }[] }> {
  const before = await page.$$eval('#terminal .line', (lines) => lines.length);
  const runs = await page.$eval('#terminal', (terminal) => Number((terminal as HTMLElement).dataset.runs ?? '0'));
  await page.fill('#command', line);
  await page.press('#command', 'Enter');
  await page.waitForFunction((n) => Number(document.getElementById('terminal')!.dataset.runs ?? '0') === n, runs + 1, { timeout: 60_000 });
  const all = await page.$$eval('#terminal .line', (lines) => lines.map((l) => ({ kind: l.className.replace('line ', ''), text: l.textContent ?? '' })));
  const code = await page.$eval('#terminal', (terminal) => Number((terminal as HTMLElement).dataset.exitCode));
  return { code, lines: all.slice(before + 1) }; // without the echoed command
}

describe.skipIf(!haveChromium)(title, () => {
  const screenshot = join('test-output', 'demo.png');
  let closeServer: () => Promise<void>;
  let closeBrowser: () => Promise<void>;
  let origin: string;
  let browser: BrowserContext;
  let page: Page;
  let workDir: string;
  const problems: string[] = [];
  const foreignRequests: string[] = [];

  beforeAll(async () => {
    mkdirSync('test-output', { recursive: true });
    workDir = mkdtempSync(join(tmpdir(), 'bd-demo-'));
    // The demo's static files, exactly as `npm run build:demo` writes them.
    await build({ configFile: join(repository, 'demo', 'vite.config.ts'), logLevel: 'warn' });
    ({ origin, close: closeServer } = await serveFolder(join(repository, 'demo', 'dist')));
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
    // Ready: the wasm core is loaded in the worker and the default heartbeat data is in place.
    await page.waitForFunction(() => document.body.dataset.state === 'ready' && document.querySelector('#data-summary p') !== null, null, { timeout: 30_000 });
  });

  afterAll(async () => {
    await closeBrowser?.();
    await closeServer?.();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('has no Node-only module in the built files', () => {
    const assets = join(repository, 'demo', 'dist', 'assets');
    const scripts = readdirSync(assets).filter((name) => name.endsWith('.js'));
    expect(scripts.length).toBeGreaterThanOrEqual(2); // the page and its worker
    expect(readdirSync(assets).some((name) => name.endsWith('.wasm'))).toBe(true);
    for (const name of scripts) {
      const code = readFileSync(join(assets, name), 'utf8');
      expect(code, name).not.toContain('__vite-browser-external');
      expect(code, name).not.toContain('unpkg.com'); // yargs/browser's CDN imports were mapped to installed copies
    }
  });

  it('trains on the heartbeat in a worker while the page keeps drawing, and its samples are heartbeats', async () => {
    expect(await page.textContent('#data-summary')).toContain(`1000 training sequences of ${LENGTH} bits`);
    await page.fill('#hb-holdout', '0');
    await page.fill('#train-T', '50');
    await page.fill('#train-steps', '400');
    await page.fill('#train-lr', '0.005');
    await page.fill('#train-eval', '50');
    // Every animation frame during training, note the progress bar: frames only run, and the bar
    // only moves, if the page's thread is free while the model trains.
    await page.evaluate(() => {
      const seen = new Set<string>();
      (window as unknown as { progressSeen: Set<string> }).progressSeen = seen;
      const watch = () => {
        if (document.body.dataset.state === 'training') seen.add(document.getElementById('train-progress')!.style.width);
        if (document.getElementById('train-status')!.dataset.state !== 'done') requestAnimationFrame(watch);
      };
      requestAnimationFrame(watch);
    });
    await page.click('#train');
    await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.getElementById('train-status')!.dataset.state ?? ''), null, {
      timeout: 90_000,
    });
    expect(await page.getAttribute('#train-status', 'data-state')).toBe('done');
    expect(await page.textContent('#train-status')).toMatch(/trained at step 400; bound [\d.]+ ± [\d.]+ bits\/sequence at step 400/);
    const framesWithProgress = await page.evaluate(() => (window as unknown as { progressSeen: Set<string> }).progressSeen.size);
    expect(framesWithProgress).toBeGreaterThanOrEqual(3);

    // The live chart: the package's vega-lite loss chart, drawn as SVG.
    expect(await page.$$eval('#loss-chart svg', (svgs) => svgs.length)).toBe(1);
    expect(await page.textContent('#loss-chart')).toContain('Training loss and evaluated bound');
    expect(await page.$$eval('#proportions-chart svg', (svgs) => svgs.length)).toBe(1);

    // The grid drawn at the last evaluation: fixed noise through the trained model.
    const grid = await sampleRows(page);
    expect(grid).toHaveLength(16);
    expect(await page.textContent('#samples-caption')).toContain('step 400');
    expect(validShare(grid)).toBeGreaterThanOrEqual(0.75);

    await page.fill('#gen-n', '32');
    await page.fill('#gen-seed', '7');
    await page.click('#generate');
    await page.waitForFunction(() => document.getElementById('samples-caption')!.textContent!.startsWith('32 fresh samples'));
    const fresh = await sampleRows(page);
    expect(fresh).toHaveLength(32);
    for (const row of fresh) expect(row).toMatch(/^[01]{20}$/);
    expect(validShare(fresh)).toBeGreaterThanOrEqual(0.75);
    // The page's own verdicts agree with the test's.
    const pageValid = await page.$$eval('#samples .row', (rows) => rows.map((row) => (row as HTMLElement).dataset.valid === 'true'));
    expect(pageValid).toEqual(fresh.map((row) => isHeartbeat(row, PERIOD)));
  });

  it('inpaints: the clicked bits stay fixed and the rest is sampled', async () => {
    // Cells cycle ? -> 1 -> 0 -> ?: bit 2 to 1, bits 3 and 10 to 0.
    await page.click('#pattern [data-index="2"]');
    await page.click('#pattern [data-index="3"]');
    await page.click('#pattern [data-index="3"]');
    await page.click('#pattern [data-index="10"]');
    await page.click('#pattern [data-index="10"]');
    const pattern = await page.getAttribute('#pattern', 'data-pattern');
    expect(pattern).toBe('??10??????0?????????');
    await page.fill('#gen-n', '16');
    await page.click('#inpaint');
    await page.waitForFunction(() => document.getElementById('samples-caption')!.textContent!.startsWith('Completions of'));
    const rows = await sampleRows(page);
    expect(rows).toHaveLength(16);
    for (const row of rows) {
      expect(row[2]).toBe('1');
      expect(row[3]).toBe('0');
      expect(row[10]).toBe('0');
    }
    // The fixed bits are marked in every row, and the unknown ones were sampled, not left at 0.
    expect(await page.$$eval('#samples .row', (list) => list.map((row) => row.querySelectorAll('i.fixed').length))).toEqual(Array(16).fill(3));
    expect(rows.some((row) => [...row].some((bit, i) => bit === '1' && pattern![i] === '?'))).toBe(true);
  });

  it('evaluates the bound: at least log2(5) bits up to noise, for five equally likely phases', async () => {
    await page.click('#evaluate');
    await page.waitForFunction(() => document.getElementById('evaluation')!.dataset.boundBits !== undefined);
    const bound = Number(await page.getAttribute('#evaluation', 'data-bound-bits'));
    const text = (await page.textContent('#evaluation')) ?? '';
    const stderr = Number(/± ([\d.]+) bits/.exec(text)![1]);
    expect(bound).toBeGreaterThan(Math.log2(5) - 4 * stderr);
    expect(bound).toBeLessThan(8);
    expect(text).toContain('5 sequences');
  });

  it('downloads the checkpoint as safetensors that the Node package loads', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-checkpoint')]);
    expect(download.suggestedFilename()).toBe('bernoulli-diffusion-mlp-T50-step400.safetensors');
    const path = join(workDir, download.suggestedFilename());
    await download.saveAs(path);
    const model = await DiffusionModel.fromBytes(new Uint8Array(readFileSync(path)), path);
    expect(model.step).toBe(400);
    expect(model.modelConfig.T).toBe(50);
    expect(validShare(rowStrings({ length: LENGTH, rows: 16, bits: model.sample(16, { seed: 7 }).samples }))).toBeGreaterThanOrEqual(0.75);
    model.free();
  });

  it('loads a checkpoint written by the CLI, and `generate` in the command box prints what the terminal prints', async () => {
    const cli = join(repository, 'bin', 'bernoulli-diffusion.js');
    const env = { ...process.env, BERNOULLI_DIFFUSION_FROM_SOURCE: '1' }; // the current source, not an older dist/
    await run(
      process.execPath,
      [cli, 'train', '--T', '40', '--steps', '400', '--lr', '0.005', '--eval-every', '0', '--out', workDir, '--name', 'cli', '--no-plots', '--quiet'],
      { cwd: workDir, env },
    );
    const checkpoint = join(workDir, 'cli', 'model.safetensors');
    const terminal = await run(process.execPath, [cli, 'generate', checkpoint, '-n', '8', '--seed', '3'], { cwd: workDir, env });
    const expected = terminal.stdout.trim().split('\n');
    expect(expected).toHaveLength(8);

    await page.setInputFiles('#load-checkpoint', checkpoint);
    await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('model.safetensors'));
    expect(await page.textContent('#model-info')).toMatch(/^mlp, T = 40, L = 20 bits, step 400, /);

    const generated = await command(page, 'generate model.safetensors -n 8 --seed 3');
    expect(generated.code).toBe(0);
    expect(generated.lines.map((line) => line.text)).toEqual(expected); // bit for bit: one wasm build, one seed
    expect(generated.lines.every((line) => line.kind === 'stdout')).toBe(true);
    expect(validShare(expected)).toBeGreaterThanOrEqual(0.75);
  });

  it('runs data, train, evaluate and --help in the command box on in-page files; mistakes print one error line', async () => {
    const made = await command(page, 'data heartbeat --length 12 --period 4 --out hb');
    expect(made.code).toBe(0);
    expect(made.lines.map((line) => line.text)).toEqual([
      'wrote hb/train.txt (1000 sequences; heartbeat L=12 P=4, phases 0-3)',
      'wrote hb/val.txt (4 sequences; heartbeat L=12 P=4, phases 0-3)',
    ]);

    const trained = await command(page, 'train --data hb/train.txt --T 30 --steps 300 --lr 0.005 --eval-every 100 --out runs --name small --no-plots');
    expect(trained.code).toBe(0);
    const texts = trained.lines.map((line) => line.text);
    expect(texts[0]).toMatch(/^training mlp \(T = 30\) on 1000 sequences of 12 bits \(hb\/train\.txt\) for 300 steps/);
    expect(trained.lines.some((line) => line.kind === 'progress' && /step 300\/300/.test(line.text))).toBe(true);
    expect(texts.at(-1)).toBe('run: runs/small');
    const files = await page.$$eval('#files tr td:first-child', (cells) => cells.map((cell) => cell.textContent));
    expect(files).toEqual(
      expect.arrayContaining(['runs/small/model.safetensors', 'runs/small/metrics.jsonl', 'runs/small/config.yaml', 'runs/small/results.json']),
    );

    const evaluated = await command(page, 'evaluate runs/small/model.safetensors --exact --json');
    expect(evaluated.code).toBe(0);
    const result = JSON.parse(evaluated.lines[0].text);
    expect(result.exact_nll_bits).toBeGreaterThanOrEqual(2 - 1e-9); // four equally likely phases: at least log2(4)
    expect(result.bound_bits).toBeGreaterThanOrEqual(result.exact_nll_bits - 4 * result.bound_stderr);

    // The page's own checkpoint carries its run's config, so `evaluate` finds the data by itself.
    const own = await command(page, 'evaluate demo.safetensors --samples 50');
    expect(own.code).toBe(0);
    expect(own.lines.map((line) => line.text).join('\n')).toMatch(/^checkpoint\s+demo\.safetensors \(step 400\)[\s\S]*bound\s+[\d.]+ ± [\d.]+ bits\/sequence/);

    // … and its loop state, so `train --resume` takes it up (here: nothing left of its 400 steps).
    const resumed = await command(page, 'train --resume demo.safetensors --name resumed --no-plots');
    expect(resumed.code).toBe(0);
    expect(resumed.lines[0].text).toMatch(/^training mlp \(T = 50\) on 1000 sequences of 20 bits .* for 400 steps, resuming at step 400$/);
    expect(resumed.lines.at(-1)!.text).toBe('run: results/resumed');

    const help = await command(page, 'generate --help');
    expect(help.code).toBe(0);
    expect(help.lines.map((line) => line.text).join('\n')).toMatch(/--given[\s\S]*--seed[\s\S]*--json/);

    const bad = await command(page, "generate model.safetensors --given '1?x'");
    expect(bad.code).toBe(2);
    expect(bad.lines.map((line) => line.text)).toEqual([
      'error: --given: character 3 is "x"; use 0 and 1 for known bits and ? for unknown ones',
      '(exit code 2)',
    ]);
    const missing = await command(page, 'generate nowhere.safetensors');
    expect(missing.code).toBe(2);
    expect(missing.lines[0].text).toBe('error: cannot read nowhere.safetensors: no such file or folder');
  });

  it('looks right: a screenshot of the page after all of the above', async () => {
    await page.fill('#gen-n', '16');
    await page.click('#generate');
    await page.waitForFunction(() => document.getElementById('samples-caption')!.textContent!.startsWith('16 fresh samples'));
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(existsSync(screenshot)).toBe(true);
  });

  it('takes uploaded or pasted sequences, and names the line of a bad one', async () => {
    await page.click('[data-tab="text"]');
    const upload = join(workDir, 'mine.txt');
    writeFileSync(upload, '# period 4\n10001000\n01000100\n\n00100010\r\n00010001\n');
    await page.setInputFiles('#data-file', upload);
    await page.waitForFunction(() => (document.getElementById('data-text') as HTMLTextAreaElement).value.includes('00010001'));
    await page.click('#use-data');
    await page.waitForFunction(() => document.getElementById('data-summary')!.textContent!.includes('mine.txt'));
    expect(await page.textContent('#data-summary p')).toBe('4 training sequences of 8 bits (mine.txt); validated on the same data.');
    expect(await page.$$eval('#data-summary .row', (rows) => rows.map((row) => (row as HTMLElement).dataset.bits))).toEqual([
      '10001000',
      '01000100',
      '00100010',
      '00010001',
    ]);

    await page.fill('#data-text', '0101\n0110\n01x1\n');
    await page.click('#use-data');
    await page.waitForFunction(() => document.getElementById('status')!.dataset.kind === 'error');
    expect(await page.textContent('#status')).toBe("pasted sequences:3: unexpected character 'x' at column 3 (a sequence is a line of 0s and 1s)");
    // The last good data stays in use.
    expect(await page.textContent('#data-summary p')).toContain('4 training sequences of 8 bits');
  });

  it('stops: Stop ends the training early with a usable model, Ctrl-C makes `train` checkpoint and exit with 130', async () => {
    await page.fill('#train-steps', '20000');
    await page.click('#train');
    await page.waitForFunction(() => Number.parseFloat(document.getElementById('train-progress')!.style.width) > 0);
    await page.click('#stop-training');
    await page.waitForFunction(() => document.getElementById('train-status')!.dataset.state !== 'training', null, { timeout: 30_000 });
    expect(await page.getAttribute('#train-status', 'data-state')).toBe('stopped');
    const step = Number(await page.getAttribute('#model-info', 'data-step'));
    expect(step).toBeGreaterThan(0);
    expect(step).toBeLessThan(20000);
    expect(await page.textContent('#train-status')).toContain(`stopped at step ${step}`);

    const runs = await page.$eval('#terminal', (terminal) => Number((terminal as HTMLElement).dataset.runs ?? '0'));
    await page.fill('#command', 'train --data hb/train.txt --T 30 --steps 20000 --out runs --name long --no-plots');
    await page.press('#command', 'Enter');
    await page.waitForFunction(() => document.querySelector('#terminal .line.progress:last-child') !== null);
    await page.click('#stop-command');
    await page.waitForFunction((n) => Number(document.getElementById('terminal')!.dataset.runs) === n, runs + 1, { timeout: 30_000 });
    expect(await page.getAttribute('#terminal', 'data-exit-code')).toBe('130');
    const lines = await page.$$eval('#terminal .line', (all) => all.slice(-3).map((line) => line.textContent ?? ''));
    const interrupted = /^interrupted at step (\d+); continue with: bernoulli-diffusion train --resume (runs\/long\/checkpoints\/step-\d+\.safetensors)$/.exec(
      lines[0],
    );
    expect(interrupted, lines.join('\n')).not.toBeNull();
    expect(lines.slice(1)).toEqual(['run: runs/long', '(exit code 130)']);
    const files = await page.$$eval('#files tr td:first-child', (cells) => cells.map((cell) => cell.textContent));
    expect(files).toContain(interrupted![2]);
  });

  it('logged no console error and fetched nothing from elsewhere', () => {
    expect(problems).toEqual([]);
    expect(foreignRequests).toEqual([]);
  });
});
