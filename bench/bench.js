#!/usr/bin/env node
/**
 * Speed benchmark (issue 7): `npm run bench` prints a table and writes bench/results.json; every
 * figure is measured in the same run. `npm run bench -- --quick` is a fast smoke run (T = 100,
 * one repeat, short timings: its figures are not the benchmark's). `--only a,b` runs the named
 * configurations only and merges their rows into bench/results.json (the others are kept).
 *
 * Every configuration runs in its own child process (this file with --child), so its peak RSS
 * (process.resourceUsage().maxRSS at exit: the whole process, worker threads included) is its own.
 * Our package is loaded from its build (dist/ and pkg/: `npm run bench` builds dist first); the
 * plain-TypeScript reference runs from src/reference through tsx.
 *
 * Figures:
 * - peak_gflops: f32x4 multiply-adds on registers only (linalg::peak_multiply_add, exported as peakKernel), one core: the limit.
 * - Two wasm builds (src/wasm.ts): the rows without suffix run the package's default (relaxed SIMD,
 *   fused multiply-adds, where the runtime has it; each row's `build` says which), the *_simd128
 *   rows the plain build (mul then add); each is measured against the peak of its own build, and
 *   *.wasm_all_vs_simd128 is the same-run gain of the default build.
 * - train_paper_b64 / _b2048: example-timesteps per second (batch × T per step) of full training
 *   steps (full sum over t = 1..T, forward + backward + AdamW with clipping; EMA off, as in the
 *   baselines) of the paper architecture (L = 20, H = 50, 2 hidden layers, T = 2000, direct
 *   parameterisation): our wasm on 1 worker (this thread) and on all cores (a pool: this thread +
 *   cores-1 worker threads), the plain-TypeScript reference (src/reference) and TensorFlow.js
 *   (wasm backend). Slow baselines time part of a step (bench/tfjs-paper.js:measureTrainThroughput).
 * - train_default: the default configuration (src/config.ts DEFAULTS: network, batch size and
 *   objective as configured there): examples per second (one t each).
 * - sample_b1024: sequence-steps per second of the reverse chain (T = 2000, 1024 sequences,
 *   paper architecture): wasm 1 worker, all cores, plain TypeScript.
 * - GFLOP/s of training: multiply-adds of forward + backward by formula (2 flops each; biases,
 *   activations, the loss and the optimiser not counted):
 *     paper, per example-timestep: forward LH + H² + HL; backward: readout dW and dh (2HL), hidden
 *     layer dW and dh (2H²), first layer dW (LH) → 5LH + 3H² = 12,500 MAC = 25,000 flops;
 *     default mlp, per example: forward 2LH + EH + 2·layers·H² + HL; backward the same weight
 *     gradients plus input gradients of the blocks and the output (2·layers·H² + HL).
 *   The ratio to peak divides by peak_gflops × cores used.
 * - *.torch: the same networks, objective and shapes in PyTorch (bench/torch/bench_torch.py: the
 *   paper network's full-sum training at batch 64 and 2048, the default mlp with importance-
 *   sampled t at batch 256, the U-Net at MNIST shape (28x28, C = 32, T = 1000, batch 128, sampled
 *   t; train_unet_mnist, images/s), sampling 1024 sequences), on every core (torch threads = cores), when
 *   `python3 -c "import torch"` works; otherwise the rows say "torch not installed". Ratios
 *   *_vs_torch divide our figure by PyTorch's from the same run. Not run in CI.
 * - rss_mb: peak resident memory of the configuration's process; cli_train_default and
 *   cli_train_paper run the real `train` command in a child (all cores, with pictures): the
 *   defaults with --steps 300, and the paper architecture (H = 50, T = 2000, full sum) for 10 steps.
 * - cli_default_run: the README's main command (`train` with every default: evaluations, pictures),
 *   wall seconds. cli_generate_10000 (`generate -n 10000`) and cli_evaluate_r200 (`evaluate
 *   --repeats 200` on the 5 heartbeat phases, full sum over t) of a default-config model, wall
 *   seconds on all cores (.all, the default) and on one (.1).
 * Medians over repeats; ratios against the baselines measured in this run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const L = 20;
const H = 50;
const PAPER_MAC_PER_EXAMPLE_TIMESTEP = 5 * L * H + 3 * H * H;
/** The paper's architecture for `train --config` (the CLI's defaults have H = 96). */
const PAPER_CONFIG_YAML = `model:\n  architecture: paper\n  parameterisation: direct\n  hidden: ${H}\n  layers: 2\ntraining:\n  objective: full\n`;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Multiply-adds per example of the default mlp (see the header). */
function mlpMacPerExample({ hidden: h, layers, time_embedding: e }, length) {
  const forward = 2 * length * h + e * h + 2 * layers * h * h + h * length;
  const backward = forward + 2 * layers * h * h + h * length;
  return forward + backward;
}

// ---- the child: one configuration ----------------------------------------------------------

/** The built package (dist/, `npm run build:ts`): only the modules a configuration needs. */
async function loadPackage() {
  await import('../dist/node/wasm-file.js');
  const [model, pool, config] = await Promise.all([import('../dist/model.js'), import('../dist/node/pool.js'), import('../dist/config.js')]);
  return { DiffusionModel: model.DiffusionModel, createNodePool: pool.createNodePool, config };
}

/** The wasm build this child runs (BERNOULLI_DIFFUSION_WASM from the spec's `build`, else the package's choice). */
async function wasmBuildName() {
  const { readWasm } = await import('../dist/node/wasm-file.js');
  const { selectedWasmBuild } = await import('../dist/wasm.js');
  return { build: selectedWasmBuild(), readWasm };
}

function paperConfigs(T, objective = 'full') {
  return {
    model: { length: L, T, architecture: 'paper', parameterisation: 'direct', schedule: 'paper', hidden: H, layers: 2, time_embedding: 32, kernel: 0 },
    training: {
      lr: 1e-3,
      lr_schedule: 'constant',
      warmup_steps: 0,
      total_steps: 1_000_000,
      min_lr_ratio: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weight_decay: 0,
      clip_norm: 1,
      ema_decay: 0,
      objective,
    },
  };
}

function benchBatchOf(batch) {
  const x0 = new Uint8Array(batch * L);
  for (let r = 0; r < batch; r++) for (let i = r % 5; i < L; i += 5) x0[r * L + i] = 1;
  return x0;
}

/** A DiffusionModel, or a pool of `workers` replicas (this thread + workers - 1 threads). */
async function modelOrPool(pkg, configs, workers) {
  const model = await pkg.DiffusionModel.create(configs.model, configs.training, 1);
  if (workers <= 1) return { runner: model, close: async () => model.free() };
  const pool = await pkg.createNodePool({ workers: workers - 1, local: model });
  return { runner: pool, close: async () => (await pool.close(), model.free()) };
}

/** Runs `once` (async ok) repeatedly for at least `seconds` (and at least once); returns calls per second. */
async function rate(once, seconds) {
  const start = performance.now();
  let calls = 0;
  do {
    await once();
    calls += 1;
  } while (performance.now() - start < 1000 * seconds);
  return { callsPerSecond: (calls * 1000) / (performance.now() - start), calls };
}

const children = {
  async peak({ repeats }) {
    const { default: initWasm, peakKernel, peakFlops } = await import('../pkg/bernoulli_diffusion_core.js');
    const { build, readWasm } = await wasmBuildName();
    await initWasm({ module_or_path: await readWasm(build) });
    peakKernel(1_000_000, 1.5); // tier-up to the optimising compiler
    const iterations = 20_000_000;
    const values = [];
    for (let r = 0; r < repeats; r++) {
      const start = performance.now();
      peakKernel(iterations, 1.5 + r);
      values.push(peakFlops(iterations) / ((performance.now() - start) / 1000) / 1e9);
    }
    return { value: median(values), unit: 'GFLOP/s', values, build };
  },

  async 'train-wasm'({ batch, T, workers, repeats, seconds }) {
    const pkg = await loadPackage();
    const { runner, close } = await modelOrPool(pkg, paperConfigs(T), workers);
    const x0 = benchBatchOf(batch);
    await runner.trainStep(x0); // warm-up
    const values = [];
    let loss = NaN;
    for (let r = 0; r < repeats; r++) {
      const { callsPerSecond } = await rate(async () => (loss = (await runner.trainStep(x0)).loss), seconds);
      values.push(callsPerSecond * batch * T);
    }
    await close();
    return { value: median(values), unit: 'example-timesteps/s', values, loss, gflops: (median(values) * 2 * PAPER_MAC_PER_EXAMPLE_TIMESTEP) / 1e9 };
  },

  async 'train-reference'({ batch, T, repeats, seconds }) {
    const { benchReferenceTrain } = await import('./reference-paper.js');
    const values = [];
    for (let r = 0; r < repeats; r++) values.push((await benchReferenceTrain({ batch, T, L, H, seconds })).exampleTimestepsPerSecond);
    return { value: median(values), unit: 'example-timesteps/s', values };
  },

  async 'train-tfjs'({ batch, T, repeats, seconds }) {
    const { benchTfjsTrain } = await import('./tfjs-paper.js');
    const values = [];
    let backend;
    for (let r = 0; r < repeats; r++) {
      const result = await benchTfjsTrain({ batch, T, L, H, seconds, backend: 'wasm' });
      values.push(result.exampleTimestepsPerSecond);
      backend = result.backend;
    }
    return { value: median(values), unit: 'example-timesteps/s', values, backend };
  },

  async 'train-default'({ workers, repeats, seconds, T }) {
    const pkg = await loadPackage();
    const { DEFAULTS, coreModelConfig, coreTrainingConfig } = pkg.config;
    const configs = { model: coreModelConfig({ ...DEFAULTS.model, T }, L), training: coreTrainingConfig(DEFAULTS.training, 1_000_000) };
    const batch = DEFAULTS.training.batch_size;
    const { runner, close } = await modelOrPool(pkg, configs, workers);
    const x0 = benchBatchOf(batch);
    for (let i = 0; i < 20; i++) await runner.trainStep(x0); // warm-up
    const values = [];
    for (let r = 0; r < repeats; r++) values.push((await rate(() => runner.trainStep(x0), seconds)).callsPerSecond * batch);
    await close();
    const mac = mlpMacPerExample(DEFAULTS.model, L);
    return { value: median(values), unit: 'examples/s', values, gflops: (median(values) * 2 * mac) / 1e9, macPerExample: mac };
  },

  /** The U-Net at MNIST shape (28x28, C = 32, T = 1000, batch 128, objective sampled), as bench/torch's train_unet_mnist. */
  async 'train-unet'({ workers, repeats, seconds }) {
    const pkg = await loadPackage();
    const { DEFAULTS, coreModelConfig, coreTrainingConfig } = pkg.config;
    const side = 28,
      length = side * side,
      batch = 128;
    const model = coreModelConfig({ ...DEFAULTS.model, T: 1000, architecture: 'unet', channels: 32, shape: [side, side] }, length);
    const configs = { model, training: coreTrainingConfig({ ...DEFAULTS.training, batch_size: batch, objective: 'sampled' }, 1_000_000) };
    const { runner, close } = await modelOrPool(pkg, configs, workers);
    // fixed pseudo-random images, a fifth of the pixels on (the time does not depend on them)
    const x0 = new Uint8Array(batch * length);
    for (let i = 0; i < x0.length; i++) x0[i] = (i * 2654435761) % 4294967296 < 858993459 ? 1 : 0;
    for (let i = 0; i < 2; i++) await runner.trainStep(x0); // warm-up
    const values = [];
    for (let r = 0; r < repeats; r++) values.push((await rate(() => runner.trainStep(x0), seconds)).callsPerSecond * batch);
    await close();
    return { value: median(values), unit: 'images/s', values };
  },

  async 'sample-wasm'({ n, T, workers, repeats }) {
    const pkg = await loadPackage();
    const { runner, close } = await modelOrPool(pkg, paperConfigs(T), workers);
    await runner.sample(Math.min(n, 64), { seed: 0 }); // warm-up
    const values = [];
    for (let r = 0; r < repeats; r++) {
      const start = performance.now();
      await runner.sample(n, { seed: r + 1 });
      values.push((n * T) / ((performance.now() - start) / 1000));
    }
    await close();
    return { value: median(values), unit: 'sequence-steps/s', values };
  },

  async 'sample-reference'({ n, T, repeats, seconds }) {
    const { benchReferenceSample } = await import('./reference-paper.js');
    const values = [];
    for (let r = 0; r < repeats; r++) values.push((await benchReferenceSample({ n, T, L, H, seconds })).sequenceStepsPerSecond);
    return { value: median(values), unit: 'sequence-steps/s', values };
  },

  /** bench/torch/bench_torch.py in a python3 child (PyTorch on `threads` threads); the caller checked torch imports. */
  async torch({ torchCase, T, repeats, seconds, threads }) {
    const { execFileSync } = await import('node:child_process');
    const script = fileURLToPath(new URL('./torch/bench_torch.py', import.meta.url));
    const out = execFileSync(
      'python3',
      [script, torchCase, '--T', String(T), '--repeats', String(repeats), '--seconds', String(seconds), '--threads', String(threads)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const result = JSON.parse(out.trim().split('\n').pop());
    return { ...result, rssMb: result.rss_mb, note: `torch ${result.torch}, ${result.threads} threads` };
  },

  async 'cli-train'({ extra, config }) {
    const { main: runCli } = await import('../dist/node/cli.js');
    const work = mkdtempSync(join(tmpdir(), 'bench-train-'));
    if (config) {
      writeFileSync(join(work, 'config.yaml'), config);
      extra = ['--config', join(work, 'config.yaml'), ...extra];
    }
    const lines = [];
    const original = { log: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
    process.stdout.write = (chunk) => (lines.push(String(chunk)), true);
    process.stderr.write = (chunk) => (lines.push(String(chunk)), true);
    const start = performance.now();
    let code;
    try {
      code = await runCli(['train', '--out', work, '--name', 'run', '--quiet', ...extra]);
    } finally {
      process.stdout.write = original.log;
      process.stderr.write = original.err;
    }
    const seconds = (performance.now() - start) / 1000;
    rmSync(work, { recursive: true, force: true });
    if (code !== 0) throw new Error(`train exited with ${code}: ${lines.join('').slice(-500)}`);
    return { value: seconds, unit: 's', args: extra };
  },
  /** Wall seconds of a CLI command (generate / evaluate) on a default-config model trained for one step (the time does not depend on the weights). */
  async 'cli-command'({ command, extra }) {
    const { main: runCli } = await import('../dist/node/cli.js');
    const work = mkdtempSync(join(tmpdir(), 'bench-cli-'));
    const lines = [];
    const original = { log: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
    process.stdout.write = (chunk) => (lines.push(String(chunk)), true);
    process.stderr.write = (chunk) => (lines.push(String(chunk)), true);
    let code;
    let seconds = Number.NaN;
    try {
      code = await runCli(['train', '--out', work, '--name', 'run', '--quiet', '--no-plots', '--steps', '1', '--eval-every', '0']);
      if (code === 0) {
        const start = performance.now();
        code = await runCli([command, join(work, 'run', 'model.safetensors'), ...extra]);
        seconds = (performance.now() - start) / 1000;
      }
    } finally {
      process.stdout.write = original.log;
      process.stderr.write = original.err;
    }
    rmSync(work, { recursive: true, force: true });
    if (code !== 0) throw new Error(`${command} exited with ${code}: ${lines.join('').slice(-500)}`);
    return { value: seconds, unit: 's', args: [command, ...extra] };
  },
};

/** Why the PyTorch rows cannot run ('torch not installed'), or undefined when `import torch` works. */
function torchUnavailable() {
  const probe = spawnSync('python3', ['-c', 'import torch'], { stdio: 'ignore' });
  return probe.status === 0 ? undefined : 'torch not installed';
}

async function runChild(spec) {
  const result = await children[spec.kind](spec);
  if (spec.kind !== 'torch' && !result.build) {
    const { loadedWasmBuild } = await import('../dist/wasm.js');
    result.build = loadedWasmBuild() ?? (await wasmBuildName()).build;
  }
  result.rssMb ??= process.resourceUsage().maxRSS / 1024; // the torch rows report python's
  process.stdout.write(`\nRESULT ${JSON.stringify(result)}\n`);
  process.exit(0); // worker pools and tfjs may keep handles open
}

// ---- the parent: all configurations, the table, results.json --------------------------------

function runInChild(spec) {
  return new Promise((resolve) => {
    const env = spec.build ? { ...process.env, BERNOULLI_DIFFUSION_WASM: spec.build } : process.env;
    const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code === 0 && line) resolve(JSON.parse(line.slice(7)));
      else resolve({ error: `exit ${code}: ${(err || out).trim().split('\n').slice(-3).join(' | ')}` });
    });
  });
}

async function main() {
  const quick = args.includes('--quick');
  const onlyAt = args.indexOf('--only');
  const only = onlyAt >= 0 ? new Set(args[onlyAt + 1].split(',')) : undefined;
  const cores = availableParallelism();
  const T = quick ? 100 : 2000;
  const repeats = quick ? 1 : 3;
  const s = (full) => (quick ? Math.min(0.5, full) : full);
  const cases = [
    ['peak_gflops', { kind: 'peak', repeats: quick ? 2 : 5 }],
    // the plain build (f32x4 mul then add), beside the default one (relaxed SIMD where the runtime has it)
    ['peak_gflops.simd128', { kind: 'peak', repeats: quick ? 2 : 5, build: 'simd128' }],
    ['train_paper_b64.wasm_1', { kind: 'train-wasm', batch: 64, T, workers: 1, repeats, seconds: s(1.5) }],
    ['train_paper_b64.wasm_all', { kind: 'train-wasm', batch: 64, T, workers: cores, repeats, seconds: s(1.5) }],
    ['train_paper_b64.plain_ts', { kind: 'train-reference', batch: 64, T, repeats, seconds: s(2) }],
    ['train_paper_b64.tfjs', { kind: 'train-tfjs', batch: 64, T, repeats, seconds: s(3) }],
    ['train_paper_b2048.wasm_1', { kind: 'train-wasm', batch: 2048, T, workers: 1, repeats, seconds: s(0.1) }],
    ['train_paper_b2048.wasm_all', { kind: 'train-wasm', batch: 2048, T, workers: cores, repeats, seconds: s(0.1) }],
    ['train_paper_b2048.wasm_all_simd128', { kind: 'train-wasm', batch: 2048, T, workers: cores, repeats, seconds: s(0.1), build: 'simd128' }],
    ['train_paper_b2048.plain_ts', { kind: 'train-reference', batch: 2048, T, repeats, seconds: s(2) }],
    ['train_paper_b2048.tfjs', { kind: 'train-tfjs', batch: 2048, T, repeats, seconds: s(3) }],
    ['train_default.wasm_1', { kind: 'train-default', T, workers: 1, repeats, seconds: s(1.5) }],
    ['train_default.wasm_all', { kind: 'train-default', T, workers: cores, repeats, seconds: s(1.5) }],
    ['train_default.wasm_all_simd128', { kind: 'train-default', T, workers: cores, repeats, seconds: s(1.5), build: 'simd128' }],
    ['sample_b1024.wasm_1', { kind: 'sample-wasm', n: 1024, T, workers: 1, repeats }],
    ['sample_b1024.wasm_all', { kind: 'sample-wasm', n: 1024, T, workers: cores, repeats }],
    ['sample_b1024.wasm_all_simd128', { kind: 'sample-wasm', n: 1024, T, workers: cores, repeats, build: 'simd128' }],
    ['sample_b1024.plain_ts', { kind: 'sample-reference', n: 1024, T, repeats, seconds: s(3) }],
    ['train_paper_b64.torch', { kind: 'torch', torchCase: 'train_paper_b64', T, repeats, seconds: s(3), threads: cores }],
    ['train_paper_b2048.torch', { kind: 'torch', torchCase: 'train_paper_b2048', T, repeats, seconds: s(3), threads: cores }],
    ['train_default.torch', { kind: 'torch', torchCase: 'train_default', T, repeats, seconds: s(2), threads: cores }],
    ['sample_b1024.torch', { kind: 'torch', torchCase: 'sample_b1024', T, repeats: quick ? 1 : repeats, seconds: 0, threads: cores }],
    ['train_unet_mnist.wasm_all', { kind: 'train-unet', workers: cores, repeats, seconds: s(5) }],
    ['train_unet_mnist.wasm_all_simd128', { kind: 'train-unet', workers: cores, repeats, seconds: s(5), build: 'simd128' }],
    ['train_unet_mnist.torch', { kind: 'torch', torchCase: 'train_unet_mnist', T: 1000, repeats, seconds: s(5), threads: cores }],
    ['cli_train_default', { kind: 'cli-train', extra: quick ? ['--steps', '20', '--T', '100', '--no-plots'] : ['--steps', '300'] }],
    // the README's main command as a user runs it: defaults, evaluations, pictures
    ['cli_default_run', { kind: 'cli-train', extra: quick ? ['--steps', '20', '--T', '100'] : [] }],
    ['cli_generate_10000.all', { kind: 'cli-command', command: 'generate', extra: ['-n', quick ? '100' : '10000', '--seed', '1', '--json'] }],
    ['cli_generate_10000.1', { kind: 'cli-command', command: 'generate', extra: ['-n', quick ? '100' : '10000', '--seed', '1', '--json', '--workers', '1'] }],
    ['cli_evaluate_r200.all', { kind: 'cli-command', command: 'evaluate', extra: ['--repeats', quick ? '2' : '200', '--samples', '1'] }],
    ['cli_evaluate_r200.1', { kind: 'cli-command', command: 'evaluate', extra: ['--repeats', quick ? '2' : '200', '--samples', '1', '--workers', '1'] }],
    [
      'cli_train_paper',
      {
        kind: 'cli-train',
        config: PAPER_CONFIG_YAML,
        extra: ['--steps', quick ? '2' : '10', '--eval-every', '0', ...(quick ? ['--T', '100', '--no-plots'] : [])],
      },
    ],
    // (--only: the peak is measured all the same, so every "of peak" share is of the same run's peak)
  ].filter(([name]) => !only || name.startsWith('peak_gflops') || only.has(name) || only.has(name.split('.')[0]));

  const startedAt = new Date().toISOString();
  const load = loadavg();
  const results = {};
  const began = performance.now();
  const torchMissing = torchUnavailable();
  for (const [name, spec] of cases) {
    if (spec.kind === 'torch' && torchMissing) {
      results[name] = { skipped: torchMissing };
      process.stderr.write(`bench: ${name}: ${torchMissing}\n`);
      continue;
    }
    process.stderr.write(`bench: ${name} ...`);
    const t0 = performance.now();
    const loadBefore = loadavg()[0];
    results[name] = await runInChild(spec);
    // other programs on the machine take cores from the measurement: keep the 1-minute load
    results[name].load_average = Number(((loadBefore + loadavg()[0]) / 2).toFixed(2));
    results[name].measured_at = new Date().toISOString();
    process.stderr.write(
      ` ${results[name].error ?? `${format(results[name].value)} ${results[name].unit}`} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
    );
  }
  // --only: the other rows of bench/results.json stay (each row carries its measured_at), so a
  // partial run updates the file instead of replacing it; ratios then may pair rows of two runs.
  const resultsFile = join(here, 'results.json');
  if (only && !quick) {
    try {
      const previous = JSON.parse(readFileSync(resultsFile, 'utf8')).results ?? {};
      for (const [name, row] of Object.entries(previous)) if (!(name in results)) results[name] = row;
    } catch {
      // no earlier results (or not readable): this run's rows only
    }
  }
  // derived figures: each row against the peak of the build it ran
  for (const [name, r] of Object.entries(results)) {
    const peak = (name.endsWith('_simd128') ? results['peak_gflops.simd128'] : results.peak_gflops)?.value;
    if (r.skipped || r.gflops === undefined || !peak) continue;
    const used = name.includes('wasm_all') ? cores : 1;
    r.ratioToPeak = r.gflops / (peak * used);
  }
  const ratio = (a, b) => (results[a]?.value && results[b]?.value ? results[a].value / results[b].value : undefined);
  const ratios = {};
  for (const b of ['b64', 'b2048']) {
    ratios[`train_paper_${b}.wasm_all_vs_plain_ts`] = ratio(`train_paper_${b}.wasm_all`, `train_paper_${b}.plain_ts`);
    ratios[`train_paper_${b}.wasm_all_vs_tfjs`] = ratio(`train_paper_${b}.wasm_all`, `train_paper_${b}.tfjs`);
    ratios[`train_paper_${b}.wasm_1_vs_plain_ts`] = ratio(`train_paper_${b}.wasm_1`, `train_paper_${b}.plain_ts`);
    ratios[`train_paper_${b}.wasm_1_vs_tfjs`] = ratio(`train_paper_${b}.wasm_1`, `train_paper_${b}.tfjs`);
    ratios[`train_paper_${b}.all_vs_1`] = ratio(`train_paper_${b}.wasm_all`, `train_paper_${b}.wasm_1`);
  }
  for (const row of ['train_paper_b64', 'train_paper_b2048', 'train_default', 'train_unet_mnist', 'sample_b1024']) {
    ratios[`${row}.wasm_all_vs_torch`] = ratio(`${row}.wasm_all`, `${row}.torch`);
    ratios[`${row}.wasm_1_vs_torch`] = ratio(`${row}.wasm_1`, `${row}.torch`);
  }
  // the default build (relaxed SIMD where the runtime has it) over the plain one, same run
  for (const row of ['train_paper_b2048', 'train_default', 'train_unet_mnist', 'sample_b1024']) {
    ratios[`${row}.wasm_all_vs_simd128`] = ratio(`${row}.wasm_all`, `${row}.wasm_all_simd128`);
    ratios[`${row}.wasm_all_simd128_vs_torch`] = ratio(`${row}.wasm_all_simd128`, `${row}.torch`);
  }
  ratios['sample_b1024.wasm_all_vs_plain_ts'] = ratio('sample_b1024.wasm_all', 'sample_b1024.plain_ts');
  ratios['sample_b1024.all_vs_1'] = ratio('sample_b1024.wasm_all', 'sample_b1024.wasm_1');
  ratios['train_default.all_vs_1'] = ratio('train_default.wasm_all', 'train_default.wasm_1');
  // wall times: one worker's over all cores' (above 1: all cores are faster)
  ratios['cli_generate_10000.1_over_all'] = ratio('cli_generate_10000.1', 'cli_generate_10000.all');
  ratios['cli_evaluate_r200.1_over_all'] = ratio('cli_evaluate_r200.1', 'cli_evaluate_r200.all');

  const report = {
    format: 'bernoulli-diffusion-bench/1',
    quick,
    started_at: startedAt,
    seconds: Number(((performance.now() - began) / 1000).toFixed(1)),
    machine: { cores, cpu: cpus()[0]?.model, node: process.version, load_average_at_start: load.map((v) => Number(v.toFixed(2))) },
    settings: { L, H, T, paper_flops_per_example_timestep: 2 * PAPER_MAC_PER_EXAMPLE_TIMESTEP, repeats },
    results,
    ratios,
  };
  printTable(report);
  if (!quick || args.includes('--write')) {
    writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
    process.stderr.write(`bench: wrote ${join('bench', 'results.json')}\n`);
  }
}

function format(value) {
  if (value === undefined || value === null || Number.isNaN(value)) return '-';
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2);
}

function printTable(report) {
  const rows = [['figure', 'value', 'unit', 'GFLOP/s', 'of peak', 'RSS MB', 'load']];
  for (const [name, r] of Object.entries(report.results)) {
    if (r.skipped) rows.push([name, '-', r.skipped, '', '', '', '']);
    else if (r.error) rows.push([name, 'error', r.error.slice(0, 60), '', '', '', '']);
    else
      rows.push([
        name,
        format(r.value),
        r.unit,
        r.gflops ? r.gflops.toFixed(1) : '',
        r.ratioToPeak ? `${(100 * r.ratioToPeak).toFixed(0)}%` : '',
        r.rssMb.toFixed(0),
        r.load_average.toFixed(1),
      ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  const line = (row) => row.map((cell, c) => (c === 0 || c === 2 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows.slice(1)) console.log(line(row));
  console.log('');
  for (const [name, value] of Object.entries(report.ratios)) if (value !== undefined) console.log(`${name.padEnd(44)} ${value.toFixed(2)}x`);
  const m = report.machine;
  console.log(
    `\n${m.cores} cores (${m.cpu}), Node ${m.node}, load average at start ${m.load_average_at_start.join(' ')}; T = ${report.settings.T}${report.quick ? ' (quick run: not the benchmark)' : ''}; ${report.seconds} s`,
  );
  console.log('load: the 1-minute load average around each configuration (above the core count, other programs shared the cores)');
}

if (args[0] === '--child') await runChild(JSON.parse(args[1]));
else await main();
