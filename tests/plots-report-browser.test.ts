// report.html opened in headless Chromium (Debian's chromium, driven by playwright-core): no console
// errors, no requests leave the page, every picture loads; a screenshot is kept in test-output/.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRunDirectory } from '../src/node/plots.js';
import { syntheticReverseFrames, syntheticRun } from './plots-fixtures.js';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(chromiumPath);
const title = haveChromium
  ? 'report.html in headless Chromium'
  : `report.html in headless Chromium — SKIPPED: ${chromiumPath} not found (scripts/setup.sh installs Debian's chromium)`;
if (!haveChromium) console.warn(`plots-report-browser: skipped, ${chromiumPath} not found (scripts/setup.sh installs Debian's chromium)`);

describe.skipIf(!haveChromium)(title, () => {
  const runDir = join('test-output', 'report-run');
  const screenshot = join('test-output', 'report.png');
  let browser: BrowserContext;
  let userDataDir: string;

  beforeAll(async () => {
    rmSync(runDir, { recursive: true, force: true });
    mkdirSync(runDir, { recursive: true });
    const run = syntheticRun(1500, 150, 20, 16);
    writeFileSync(join(runDir, 'metrics.jsonl'), run.metrics.map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(join(runDir, 'config.yaml'), 'model:\n  T: 60\n  architecture: mlp\ntraining:\n  steps: 1500\n  eval_every: 150\n');
    writeFileSync(join(runDir, 'results.json'), JSON.stringify({ bound_bits: 12.9, bound_stderr: 0.4, steps: 1500, samples: run.metrics.at(-1)!.grid }));
    await renderRunDirectory(runDir, { reverseProcess: { frames: syntheticReverseFrames(60, 4, 12, 20), sequenceLength: 20 } });

    userDataDir = mkdtempSync(join(tmpdir(), 'bd-chromium-'));
    // A persistent context is how playwright takes a fresh --user-data-dir of our own.
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('opens offline without console errors, shows every picture, and keeps a screenshot', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('request', (request) => {
      if (!request.url().startsWith('data:')) requests.push(request.url());
    });
    const url = pathToFileURL(resolve(runDir, 'report.html')).href;
    await page.goto(url, { waitUntil: 'load' });

    const images = await page.$$eval('img', (elements) =>
      elements.map((img) => ({ alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight })),
    );
    expect(images.length).toBe(5); // loss, proportions, two animations, final samples
    for (const image of images) {
      expect(image.complete, image.alt).toBe(true);
      expect(image.width, image.alt).toBeGreaterThan(100);
      expect(image.height, image.alt).toBeGreaterThan(100);
    }
    const headings = await page.$$eval('h2', (elements) => elements.map((h) => h.textContent));
    expect(headings).toEqual(['Final metrics', 'Pictures', 'Final samples (16)', 'Resolved config']);
    expect(await page.textContent('#config')).toContain('eval_every: 150');

    await page.screenshot({ path: screenshot, fullPage: true });
    expect(existsSync(screenshot)).toBe(true);
    expect(requests).toEqual([url]); // the page itself, nothing else
    expect(problems).toEqual([]);
    await page.close();
  });
});
