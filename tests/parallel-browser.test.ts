// The worker pool in a browser: a vite app (built here from src/index.ts) starts Web Workers with
// spawnWebWorker, trains a few steps data-parallel and samples, in headless Chromium. Served
// cross-origin isolated (COOP/COEP: SharedArrayBuffer, gradients through shared slots) and not
// (no SharedArrayBuffer: gradients as transferred buffers); both must agree with one model in the
// same page within the summation-order tolerance, keep the replicas identical, sample identically,
// and agree with each other bit for bit.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sirv from 'sirv';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium, missingChromium } from './browser-helpers.js';

const repository = resolve(import.meta.dirname, '..');

const PAGE = `<!doctype html><html><head><meta charset="utf-8" /><link rel="icon" href="data:," /></head>
<body><p id="result">running…</p><script type="module" src="./main.js"></script></body></html>`;

// Runs in the page: one model and a pool of two Web Workers from the same checkpoint.
const MAIN = `
import { DiffusionModel, ParallelModel, spawnWebWorker } from 'bernoulli-diffusion';
const L = 10;
const model = { length: L, T: 30, architecture: 'paper', parameterisation: 'direct', schedule: 'paper', hidden: 16, layers: 2, time_embedding: 8, kernel: 0 };
const training = { lr: 3e-3, lr_schedule: 'constant', warmup_steps: 0, total_steps: 10, min_lr_ratio: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0, clip_norm: 1, ema_decay: 0.9, objective: 'full' };
async function run() {
  const one = await DiffusionModel.create(model, training, 5);
  const pool = await ParallelModel.create({ spawn: spawnWebWorker, workers: 2, checkpoint: one.toBytes() });
  const reports = [];
  for (let s = 0; s < 3; s++) {
    const batch = new Uint8Array(9 * L);
    for (let r = 0; r < 9; r++) for (let i = (r + s) % 5; i < L; i += 5) batch[r * L + i] = 1;
    reports.push([one.trainStep(batch), await pool.trainStep(batch)]);
  }
  const replicas = await pool.replicaParameters();
  const single = one.parameters();
  let maxDifference = 0;
  for (let i = 0; i < single.length; i++) maxDifference = Math.max(maxDifference, Math.abs(single[i] - replicas[0][i]));
  const samples = [Array.from(one.sample(7, { seed: 3 }).samples), Array.from((await pool.sample(7, { seed: 3 })).samples)];
  await pool.close();
  return {
    shared: typeof SharedArrayBuffer !== 'undefined',
    reports,
    replicasEqual: replicas[1].every((v, i) => v === replicas[0][i]),
    maxDifference,
    parameters: Array.from(replicas[0].slice(0, 50)),
    samples,
  };
}
const result = document.getElementById('result');
run().then((outcome) => { result.dataset.outcome = JSON.stringify(outcome); result.textContent = 'ok'; }, (error) => { result.textContent = 'error: ' + error.message; });
`;

/** Serves a folder, cross-origin isolated or not. */
async function serve(folder: string, isolated: boolean): Promise<{ origin: string; close: () => Promise<void> }> {
  const files = sirv(folder, { dev: true });
  const server = createServer((request, response) => {
    if (isolated) {
      response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      response.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    }
    files(request, response, () => {
      response.statusCode = 404;
      response.end('not found');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((done) => server.close(() => done())) };
}

describe('the worker pool in a browser (Web Workers)', () => {
  let app: string;

  beforeAll(async () => {
    app = mkdtempSync(join(tmpdir(), 'bd-pool-app-'));
    writeFileSync(join(app, 'index.html'), PAGE);
    writeFileSync(join(app, 'main.js'), MAIN);
    await build({
      configFile: false,
      root: app,
      logLevel: 'warn',
      resolve: { alias: [{ find: /^bernoulli-diffusion$/, replacement: join(repository, 'src', 'index.ts') }] },
      worker: { format: 'es' },
      build: { outDir: join(app, 'dist'), target: 'es2022', chunkSizeWarningLimit: 4000, rolldownOptions: { checks: { bundlerTimings: false } } },
    });
  });

  afterAll(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it.skipIf(!haveChromium)(`trains and samples like one model, with and without SharedArrayBuffer${haveChromium ? '' : ` — ${missingChromium}`}`, async () => {
    const { browser, close } = await launchChromium({ width: 800, height: 600 });
    const outcomes = [];
    try {
      for (const isolated of [true, false]) {
        const server = await serve(join(app, 'dist'), isolated);
        try {
          const page = await browser.newPage();
          const problems: string[] = [];
          page.on('pageerror', (error) => problems.push(error.message));
          await page.goto(`${server.origin}/`);
          await page.waitForFunction(() => document.getElementById('result')!.textContent !== 'running…', null, { timeout: 60_000 });
          expect(await page.textContent('#result')).toBe('ok');
          const outcome = JSON.parse((await page.getAttribute('#result', 'data-outcome'))!);
          expect(outcome.shared).toBe(isolated);
          for (const [one, pooled] of outcome.reports) {
            expect(Math.abs(pooled.loss - one.loss)).toBeLessThanOrEqual(1e-6 * one.loss);
            expect(Math.abs(pooled.gradNorm - one.gradNorm)).toBeLessThanOrEqual(1e-5 * one.gradNorm);
          }
          expect(outcome.replicasEqual).toBe(true);
          expect(outcome.maxDifference).toBeLessThan(1e-5);
          expect(outcome.samples[1]).toEqual(outcome.samples[0]);
          expect(problems).toEqual([]);
          outcomes.push(outcome);
          await page.close();
        } finally {
          await server.close();
        }
      }
      // shared slots and transferred buffers: the same sums, the same steps
      expect(outcomes[1].reports).toEqual(outcomes[0].reports);
      expect(outcomes[1].parameters).toEqual(outcomes[0].parameters);
    } finally {
      await close();
    }
  });
});
