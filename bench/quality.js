#!/usr/bin/env node
/**
 * Model quality (issue 6): `npm run bench:quality` trains and evaluates models through the real CLI
 * (bin/bernoulli-diffusion.js on the built dist/ and pkg/), prints a table and writes
 * bench/quality.json. Every number comes from this run; every row records the commands that made it,
 * so any row can be checked by hand with `bernoulli-diffusion evaluate`.
 *
 *   npm run bench:quality                      all groups (about 15 minutes on a 2-core machine)
 *   npm run bench:quality -- --only default,t100   (other groups' rows in bench/quality.json are kept)
 *   npm run bench:quality -- --only rules-unet --sets parity12,block4of32   some rule data sets
 *   npm run bench:quality -- --only rules-unet --unet-variant dropout0.1   a candidate U-Net recipe
 *   npm run bench:quality -- --quick           a smoke run: few steps and repeats (not the figures)
 *   npm run bench:quality -- --only mnist [--minutes 30]   the MNIST group (30 minutes of training and its evaluations)
 *   node bench/quality.js --print              only print the table of bench/quality.json
 *
 * Groups (the targets of issue 6):
 * - default:    `train` with nothing else (T = 2000): the bound over the 5 phases, 10,000 samples:
 *               share of valid heartbeats and of each phase; training wall time.
 * - t100:       the same with --T 100.
 * - holdout:    `data heartbeat --holdout 1`, trained on 4 phases, evaluated on the 5th: the share of
 *               samples that are the unseen phase and the bound on it; circular vs the default mlp.
 * - rules:      the rule-based data sets of bench/datasets.js with the default config: the bound on
 *               val, the share of samples obeying the rule, and obeying it without being in train.
 * - rules-circular: the same with --arch circular --hidden 32 (for rules unchanged by cyclic shifts).
 * - rules-unet: the same with --arch unet and one config for all seven (UNET_CONFIG below: channels
 *               16, batch 64, 1500 steps, evaluations every 500 steps on fewer chains), chosen so each
 *               row trains in about 2 minutes on a loaded 2-core machine; its final evaluation uses
 *               256 chains and 500 samples instead of 512 and 1000, and at most 128 val sequences
 *               (a seeded random subset; T = 2000 sampling through a U-Net is slow), so its standard
 *               errors are larger. Rules rows also give wall_seconds:
 *               the whole `train` command, with the evaluations during training.
 * - estimators: the full sum over t, sampled t and importance-sampled t, for the mlp and the
 *               circular network, each at its own batch size and steps (T = 2000).
 * - mnist:      binarized MNIST (issue 13): `data mnist` (9,000 train / 1,000 val), the two baselines
 *               of bench/mnist.js on that split, then the U-Net (MNIST_CONFIG) trained on all cores
 *               for --minutes (default 30; the bench stops `train` with SIGINT, which checkpoints),
 *               the cosine schedule sized by a 60-s calibration run of the same command before it
 *               (--steps-per-second R skips it),
 *               checkpoints every --checkpoint-every steps (200); the checkpoints nearest 5, 10 and
 *               30 minutes of training (metrics.jsonl's `elapsed`) are evaluated on --val-images
 *               (200) val images, with `evaluate --strata K` (--strata, 100) where the CLI has it,
 *               else the full sum over t twice per image. The last one also gets the sample score
 *               (--samples 1000 from `generate`: share classified with confidence >= 0.9 by the
 *               digit classifier, class histogram) and the inpainting score (--inpaint 100: the top
 *               14 rows of the first val digits given, --particles N passed to generate; share of
 *               completions keeping every given pixel, share classified as the digit's label),
 *               both from chains of --sample-steps (100) network calls (`generate --steps`).
 *               Also training images/s and the peak
 *               RSS of `train` (VmHWM). The PyTorch numbers are the issue's (not measured here).
 *               `--only mnist --minutes 2` is a smoke run (rows to test-output/); --quick also uses a
 *               small U-Net (C = 8, T = 100) and few samples, to check the pipeline in minutes.
 *               --dropout P adds model.dropout: P to MNIST_CONFIG (the rows record the config).
 * --keep: keep the work directory (data, runs, checkpoints) and print its path.
 * Bounds are in bits per sequence, ± one Monte-Carlo standard error (the core's `evaluate`); mnist
 * rows in nats per image (and bits per pixel).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ruleDatasets, scoreSamples, writeDataset } from './datasets.js';
import { mnistBaselines, readMnistSplit } from './mnist.js';
import { bitRowsFromStrings, scoreDigitSamples } from './mnist-models.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin', 'bernoulli-diffusion.js');
const GROUPS = ['default', 't100', 'holdout', 'rules', 'rules-circular', 'rules-unet', 'estimators', 'mnist'];

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const onlyIndex = argv.indexOf('--only');
const only = onlyIndex >= 0 ? argv[onlyIndex + 1].split(',') : GROUPS;
for (const group of only) if (!GROUPS.includes(group)) throw new Error(`--only: unknown group "${group}" (groups: ${GROUPS.join(', ')})`);
const setsIndex = argv.indexOf('--sets');
/** --sets: only these rule data sets in the rules groups (the other sets' rows are kept). */
const sets = setsIndex >= 0 ? argv[setsIndex + 1].split(',') : undefined;
const setNames = ruleDatasets().map((dataset) => dataset.name);
for (const name of sets ?? []) if (!setNames.includes(name)) throw new Error(`--sets: unknown data set "${name}" (sets: ${setNames.join(', ')})`);
if (argv.includes('--print')) {
  // Only print the table of the committed bench/quality.json (defined below; hoisted).
  printTable(JSON.parse(readFileSync(join(ROOT, 'bench', 'quality.json'), 'utf8')).rows);
  process.exit(0);
}
const work = mkdtempSync(join(tmpdir(), 'bd-quality-'));

/** Quick runs: steps / 20 (at least 20), so the whole pipeline runs in a minute or two. */
const steps = (n) => String(quick ? Math.max(20, Math.round(n / 20)) : n);
/** Evaluation sizes (quick: small). */
const size = (n, small) => String(quick ? small : n);

/** Runs the CLI in the work folder; returns stdout. A failure stops the benchmark with its stderr. */
function cli(args) {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd: work, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (result.status !== 0) throw new Error(`bernoulli-diffusion ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
  return result.stdout;
}

/** How a command reads for a person (paths inside the work folder shown relative to it). */
const shown = (args) => `bernoulli-diffusion ${args.join(' ')}`;

/** Trains a run named `name` (quietly, no pictures), returns its model path, wall and training seconds. */
function train(name, args) {
  const full = ['train', ...args, '--name', name, '--quiet', '--no-plots'];
  const start = performance.now();
  cli(full);
  const wallSeconds = (performance.now() - start) / 1000;
  const results = JSON.parse(readFileSync(join(work, 'results', name, 'results.json'), 'utf8'));
  return {
    model: `results/${name}/model.safetensors`,
    command: shown(full),
    wallSeconds,
    trainSeconds: results.timings.train_seconds,
    evalSeconds: results.timings.eval_seconds,
    stopped: { reason: results.stopped, step: results.step, model_step: results.model_step },
  };
}

function evaluate(model, args) {
  const full = ['evaluate', model, ...args, '--json'];
  return { result: JSON.parse(cli(full)), command: shown(full) };
}

function generate(model, n) {
  const full = ['generate', model, '--n', String(n), '--seed', '1', '--json'];
  return { samples: JSON.parse(cli(full)), command: shown(full) };
}

const rows = [];
/** One table row: its numbers, the targets it is held to (met or not), and the commands. */
function record(group, label, metrics, targets, commands) {
  const row = { group, label, measured: new Date().toISOString(), ...metrics, targets: targets.map(([name, met]) => ({ name, met })), commands };
  rows.push(row);
  const marks = row.targets.map((t) => `${t.met ? 'met' : 'NOT met'}: ${t.name}`).join('; ');
  console.log(`[${group}] ${label}: ${describe(metrics)}${marks ? `  — ${marks}` : ''}`);
}

function fixed(value, digits) {
  return typeof value === 'number' ? value.toFixed(digits) : String(value);
}
function pct(share) {
  return `${(100 * share).toFixed(1)}%`;
}
/** Where a row's samples fall, e.g. "valid 100.0%, phases 19.5%–20.8%". */
function samplesText(m) {
  const parts = [];
  if (m.valid_share !== undefined) parts.push(`valid ${pct(m.valid_share)}`);
  if (m.phase_share_min !== undefined) parts.push(`phases ${pct(m.phase_share_min)}–${pct(m.phase_share_max)}`);
  if (m.unseen_share !== undefined) parts.push(`unseen ${pct(m.unseen_share)}`);
  if (m.rule_share !== undefined) parts.push(`rule ${pct(m.rule_share)}, novel ${pct(m.novel_rule_share)}`);
  if (m.images_per_second !== undefined) parts.push(`${fixed(m.images_per_second, 0)} images/s`);
  if (m.confident_share !== undefined)
    parts.push(`confident ${pct(m.confident_share)}, classes ${pct(Math.min(...m.class_shares))}–${pct(Math.max(...m.class_shares))}`);
  if (m.inpaint_kept_share !== undefined) parts.push(`inpainting kept ${pct(m.inpaint_kept_share)}, label ${pct(m.inpaint_label_share)}`);
  if (m.peak_rss_bytes !== undefined) parts.push(`peak RSS ${fixed(m.peak_rss_bytes / 2 ** 20, 0)} MiB`);
  if (m.torch_reference !== undefined)
    parts.push(
      `PyTorch ${m.torch_reference.bound_nats === null ? '' : `${m.torch_reference.bound_nats} nats, `}${m.torch_reference.images_per_second} images/s (from the issue)`,
    );
  return parts.join(', ');
}

/** A row's bound: bits per sequence ± s.e.; images (rows with bound_nats): nats per image and bits per pixel. */
function boundText(m) {
  if (m.bound_nats !== undefined) {
    const stderr = typeof m.bound_stderr === 'number' ? ` ± ${fixed(m.bound_stderr * Math.LN2, 2)}` : '';
    return `${fixed(m.bound_nats, 2)}${stderr} nats/image (${fixed(m.bits_per_pixel, 4)} bits/pixel)`;
  }
  return `${fixed(m.bound_bits, 4)} ± ${fixed(m.bound_stderr, 4)}`;
}

function describe(m) {
  return [`bound ${boundText(m)}`, samplesText(m), `train ${fixed(m.train_seconds, 1)} s`].filter((part) => part !== '').join(', ');
}

/** Bound, valid share and per-phase shares for a run evaluated on all 5 heartbeat phases. */
function heartbeatMetrics(evaluation) {
  const shares = evaluation.per_sequence.map((entry) => entry.share);
  return {
    bound_bits: evaluation.bound_bits,
    bound_stderr: evaluation.bound_stderr,
    bound_repeats: evaluation.bound_repeats,
    samples: evaluation.samples,
    valid_share: evaluation.prop_train + evaluation.prop_data,
    phase_share_min: Math.min(...shares),
    phase_share_max: Math.max(...shares),
  };
}

// ---- target 1: the default command -------------------------------------------------------------
if (only.includes('default')) {
  const run = train('default', []);
  const ev = evaluate(run.model, ['--repeats', size(200, 8), '--samples', size(10000, 500)]);
  const m = { ...heartbeatMetrics(ev.result), train_seconds: run.trainSeconds, wall_seconds: run.wallSeconds };
  record(
    'default',
    'train (defaults, T = 2000)',
    m,
    [
      ['bound <= 2.35', m.bound_bits <= 2.35],
      ['stderr <= 0.005', m.bound_stderr <= 0.005],
      ['valid >= 99.5%', m.valid_share >= 0.995],
      ['each phase 20% ± 2%', m.phase_share_min >= 0.18 && m.phase_share_max <= 0.22],
      ['training <= 60 s', m.train_seconds <= 60],
    ],
    [run.command, ev.command],
  );
}

// ---- target 2: T = 100 -------------------------------------------------------------------------
if (only.includes('t100')) {
  const run = train('t100', ['--T', '100', '--steps', steps(4000)]);
  const ev = evaluate(run.model, ['--repeats', size(400, 8), '--samples', size(2000, 200)]);
  const m = { ...heartbeatMetrics(ev.result), train_seconds: run.trainSeconds };
  record('t100', 'train --T 100', m, [['bound <= 2.40', m.bound_bits <= 2.4]], [run.command, ev.command]);
}

// ---- target 3: the held-out phase --------------------------------------------------------------
if (only.includes('holdout')) {
  const dataCommand = ['data', 'heartbeat', '--holdout', '1', '--out', 'holdout'];
  cli(dataCommand);
  const data = ['--data', 'holdout/train.txt', '--val', 'holdout/val.txt'];
  for (const [name, label, args] of [
    ['holdout-circular', 'circular, C = 32', ['--arch', 'circular', '--hidden', '32', '--batch-size', '64', '--steps', steps(3000)]],
    ['holdout-mlp', 'mlp (the default; for contrast)', ['--steps', steps(4000)]],
  ]) {
    const run = train(name, [...data, ...args]);
    const ev = evaluate(run.model, ['--data', 'holdout/val.txt', '--repeats', size(100, 8), '--samples', size(2000, 200)]);
    const m = {
      bound_bits: ev.result.bound_bits,
      bound_stderr: ev.result.bound_stderr,
      unseen_share: ev.result.prop_data,
      valid_share: ev.result.prop_train + ev.result.prop_data,
      samples: ev.result.samples,
      train_seconds: run.trainSeconds,
    };
    const targets =
      name === 'holdout-circular'
        ? [
            ['unseen phase >= 10%', m.unseen_share >= 0.1],
            ['bound on it <= 4', m.bound_bits <= 4],
            ['valid >= 99.5%', m.valid_share >= 0.995],
          ]
        : [];
    record('holdout', label, m, targets, [shown(dataCommand), run.command, ev.command]);
  }
}

// ---- target 4: rule-based data sets ------------------------------------------------------------
/**
 * The one U-Net config of rules-unet (issue 12: no per-data-set flags). Channels 16, not the default
 * 32: a step costs about C^2, and at L = 64, T = 2000 the evaluations during training cost more than
 * the steps, so they run every 500 steps on 4 repeats and 16 samples instead of 8 and 64.
 * `--unet-variant NAME` measures a candidate recipe instead (UNET_VARIANTS: keys that differ from
 * the base; its rows carry `variant` and replace only that variant's rows).
 */
const UNET_BASE = { model: { architecture: 'unet', channels: 16 }, training: { eval_repeats: 4, eval_samples: 16 } };
/** Candidate recipes (issue 12's sweep): model/training keys over UNET_BASE, and steps / eval-every. */
const UNET_VARIANTS = {
  base: {},
  'dropout0.1': { model: { dropout: 0.1 } },
  'dropout0.2': { model: { dropout: 0.2 } },
  wd1: { training: { weight_decay: 1 } },
  c8: { model: { channels: 8 } },
  'c8-eval250': { model: { channels: 8 }, evalEvery: 250 },
  'dropout0.1-c8': { model: { dropout: 0.1, channels: 8 } },
  // channels growing with depth (8, 16, 32, 32, …), the MNIST recipe's shape
  'c8-grow32': { model: { channels: 8, max_channels: 32 } },
};
const variantIndex = argv.indexOf('--unet-variant');
const unetVariant = variantIndex >= 0 ? argv[variantIndex + 1] : 'base';
if (!(unetVariant in UNET_VARIANTS)) throw new Error(`--unet-variant: unknown variant "${unetVariant}" (variants: ${Object.keys(UNET_VARIANTS).join(', ')})`);
/** YAML of the base config with a variant's keys over it (two levels: section, key). */
function unetConfig(variant) {
  const lines = [];
  for (const section of ['model', 'training']) {
    const keys = { ...UNET_BASE[section], ...(variant[section] ?? {}) };
    lines.push(`${section}:`, ...Object.entries(keys).map(([key, value]) => `  ${key}: ${value}`));
  }
  return `${lines.join('\n')}\n`;
}
const UNET_CONFIG = unetConfig(UNET_VARIANTS[unetVariant]);
const unetEvalEvery = String(quick ? 25 : (UNET_VARIANTS[unetVariant].evalEvery ?? 500));
const unetArgs = [
  '--config',
  'unet-rules.yaml',
  '--batch-size',
  '64',
  '--steps',
  steps(UNET_VARIANTS[unetVariant].steps ?? 1500),
  '--eval-every',
  unetEvalEvery,
];
/** `rows` if at most `count`, else `count` of them drawn without replacement by a seeded shuffle (in file order). */
function valSubset(rows, count) {
  if (rows.length <= count) return rows;
  let state = 12;
  const random = () => {
    // mulberry32, as in bench/datasets.js
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const index = rows.map((_, i) => i);
  for (let i = index.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [index[i], index[j]] = [index[j], index[i]];
  }
  return index
    .slice(0, count)
    .sort((a, b) => a - b)
    .map((i) => rows[i]);
}
// [group, train arguments, Monte-Carlo chains of the final bound, samples drawn]
for (const [group, archArgs, chains, sampleCount] of [
  ['rules', [], 512, 1000],
  ['rules-circular', ['--arch', 'circular', '--hidden', '32'], 512, 1000],
  ['rules-unet', unetArgs, 256, 500],
]) {
  if (!only.includes(group)) continue;
  if (group === 'rules-unet') writeFileSync(join(work, 'unet-rules.yaml'), UNET_CONFIG);
  for (const dataset of ruleDatasets()) {
    if (sets && !sets.includes(dataset.name)) continue;
    const dir = join('rules', dataset.name);
    writeDataset(dataset, join(work, dir));
    const run = train(`${group}-${dataset.name}`, [
      '--data',
      `${dir}/train.txt`,
      '--val',
      `${dir}/val.txt`,
      ...archArgs,
      ...(quick && group !== 'rules-unet' ? ['--steps', steps(4000)] : []),
    ]);
    // About `chains` Monte-Carlo chains in all, at least 2 per sequence (for a standard error).
    // rules-unet: at most chains / 2 val sequences, a seeded random subset (val-subset.txt), so the
    // bound is an unbiased estimate of the val mean at a fraction of the cost (parity12 has 1434).
    const valRows = group === 'rules-unet' ? valSubset(dataset.val, chains / 2) : dataset.val;
    const valFile = valRows === dataset.val ? `${dir}/val.txt` : `${dir}/val-subset.txt`;
    if (valRows !== dataset.val) writeFileSync(join(work, valFile), `${valRows.join('\n')}\n`);
    const repeats = Math.max(2, Math.ceil((quick ? 32 : chains) / valRows.length));
    const ev = evaluate(run.model, ['--data', valFile, '--repeats', String(repeats), '--samples', '1']);
    const drawn = generate(run.model, quick ? 100 : sampleCount);
    const score = scoreSamples(dataset, drawn.samples);
    const m = {
      dataset: dataset.name,
      bound_bits: ev.result.bound_bits,
      bound_stderr: ev.result.bound_stderr,
      n_train: dataset.train.length,
      n_val: dataset.val.length,
      n_val_evaluated: valRows.length,
      ...score,
      train_seconds: run.trainSeconds,
      wall_seconds: run.wallSeconds,
      loadavg_after_train: loadavg(),
    };
    if (group === 'rules-unet') {
      m.variant = unetVariant;
      m.config_file = { 'unet-rules.yaml': UNET_CONFIG };
      m.stopped = run.stopped;
      m.eval_seconds = run.evalSeconds;
    }
    record(
      group,
      `${dataset.name} (L = ${dataset.length}, ${dataset.train.length} train / ${dataset.val.length} val)${group === 'rules-unet' && unetVariant !== 'base' ? ` [${unetVariant}]` : ''}`,
      m,
      [],
      [run.command, ev.command, drawn.command],
    );
  }
}

// ---- target 5: estimators x architectures ------------------------------------------------------
if (only.includes('estimators')) {
  const settings = [
    ['mlp', 'sampled', ['--objective', 'sampled', '--steps', steps(4000)]],
    ['mlp', 'importance', ['--objective', 'importance', '--steps', steps(4000)]],
    ['mlp', 'full', ['--objective', 'full', '--batch-size', '4', '--steps', steps(1000)]],
    ['circular', 'sampled', ['--arch', 'circular', '--hidden', '32', '--objective', 'sampled', '--batch-size', '64', '--steps', steps(3000)]],
    ['circular', 'importance', ['--arch', 'circular', '--hidden', '32', '--objective', 'importance', '--batch-size', '64', '--steps', steps(3000)]],
    ['circular', 'full', ['--arch', 'circular', '--hidden', '32', '--objective', 'full', '--batch-size', '2', '--steps', steps(500)]],
  ];
  for (const [arch, objective, args] of settings) {
    const run = train(`estimator-${arch}-${objective}`, args);
    const ev = evaluate(run.model, ['--repeats', size(100, 8), '--samples', size(1000, 100)]);
    const m = { ...heartbeatMetrics(ev.result), train_seconds: run.trainSeconds };
    record('estimators', `${arch}, ${objective}`, m, [['bound <= 2.35', m.bound_bits <= 2.35]], [run.command, ev.command]);
  }
}

// ---- target 6: MNIST (issue 13) ----------------------------------------------------------------
/**
 * The U-Net recipe of the mnist group (the issue's PyTorch reference: T = 1000, the paper schedule,
 * x0 parameterisation, batch 128, Adam 2e-3; here with importance-sampled t, the EMA of the weights,
 * batch 32: at the same images seen, 4x the updates gave a better bound (val-50, 25,600 images:
 * 76.8 nats at batch 32 vs 90.5 at batch 128; batch 16: 77.3), and a cosine decay of the learning
 * rate over the steps this machine makes in the time budget: a calibration run of the same command
 * (MNIST_CALIBRATION_SECONDS, not counted in the budget) measures the steps per second, and the
 * schedule is sized to MNIST_SCHEDULE_SHARE of what fits, so the decay ends before the stop even
 * if the machine slows a little (a fixed guess left 6 of 30 minutes unused once the kernels got faster).
 */
const MNIST_BATCH = 32;
const MNIST_CALIBRATION_SECONDS = 60;
const MNIST_WARMUP_SECONDS = 15;
const MNIST_SCHEDULE_SHARE = 0.95;
const MNIST_CONFIG = `model:
  architecture: unet
  channels: 16
  max_channels: 64
  T: 1000
  schedule: paper
  parameterisation: x0
training:
  batch_size: ${MNIST_BATCH}
  lr: 0.002
  lr_schedule: cosine
  warmup_steps: 100
  objective: importance
  eval_every: 0
  early_stopping: 0
`;
/** Samples per `generate` call of the mnist group. */
const SAMPLE_CHUNK = 125;
/** Network calls of each sampling and inpainting chain (`generate --steps`; T = 1000 would take 10x as long). */
const MNIST_SAMPLE_STEPS = 100;

/** --quick: a small U-Net and T = 100, so that the whole pipeline runs in a few minutes (not the figures). */
const MNIST_QUICK_CONFIG = MNIST_CONFIG.replace('  T: 1000\n', '  T: 100\n').replace(
  '  channels: 16\n  max_channels: 64\n',
  '  channels: 4\n  max_channels: 16\n',
);

/** The PyTorch reference of the issue (its own script, this machine's 2 cores): not measured here. */
const MNIST_TORCH_REFERENCE = {
  source: 'from the issue (issue 13: ../shared/anchors/mnist_torch_reference.py, 285k-parameter U-Net, T = 1000, batch 128, 2 cores)',
  bound_nats: { 5: 84.6, 10: 74.6, 20: 69.5, 30: 72.9 },
  images_per_second: '94–147',
  evaluation: 'val bound on 200 images, 100 t-strata',
};

/** `--name VALUE` of the bench's own arguments (a number), or `fallback`. */
function numberOption(name, fallback) {
  const index = argv.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(argv[index + 1]);
  if (!(value > 0)) throw new Error(`--${name}: expected a positive number, got ${argv[index + 1]}`);
  return value;
}

/** The CLI as a child process, without blocking (for several at a time); resolves to stdout. */
function cliAsync(args) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) =>
      code === 0 ? resolvePromise(stdout) : reject(new Error(`bernoulli-diffusion ${args.join(' ')} failed (${code}):\n${stderr}`)),
    );
  });
}

/** Runs `jobs` (functions returning promises) at most `parallel` at a time; results in order. */
async function inParallel(jobs, parallel) {
  const results = new Array(jobs.length);
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const k = next++;
      results[k] = await jobs[k]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, lane));
  return results;
}

/** Peak resident memory (VmHWM, bytes) of a live process so far, from /proc; undefined where there is none. */
function peakRss(pid) {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The records of a metrics.jsonl (an unfinished last line is skipped). */
function metricsRecords(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return line.trim() === '' ? [] : [JSON.parse(line)];
      } catch {
        return [];
      }
    });
}

/**
 * Trains until the run's `elapsed` (training wall time in metrics.jsonl) reaches `seconds`, then
 * stops it with SIGINT (train checkpoints and exits 130); polls the peak RSS meanwhile.
 */
function trainForSeconds(args, runDir, seconds) {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let peak = 0;
    let stopping = false;
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const poll = setInterval(() => {
      peak = Math.max(peak, peakRss(child.pid) ?? 0);
      const last = metricsRecords(join(runDir, 'metrics.jsonl')).at(-1);
      // metrics.jsonl is flushed every 5 s; the wall clock is the fallback (start-up, a stalled flush).
      const wall = (performance.now() - started) / 1000;
      if (!stopping && ((last?.elapsed ?? 0) >= seconds || wall >= seconds + 60)) {
        stopping = true;
        child.kill('SIGINT');
      }
    }, 1000);
    child.on('close', (code) => {
      clearInterval(poll);
      if (code === 0 || code === 130) resolvePromise({ peakRssBytes: peak || undefined, wallSeconds: (performance.now() - started) / 1000 });
      else reject(new Error(`bernoulli-diffusion ${args.join(' ')} failed (${code}):\n${stderr}`));
    });
  });
}

/** The checkpoints of a run with the training time each was written at (the metrics record of its step, or the last before it). */
function checkpointsWithElapsed(runDir) {
  const records = metricsRecords(join(runDir, 'metrics.jsonl'));
  return readdirSync(join(runDir, 'checkpoints'))
    .map((name) => /^step-(\d+)\.safetensors$/.exec(name))
    .filter(Boolean)
    .map((match) => {
      const step = Number(match[1]);
      const record = records.filter((r) => r.step <= step).at(-1);
      return { step, elapsed: record?.elapsed ?? 0, path: `results/${basename(runDir)}/checkpoints/${match[0]}` };
    })
    .sort((a, b) => a.step - b.step);
}

if (only.includes('mnist')) {
  // --quick: a smoke run of a minute with few samples (not the figures).
  const minutes = numberOption('minutes', quick ? 1 : 30);
  const checkpointEvery = numberOption('checkpoint-every', quick ? 10 : 200);
  const valImages = numberOption('val-images', quick ? 20 : 200);
  const strata = numberOption('strata', 100);
  const sampleCount = numberOption('samples', quick ? 20 : 1000);
  const inpaintCount = numberOption('inpaint', quick ? 4 : 100);
  /** Chains per completion (`generate --particles`; default: generate's own). */
  const particles = numberOption('particles', undefined);
  const sampleSteps = numberOption('sample-steps', MNIST_SAMPLE_STEPS);
  const cores = availableParallelism();
  const dataCommand = ['data', 'mnist', '--out', 'mnist', '--threshold', '0.5', '--val', '1000', '--seed', '0'];
  cli(dataCommand);
  const split = readMnistSplit(join(work, 'mnist'));
  const { results: baselines, classifier } = mnistBaselines(split, { log: (line) => console.log(`[mnist] ${line}`) });
  const pixels = split.train.length;
  const perImage = (nats) => ({ bound_nats: nats, bound_bits: nats / Math.LN2, bits_per_pixel: nats / Math.LN2 / pixels });
  record(
    'mnist',
    'independent Bernoulli per pixel',
    { ...perImage(baselines.independent.nll_nats), n_train: split.train.rows, n_val: split.val.rows, train_seconds: baselines.independent.seconds },
    [],
    [shown(dataCommand), 'bench/mnist.js: independentBernoulli (Laplace α = 1)'],
  );
  const mixture = baselines.mixtures[0];
  record(
    'mnist',
    `${mixture.components}-component Bernoulli mixture (EM)`,
    { ...perImage(mixture.nll_nats), train_seconds: mixture.seconds },
    [],
    [`bench/mnist.js: bernoulliMixture (${mixture.components} components, ${mixture.iterations} iterations, α = ${mixture.alpha}, seed ${mixture.seed})`],
  );

  // The val images the bound is measured on: a seeded random subset (the reference used 200).
  const valLines = readFileSync(join(work, 'mnist', 'val.txt'), 'utf8')
    .split('\n')
    .filter((line) => /^[01]+$/.test(line.trim()));
  const boundRows = valSubset(valLines, valImages);
  const boundFile = `mnist/val-${boundRows.length}.txt`;
  writeFileSync(join(work, boundFile), `# shape: 28x28\n${boundRows.join('\n')}\n`);
  // The stratified-t estimator where the CLI has it (one draw per stratum, as the reference; the
  // standard error is then the spread across images); else the full sum over t, twice per image (two
  // repeats: the fewest that give a standard error).
  const estimator = spawnSync(process.execPath, [CLI, 'evaluate', '--help'], { encoding: 'utf8' }).stdout.includes('--strata')
    ? ['--strata', String(strata), '--repeats', '1']
    : ['--repeats', '2'];

  // --dropout P: the U-Net's dropout (model.dropout; default 0, none), written into the config the rows record
  const dropout = numberOption('dropout', undefined);
  const baseConfig = quick ? MNIST_QUICK_CONFIG : MNIST_CONFIG;
  const config = dropout === undefined ? baseConfig : baseConfig.replace('  parameterisation: x0\n', `  parameterisation: x0\n  dropout: ${dropout}\n`);
  writeFileSync(join(work, 'mnist-unet.yaml'), config);
  const name = 'mnist-unet';
  const runDir = join(work, 'results', name);
  const commonArgs = [
    ...['train', '--config', 'mnist-unet.yaml', '--data', 'mnist/train.txt', '--val', 'mnist/val.txt'],
    ...['--workers', String(cores), '--quiet', '--no-plots'],
  ];
  // Steps per second of this command on this machine now (--steps-per-second skips the measurement).
  let stepsPerSecond = numberOption('steps-per-second', undefined);
  if (stepsPerSecond === undefined) {
    const calibrationName = `${name}-calibration`;
    const calibrationSeconds = Math.min(MNIST_CALIBRATION_SECONDS, minutes * 60);
    const calibrationArgs = [...commonArgs, '--steps', '1000000', '--checkpoint-every', '1000000', '--name', calibrationName];
    console.log(`[mnist] calibrating: ${calibrationSeconds} s of ${shown(calibrationArgs)}`);
    await trainForSeconds(calibrationArgs, join(work, 'results', calibrationName), calibrationSeconds);
    // the rate after the first MNIST_WARMUP_SECONDS (start-up: the first steps are several times slower)
    const records = metricsRecords(join(work, 'results', calibrationName, 'metrics.jsonl'));
    const first = records.find((r) => r.elapsed >= Math.min(MNIST_WARMUP_SECONDS, calibrationSeconds / 4)) ?? records[0];
    const last = records.at(-1);
    if (!first || !last || last.elapsed <= first.elapsed) throw new Error('mnist: the calibration run wrote too few metrics');
    stepsPerSecond = (last.step - first.step) / (last.elapsed - first.elapsed);
  }
  const steps = Math.max(1, Math.round(minutes * 60 * stepsPerSecond * MNIST_SCHEDULE_SHARE));
  const trainArgs = [...commonArgs, '--steps', String(steps), '--checkpoint-every', String(checkpointEvery), '--name', name];
  console.log(`[mnist] training for ${minutes} minutes on ${cores} cores (${stepsPerSecond.toFixed(2)} steps/s measured): ${shown(trainArgs)}`);
  const run = await trainForSeconds(trainArgs, runDir, minutes * 60);
  const results = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8'));
  const imagesPerSecond = (results.step * MNIST_BATCH) / results.timings.train_seconds;
  const checkpoints = checkpointsWithElapsed(runDir);
  const marks = [...new Set([...[5, 10, 30].filter((m) => m < minutes), minutes])];
  for (const [k, mark] of marks.entries()) {
    const nearest = checkpoints.reduce((best, c) => (Math.abs(c.elapsed - 60 * mark) < Math.abs(best.elapsed - 60 * mark) ? c : best));
    const ev = evaluate(nearest.path, ['--data', boundFile, '--train', 'mnist/train.txt', '--samples', '1', ...estimator]);
    const m = {
      ...perImage(ev.result.bound_bits * Math.LN2),
      // The Monte-Carlo standard error; where the estimator gives none, the spread across images.
      bound_stderr: Number.isFinite(ev.result.bound_stderr) ? ev.result.bound_stderr : ev.result.bound_sequence_stderr,
      estimator: estimator.join(' '),
      bound_repeats: ev.result.bound_repeats,
      bound_strata: ev.result.bound_strata,
      n_val_evaluated: boundRows.length,
      minutes: mark,
      step: nearest.step,
      elapsed_seconds: nearest.elapsed,
      images_per_second: imagesPerSecond,
      calibrated_steps_per_second: stepsPerSecond,
      schedule_steps: steps,
      train_seconds: results.timings.train_seconds,
      peak_rss_bytes: run.peakRssBytes,
      workers: cores,
      loadavg_after_train: loadavg(),
      config_file: { 'mnist-unet.yaml': config },
      torch_reference: { ...MNIST_TORCH_REFERENCE, bound_nats: MNIST_TORCH_REFERENCE.bound_nats[mark] ?? null },
    };
    const commands = [shown(dataCommand), `${shown(trainArgs)}  (stopped with SIGINT at ${minutes} min of training)`, ev.command];
    const targets = [];
    if (k === marks.length - 1) {
      // Samples: `cores` generate processes at a time, each a chunk of at most SAMPLE_CHUNK samples
      // (a U-Net's activations grow with the batch) with its own seed.
      const chunks = Math.ceil(sampleCount / SAMPLE_CHUNK);
      const shares = Array.from({ length: chunks }, (_, j) => Math.floor(sampleCount / chunks) + (j < sampleCount % chunks ? 1 : 0));
      const sampleArgs = shares.map((n, j) => [
        ...['generate', nearest.path, '-n', String(n), '--seed', String(j + 1)],
        ...['--steps', String(sampleSteps), '--workers', '1', '--json'],
      ]);
      const drawn = (
        await inParallel(
          sampleArgs.map((args) => () => cliAsync(args)),
          cores,
        )
      ).flatMap((out) => JSON.parse(out));
      const score = scoreDigitSamples(classifier, bitRowsFromStrings(drawn, [28, 28]));
      // Inpainting: the top 14 rows of the first `inpaintCount` val digits given, one completion each.
      const rows = Math.min(inpaintCount, split.val.rows);
      const inpaintArgs = Array.from({ length: rows }, (_, r) => [
        'generate',
        nearest.path,
        '-n',
        '1',
        '--seed',
        String(r + 1),
        '--given-top-half',
        `mnist/val.txt:${r + 1}`,
        ...(particles === undefined ? [] : ['--particles', String(particles)]),
        ...['--steps', String(sampleSteps), '--workers', '1', '--json'],
      ]);
      const completions = (
        await inParallel(
          inpaintArgs.map((args) => () => cliAsync(args)),
          cores,
        )
      ).map((out) => JSON.parse(out)[0]);
      const known = 14 * 28;
      const kept = completions.filter((line, r) => line.slice(0, known) === valLines[r].trim().slice(0, known)).length;
      const predicted = classifier.predict(bitRowsFromStrings(completions, [28, 28]));
      let sameLabel = 0;
      for (let r = 0; r < rows; r++) {
        const probs = predicted.subarray(r * 10, r * 10 + 10);
        if (probs.indexOf(Math.max(...probs)) === split.valLabels[r]) sameLabel++;
      }
      Object.assign(m, {
        samples: score.samples,
        sampling_steps: sampleSteps,
        confident_share: score.confident_share,
        class_shares: score.class_shares,
        inpaint_digits: rows,
        inpaint_particles: particles ?? "generate's default",
        inpaint_kept_share: kept / rows,
        inpaint_label_share: sameLabel / rows,
      });
      commands.push(...sampleArgs.map(shown), `${shown(inpaintArgs[0])}  … rows 1–${rows}`);
      targets.push(
        ['val bound <= 65 nats/image', m.bound_nats <= 65],
        ['samples: >= 80% confident', m.confident_share >= 0.8],
        ['samples: every class 5–15%', m.class_shares.every((s) => s >= 0.05 && s <= 0.15)],
        ['inpainting keeps every given pixel', kept === rows],
        ['inpainting: >= 70% the original label', m.inpaint_label_share >= 0.7],
        ['peak RSS <= 1 GB', m.peak_rss_bytes !== undefined && m.peak_rss_bytes <= 1e9],
      );
    }
    record('mnist', `U-Net${dropout === undefined ? '' : ` (dropout ${dropout})`}, ${mark} min of training (step ${nearest.step})`, m, targets, commands);
  }
}

// ---- the table and the JSON --------------------------------------------------------------------
function printTable(tableRows) {
  const table = [
    ['group', 'row', 'bound ± s.e. (bits; mnist: nats/image)', 'samples', 'train s', 'targets'],
    ...tableRows.map((r) => [
      r.group,
      r.label,
      boundText(r),
      samplesText(r),
      fixed(r.train_seconds, 1),
      r.targets.length === 0
        ? ''
        : r.targets.every((t) => t.met)
          ? 'all met'
          : `not met: ${r.targets
              .filter((t) => !t.met)
              .map((t) => t.name)
              .join('; ')}`,
    ]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((line) => line[c].length)));
  for (const line of table)
    console.log(
      line
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    );
}
console.log('');
printTable(rows);

const output = {
  format: 'bernoulli-diffusion-quality/1',
  date: new Date().toISOString(),
  quick,
  machine: { cpus: availableParallelism(), model: cpus()[0]?.model ?? 'unknown', node: process.version, loadavg_at_end: loadavg() },
  rows,
};
// A short mnist run (--minutes under 30) is a smoke run too: its numbers are not the benchmark's.
const mnistSmoke = only.includes('mnist') && numberOption('minutes', quick ? 1 : 30) < 30;
if (!quick && !mnistSmoke) {
  // --only: the other groups' rows of an earlier run are kept (each row says when it was measured).
  const path = join(ROOT, 'bench', 'quality.json');
  const earlier = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')).rows ?? []) : [];
  // --sets: only the rows of those data sets are replaced (older rows name the set first in their label).
  const setOrder = (row) => (row.group.startsWith('rules') ? setNames.indexOf(row.dataset ?? row.label.split(' ')[0]) : 0);
  const sameVariant = (row) => row.group !== 'rules-unet' || (row.variant ?? 'base') === unetVariant;
  const rerun = (row) =>
    only.includes(row.group) && sameVariant(row) && (!sets || !row.group.startsWith('rules') || sets.includes(row.dataset ?? row.label.split(' ')[0]));
  output.rows = [...earlier.filter((row) => !rerun(row)), ...rows].sort(
    (a, b) => GROUPS.indexOf(a.group) - GROUPS.indexOf(b.group) || setOrder(a) - setOrder(b),
  );
  writeFileSync(path, JSON.stringify(output, null, 2) + '\n');
  console.log('\nwrote bench/quality.json');
} else {
  mkdirSync(join(ROOT, 'test-output'), { recursive: true });
  writeFileSync(join(ROOT, 'test-output', 'quality-quick.json'), JSON.stringify(output, null, 2) + '\n');
  console.log('\nquick run: wrote test-output/quality-quick.json (not the benchmark figures)');
}
if (argv.includes('--keep')) console.log(`kept the work directory (checkpoints, data): ${work}`);
else rmSync(work, { recursive: true, force: true });
