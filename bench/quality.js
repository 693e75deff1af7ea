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
 * Bounds are in bits per sequence, ± one Monte-Carlo standard error (the core's `evaluate`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ruleDatasets, scoreSamples, writeDataset } from './datasets.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin', 'bernoulli-diffusion.js');
const GROUPS = ['default', 't100', 'holdout', 'rules', 'rules-circular', 'rules-unet', 'estimators'];

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
  return parts.join(', ');
}

function describe(m) {
  return `bound ${fixed(m.bound_bits, 4)} ± ${fixed(m.bound_stderr, 4)}, ${samplesText(m)}, train ${fixed(m.train_seconds, 1)} s`;
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

// ---- the table and the JSON --------------------------------------------------------------------
function printTable(tableRows) {
  const table = [
    ['group', 'row', 'bound ± s.e. (bits)', 'samples', 'train s', 'targets'],
    ...tableRows.map((r) => [
      r.group,
      r.label,
      `${fixed(r.bound_bits, 4)} ± ${fixed(r.bound_stderr, 4)}`,
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
if (!quick) {
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
rmSync(work, { recursive: true, force: true });
