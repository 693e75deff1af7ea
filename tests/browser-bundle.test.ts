// The package in a bundler, for the browser:
// - bundling the browser entry (src/index.ts) reaches no Node built-in module (node:*, fs, path,
//   worker_threads, …), and the check itself catches one when it is there;
// - a minimal vite app (tests/fixtures/vite-app) that imports 'bernoulli-diffusion' by name builds
//   through the package's "exports" (dist/, the "browser" condition) with the wasm as an asset, and
//   in headless Chromium computes exactly what the Node entry computes.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { build, type Plugin } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as nodeEntry from '../src/index.node.js';
import { ensureDist } from './dist-build.js';
import { haveChromium, launchChromium, missingChromium, serveFolder } from './browser-helpers.js';
import { run as fixtureRun } from './fixtures/vite-app/run.js';

const repository = resolve(import.meta.dirname, '..');

/** Bundles `entry` for the browser (no output written); returns every Node built-in it imports, with the importer. */
async function nodeBuiltinsReached(entry: string): Promise<string[]> {
  const reached: string[] = [];
  const detector: Plugin = {
    name: 'detect-node-builtins',
    enforce: 'pre',
    resolveId(source, importer) {
      if (!isBuiltin(source)) return null;
      reached.push(`${source} (imported by ${importer ? relative(repository, importer) : '?'})`);
      return { id: source, external: true };
    },
  };
  await build({
    configFile: false,
    root: repository,
    logLevel: 'silent',
    plugins: [detector],
    build: { write: false, lib: { entry, formats: ['es'], fileName: 'bundle' }, rolldownOptions: { checks: { bundlerTimings: false } } },
  });
  return reached;
}

describe('the browser entry in a bundler', () => {
  it('reaches no Node built-in module from src/index.ts', async () => {
    expect(await nodeBuiltinsReached(join(repository, 'src', 'index.ts'))).toEqual([]);
  });

  it('would notice one: the entry plus a module importing node:fs and worker_threads is reported', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'bd-bundle-'));
    try {
      const entry = join(folder, 'entry.js');
      writeFileSync(
        entry,
        `import * as pkg from ${JSON.stringify(join(repository, 'src', 'index.ts'))};\n` +
          "import { readFileSync } from 'node:fs';\nimport { Worker } from 'worker_threads';\nexport { pkg, readFileSync, Worker };\n",
      );
      const reached = await nodeBuiltinsReached(entry);
      expect(reached.map((line) => line.split(' ')[0]).sort()).toEqual(['node:fs', 'worker_threads']);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('a minimal vite app that imports the package by name', () => {
  let app: string;
  let output: string;

  beforeAll(async () => {
    await ensureDist();
    app = mkdtempSync(join(tmpdir(), 'bd-vite-app-'));
    cpSync(join(repository, 'tests', 'fixtures', 'vite-app'), app, { recursive: true });
    // Installed as a user's app would have it: node_modules/bernoulli-diffusion (here a link to this checkout).
    mkdirSync(join(app, 'node_modules'));
    symlinkSync(repository, join(app, 'node_modules', 'bernoulli-diffusion'), 'dir');
    output = join(app, 'dist');
    await build({
      configFile: false,
      root: app,
      logLevel: 'warn',
      build: { outDir: output, target: 'es2022', chunkSizeWarningLimit: 4000, rolldownOptions: { checks: { bundlerTimings: false } } },
    });
  });

  afterAll(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('builds through the "browser" export, with the wasm as an asset and no Node module', () => {
    const assets = readdirSync(join(output, 'assets'));
    // both builds of the core (src/wasm.ts), each byte for byte; the page fetches the one it runs
    const wasm = assets.filter((name) => name.endsWith('.wasm')).sort();
    expect(wasm).toHaveLength(2);
    const built = wasm.map((name) => readFileSync(join(output, 'assets', name)));
    const packaged = ['bernoulli_diffusion_core_bg.wasm', 'bernoulli_diffusion_core_relaxed_bg.wasm'].map((name) =>
      readFileSync(join(repository, 'pkg', name)),
    );
    expect(packaged.map((bytes) => built.findIndex((b) => b.equals(bytes))).sort()).toEqual([0, 1]);
    const code = assets
      .filter((name) => name.endsWith('.js'))
      .map((name) => readFileSync(join(output, 'assets', name), 'utf8'))
      .join('\n');
    expect(code).not.toContain('__vite-browser-external');
    // the new URL('…_bg.wasm', import.meta.url) of the glue and of src/wasm.ts, rewritten to the assets
    for (const name of wasm) expect(code).toContain(name);
  });

  it.skipIf(!haveChromium)(`runs in headless Chromium and agrees bit for bit with the Node entry${haveChromium ? '' : ` — ${missingChromium}`}`, async () => {
    const server = await serveFolder(output);
    const { browser, close } = await launchChromium({ width: 800, height: 600 });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      await page.goto(`${server.origin}/`);
      await page.waitForFunction(() => document.getElementById('result')!.textContent !== 'running…', null, { timeout: 30_000 });
      expect(await page.textContent('#result')).toBe('ok');
      const inBrowser = JSON.parse((await page.getAttribute('#result', 'data-outcome'))!);
      const inNode = await fixtureRun(nodeEntry);
      expect(inBrowser.step).toBe(20);
      expect(inNode.build).toBe('relaxed-simd'); // Node 20: the Node entry turns relaxed SIMD on
      expect(inBrowser).toEqual(inNode); // the same build, bit for bit
      for (const row of inBrowser.completed) expect(row[0]).toBe('1');
      expect(problems).toEqual([]);
    } finally {
      await close();
      await server.close();
    }
  });
});
