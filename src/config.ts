/**
 * The run configuration: built-in defaults (in ONE place: `DEFAULTS`), YAML parsing that keeps
 * line numbers, command-line overrides, and validation whose messages name the file and line (or
 * the flag), the key and the problem. Browser-safe: text in, objects out; paths are resolved by a
 * function the caller passes.
 *
 * Layers, later ones winning: DEFAULTS <- the config file <- command-line flags. Two pairs exclude
 * each other: training.steps / training.epochs and data.train / data.heartbeat; a layer that sets
 * one of a pair drops the other from the layers below it (and setting both in one layer is an error).
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, stringify, type Node as YamlNode } from 'yaml';
import { formatShape, parseShape } from './data.js';
import { UserError } from './errors.js';

/** The reverse network: `mlp` (the default), `paper` (a shared MLP with one readout per time step, as in the paper), `circular` or `unet` (see docs/ARCHITECTURE.md). */
export type Architecture = 'mlp' | 'paper' | 'circular' | 'unet';
/** The U-Net's convolution padding: `zero`, or `circular` (equivariant to cyclic shifts). */
export type Padding = 'zero' | 'circular';
/** The U-Net's learned position embedding: `auto` (on with zero padding, off with circular), `on` or `off`. */
export type PositionEmbedding = 'auto' | 'on' | 'off';
/** What the network predicts: `x0` (the clean bits) or `direct` (the reverse kernel's probabilities). */
export type Parameterisation = 'x0' | 'direct';
/** The forward noise schedule β_t. */
export type Schedule = 'paper' | 'linear' | 'cosine';
/** How t is chosen per example: `full` (every t), `sampled` (uniform), `importance` (proportional to the term's size). */
export type Objective = 'full' | 'sampled' | 'importance';
/** The learning rate after warm-up: constant, or cosine decay to zero. */
export type LrSchedule = 'constant' | 'cosine';

/** The `model:` section. The sequence length L is not configured: it comes from the data. */
export interface ModelSection {
  T: number;
  architecture: Architecture;
  parameterisation: Parameterisation;
  schedule: Schedule;
  hidden: number;
  layers: number;
  time_embedding: number;
  kernel: number;
  /** unet: channels per position, levels (0: from the shape), residual blocks per level, padding, position embedding. */
  channels: number;
  /** unet: channels double per level down to this cap, C_j = min(C·2^j, max_channels); 0: `channels` at every level. */
  max_channels: number;
  levels: number;
  blocks: number;
  padding: Padding;
  position_embedding: PositionEmbedding;
  /**
   * unet: dropout probability p in every residual block while training (0: none). Sampling and
   * evaluation never drop (inverted dropout); other architectures take only 0.
   */
  dropout: number;
  /**
   * The shape of one row: [L] or [H, W] (row-major, H·W = L); null: from the training data's
   * `# shape:` header, else [L]. Written "28x28", 784 or [28, 28].
   */
  shape: number[] | null;
}

/** The `training:` section of a run config. */
export interface TrainingSection {
  /** Exactly one of steps / epochs is a number, the other null. */
  steps: number | null;
  epochs: number | null;
  batch_size: number;
  lr: number;
  lr_schedule: LrSchedule;
  warmup_steps: number;
  /** The cosine schedule's floor, as a fraction of lr. */
  min_lr_ratio: number;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  clip_norm: number;
  ema_decay: number;
  objective: Objective;
  eval_every: number;
  eval_repeats: number;
  eval_sequences: number;
  eval_samples: number;
  /** null: 0 (the full sum over t) when T · L <= 65,536, else 64 strata. */
  eval_strata: number | null;
  /** Network calls of the chains that draw the samples at evaluations; null: every step (T) when T · L <= 65,536, else 100 (x0 models). */
  sample_steps: number | null;
  checkpoint_every: number;
  log_every: number;
  early_stopping: number;
  seed: number;
}

/** The synthetic heartbeat data set: L bits, one 1 every P, K phases held out, `count` training rows. */
export interface HeartbeatSection {
  length: number;
  period: number;
  holdout: number;
  count: number;
}

/** Exactly one of train / heartbeat is set. */
export interface DataSection {
  train?: string;
  val?: string;
  heartbeat?: HeartbeatSection;
}

/** A whole run config (config.yaml): model, training and data sections. */
export interface RunConfig {
  model: ModelSection;
  training: TrainingSection;
  data: DataSection;
}

/** What the wasm core takes (structurally the same as `ModelConfig` in model.ts). */
export interface CoreModelConfig
  extends Omit<ModelSection, 'channels' | 'max_channels' | 'levels' | 'blocks' | 'padding' | 'position_embedding' | 'dropout' | 'shape'> {
  length: number;
  /** The shape of one row: [L] or [H, W] with H·W = L (absent or null: [L]). */
  shape?: number[] | null;
  /** The unet keys are optional here: the core has the same defaults. */
  channels?: number;
  max_channels?: number;
  levels?: number;
  blocks?: number;
  padding?: Padding;
  /** null: on for zero padding, off for circular. */
  position_embedding?: boolean | null;
  dropout?: number;
}

/**
 * What the wasm core takes (structurally the same as `TrainingConfig` in model.ts): every field of
 * the core's TrainingConfig (crate/src/optimiser.rs), which has no defaults of its own.
 */
export interface CoreTrainingConfig {
  lr: number;
  lr_schedule: LrSchedule;
  warmup_steps: number;
  total_steps: number;
  min_lr_ratio: number;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  clip_norm: number;
  ema_decay: number;
  objective: Objective;
}

/** The built-in defaults: the only place they are written down (config.example.yaml mirrors them; a test checks). */
export const DEFAULTS: RunConfig = {
  model: {
    T: 2000,
    architecture: 'mlp',
    parameterisation: 'x0',
    schedule: 'paper',
    hidden: 96,
    layers: 2,
    time_embedding: 32,
    kernel: 0,
    channels: 32,
    max_channels: 0,
    levels: 0,
    blocks: 1,
    padding: 'zero',
    position_embedding: 'auto',
    dropout: 0,
    shape: null,
  },
  training: {
    steps: 2000,
    epochs: null,
    batch_size: 256,
    lr: 0.002,
    lr_schedule: 'cosine',
    warmup_steps: 100,
    min_lr_ratio: 0.1,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0,
    clip_norm: 1,
    ema_decay: 0.995,
    objective: 'importance',
    eval_every: 250,
    eval_repeats: 8,
    eval_sequences: 16,
    eval_samples: 64,
    eval_strata: null,
    sample_steps: null,
    checkpoint_every: 1000,
    log_every: 10,
    early_stopping: 5,
    seed: 0,
  },
  data: {
    heartbeat: { length: 20, period: 5, holdout: 0, count: 1000 },
  },
};

// ---- the schema ------------------------------------------------------------------------------

type LeafSpec =
  | { kind: 'int'; min: number; max: number; nullable?: boolean; even?: boolean }
  | { kind: 'number'; min: number; max: number; minOpen?: boolean; maxOpen?: boolean; nullable?: boolean }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'path' }
  /** A row shape: "28x28", "20", 784 or [28, 28]; null allowed (from the data). */
  | { kind: 'shape' };
type SectionSpec = { kind: 'section'; keys: Record<string, Spec> };
type Spec = LeafSpec | SectionSpec;

const int = (min: number, max: number, extra: { nullable?: boolean; even?: boolean } = {}): LeafSpec => ({ kind: 'int', min, max, ...extra });
const num = (min: number, max: number, extra: { minOpen?: boolean; maxOpen?: boolean; nullable?: boolean } = {}): LeafSpec => ({
  kind: 'number',
  min,
  max,
  ...extra,
});
const oneOf = (...values: string[]): LeafSpec => ({ kind: 'enum', values });
const section = (keys: Record<string, Spec>): SectionSpec => ({ kind: 'section', keys });

/** The longest sequence (bits) a model takes. */
export const MAX_LENGTH = 4096;

const SCHEMA = section({
  model: section({
    T: int(1, 100_000),
    architecture: oneOf('mlp', 'paper', 'circular', 'unet'),
    parameterisation: oneOf('x0', 'direct'),
    schedule: oneOf('paper', 'linear', 'cosine'),
    hidden: int(1, 4096),
    layers: int(1, 64),
    time_embedding: int(2, 4096, { even: true }),
    kernel: int(0, MAX_LENGTH),
    channels: int(1, 1024),
    max_channels: int(0, 1024),
    levels: int(0, 12),
    blocks: int(1, 16),
    padding: oneOf('zero', 'circular'),
    position_embedding: oneOf('auto', 'on', 'off'),
    dropout: num(0, 1, { maxOpen: true }),
    shape: { kind: 'shape' },
  }),
  training: section({
    steps: int(1, 1e9, { nullable: true }),
    epochs: num(0, 1e6, { minOpen: true, nullable: true }),
    batch_size: int(1, 65_536),
    lr: num(0, 10, { minOpen: true }),
    lr_schedule: oneOf('constant', 'cosine'),
    warmup_steps: int(0, 1e9),
    min_lr_ratio: num(0, 1),
    beta1: num(0, 1, { maxOpen: true }),
    beta2: num(0, 1, { maxOpen: true }),
    eps: num(0, 1, { minOpen: true }),
    weight_decay: num(0, 10),
    clip_norm: num(0, 1e9),
    ema_decay: num(0, 1, { maxOpen: true }),
    objective: oneOf('sampled', 'importance', 'full'),
    eval_every: int(0, 1e9),
    eval_repeats: int(1, 10_000),
    eval_sequences: int(0, 1e9),
    eval_samples: int(1, 1_000_000),
    eval_strata: int(0, 1e9, { nullable: true }),
    sample_steps: int(1, 1e9, { nullable: true }),
    checkpoint_every: int(0, 1e9),
    log_every: int(1, 1e9),
    early_stopping: int(0, 1e6),
    seed: int(0, 4_294_967_295),
  }),
  data: section({
    train: { kind: 'path' },
    val: { kind: 'path' },
    heartbeat: section({
      length: int(1, MAX_LENGTH),
      period: int(1, MAX_LENGTH),
      holdout: int(0, MAX_LENGTH),
      count: int(1, 10_000_000),
    }),
  }),
});

// ---- layers of raw values with their origins --------------------------------------------------

/** A value as given, and where: "file.yaml:12", "--lr" or "default". */
export interface Leaf {
  value: unknown;
  origin: string;
  /** For paths from a config file: the directory they are relative to. */
  baseDir?: string;
}

/** One layer: dotted key ("training.lr") -> leaf. Sections set in the layer are listed too. */
export interface Layer {
  leaves: Map<string, Leaf>;
  /** Sections that appear in the layer (dotted), with where; e.g. "data.heartbeat". */
  sections: Map<string, string>;
}

function emptyLayer(): Layer {
  return { leaves: new Map(), sections: new Map() };
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (an empty value)';
  // A data file given as --config is one long text: show its start only (the message is one line).
  if (typeof value === 'string')
    return value.length > 60 ? `the text ${JSON.stringify(`${value.slice(0, 60)}…`)} (${value.length} characters)` : `the text ${JSON.stringify(value)}`;
  if (typeof value === 'number' && Number.isNaN(value)) return 'something that is not a number';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value);
}

function specAt(path: string): Spec | undefined {
  let spec: Spec = SCHEMA;
  for (const part of path.split('.')) {
    if (spec.kind !== 'section' || !Object.hasOwn(spec.keys, part)) return undefined;
    spec = spec.keys[part];
  }
  return spec;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

function unknownKeyMessage(path: string, known: string[]): string {
  const name = path.split('.').pop()!;
  const parent = path.split('.').slice(0, -1).join('.');
  if (known.length === 0) return `unknown key ${path}`;
  const close = known.filter((k) => editDistance(k.toLowerCase(), name.toLowerCase()) <= 2);
  const hint = close.length > 0 ? `did you mean ${parent ? `${parent}.` : ''}${close[0]}?` : `known keys: ${known.join(', ')}`;
  return `unknown key ${path} (${hint})`;
}

/** Parses a YAML config file into a layer, keeping each key's line. Errors name `source:line`. */
export function parseConfigYaml(text: string, source: string, baseDir?: string): Layer {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (node: { range?: [number, number, number] | null } | null | undefined): number => (node?.range ? lineCounter.linePos(node.range[0]).line : 1);
  if (doc.errors.length > 0) {
    const error = doc.errors[0];
    const line = error.linePos?.[0]?.line ?? lineCounter.linePos(error.pos[0]).line;
    const message = error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new UserError(`${source}:${line}: YAML syntax error: ${message}`);
  }
  const layer = emptyLayer();
  const walk = (node: unknown, path: string, spec: SectionSpec) => {
    if (node === null || node === undefined || (isScalar(node) && node.value === null)) return; // "model:" with nothing under it
    if (!isMap(node)) {
      const what = isSeq(node) ? 'a list' : describe(isScalar(node) ? node.value : node);
      throw new UserError(`${source}:${lineOf(node as YamlNode)}: ${path || 'the file'}: expected a mapping of keys, got ${what}`);
    }
    for (const pair of node.items) {
      const keyNode = pair.key;
      const key = isScalar(keyNode) ? keyNode.value : keyNode;
      const line = lineOf(isScalar(keyNode) ? keyNode : (pair.value as YamlNode));
      if (typeof key !== 'string' && typeof key !== 'number') {
        throw new UserError(`${source}:${line}: keys must be names, got ${describe(key)}`);
      }
      const childPath = path ? `${path}.${key}` : String(key);
      const childSpec = spec.keys[String(key)];
      if (!Object.hasOwn(spec.keys, String(key))) {
        throw new UserError(`${source}:${line}: ${unknownKeyMessage(childPath, Object.keys(spec.keys))}`);
      }
      if (childSpec.kind === 'section') {
        layer.sections.set(childPath, `${source}:${line}`);
        walk(pair.value, childPath, childSpec);
      } else {
        const valueNode = pair.value;
        if (childSpec.kind === 'shape' && isSeq(valueNode)) {
          layer.leaves.set(childPath, { value: valueNode.toJSON(), origin: `${source}:${line}`, baseDir });
          continue;
        }
        if (isMap(valueNode) || isSeq(valueNode)) {
          throw new UserError(`${source}:${line}: ${childPath}: expected ${expectation(childSpec)}, got ${isMap(valueNode) ? 'a mapping' : 'a list'}`);
        }
        const value = isScalar(valueNode) ? valueNode.value : null;
        layer.leaves.set(childPath, { value, origin: `${source}:${line}`, baseDir });
      }
    }
  };
  walk(doc.contents, '', SCHEMA);
  return layer;
}

/** Command-line flags that set config keys: flag name (as yargs gives it) -> dotted key. */
export const FLAG_KEYS: Record<string, string> = {
  T: 'model.T',
  arch: 'model.architecture',
  hidden: 'model.hidden',
  lr: 'training.lr',
  'batch-size': 'training.batch_size',
  steps: 'training.steps',
  epochs: 'training.epochs',
  seed: 'training.seed',
  'checkpoint-every': 'training.checkpoint_every',
  'eval-every': 'training.eval_every',
  'early-stopping': 'training.early_stopping',
  shape: 'model.shape',
  objective: 'training.objective',
  data: 'data.train',
  val: 'data.val',
};

/** A layer from command-line flags (only those given); paths are relative to `cwd`. */
export function flagsLayer(flags: Record<string, unknown>, cwd?: string): Layer {
  const layer = emptyLayer();
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const value = flags[flag];
    if (value === undefined) continue;
    layer.leaves.set(key, { value: Array.isArray(value) ? value[value.length - 1] : value, origin: `--${flag}`, baseDir: cwd });
  }
  return layer;
}

/** A layer with given values, all from one origin (used by tests and by `data heartbeat`). */
export function valuesLayer(values: Record<string, unknown>, origin: (key: string) => string): Layer {
  const layer = emptyLayer();
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined) layer.leaves.set(key, { value, origin: origin(key) });
  }
  return layer;
}

function defaultsLayer(): Layer {
  const layer = emptyLayer();
  const visit = (value: unknown, path: string) => {
    if (typeof value === 'object' && value !== null) {
      if (path) layer.sections.set(path, 'default');
      for (const [key, child] of Object.entries(value)) visit(child, path ? `${path}.${key}` : key);
    } else {
      layer.leaves.set(path, { value, origin: 'default' });
    }
  };
  visit(DEFAULTS, '');
  return layer;
}

// ---- validation -------------------------------------------------------------------------------

function expectation(spec: LeafSpec): string {
  switch (spec.kind) {
    case 'int':
      return spec.even ? 'an even integer' : 'an integer';
    case 'number':
      return 'a number';
    case 'enum':
      return `one of ${spec.values.join(', ')}`;
    case 'path':
      return 'a file path';
    case 'shape':
      return 'a shape such as "28x28" (H x W) or 20 (L), or a list [H, W]';
  }
}

function rangeText(spec: Extract<LeafSpec, { kind: 'int' | 'number' }>): string {
  const low = spec.kind === 'number' && spec.minOpen ? `> ${spec.min}` : `>= ${spec.min}`;
  const high = spec.kind === 'number' && spec.maxOpen ? `< ${spec.max}` : `<= ${spec.max}`;
  return `${low} and ${high}`;
}

/** Checks one value against its spec; returns the problem or undefined. */
function leafProblem(spec: LeafSpec, value: unknown): string | undefined {
  if (value === null && (spec.kind === 'int' || spec.kind === 'number') && spec.nullable) return undefined;
  switch (spec.kind) {
    case 'int':
    case 'number': {
      if (typeof value !== 'number' || Number.isNaN(value)) return `expected ${expectation(spec)}, got ${describe(value)}`;
      if (spec.kind === 'int' && !Number.isInteger(value)) return `expected ${expectation(spec)}, got ${value}`;
      const tooLow = spec.kind === 'number' && spec.minOpen ? value <= spec.min : value < spec.min;
      const tooHigh = spec.kind === 'number' && spec.maxOpen ? value >= spec.max : value > spec.max;
      if (tooLow || tooHigh) return `out of range: must be ${rangeText(spec)}, got ${value}`;
      if (spec.kind === 'int' && spec.even && value % 2 !== 0) return `expected ${expectation(spec)}, got ${value}`;
      return undefined;
    }
    case 'enum':
      return typeof value === 'string' && spec.values.includes(value) ? undefined : `expected ${expectation(spec)}, got ${describe(value)}`;
    case 'path':
      return typeof value === 'string' && value.trim() !== '' ? undefined : `expected ${expectation(spec)}, got ${describe(value)}`;
    case 'shape':
      return value === null || shapeValue(value) !== undefined ? undefined : `expected ${expectation(spec)}, got ${describe(value)}`;
  }
}

/** A shape as written in a config or flag ("28x28", "20", 784, [28, 28]) as [H, W] or [L]; undefined when malformed. */
export function shapeValue(value: unknown): number[] | undefined {
  if (typeof value === 'string') return parseShape(value);
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 1 ? [value] : undefined;
  if (Array.isArray(value) && (value.length === 1 || value.length === 2) && value.every((n) => Number.isSafeInteger(n) && n >= 1)) return value.slice();
  return undefined;
}

/** A config resolved from layers, with where each value came from. */
export interface ResolvedConfig {
  config: RunConfig;
  /** Where a dotted key's value came from ("file.yaml:12", "--lr", "default"), for later messages. */
  origin(key: string): string;
}

/** Turns "my.yaml:3" / "--lr" / "default" plus a key into the prefix of an error message. */
export function located(origin: string, key: string, problem: string): UserError {
  return new UserError(origin.startsWith('--') ? `${origin}: ${problem}` : `${origin}: ${key}: ${problem}`);
}

/**
 * Merges DEFAULTS with the given layers (later wins), applies the exclusive pairs, validates every
 * value and the cross-key rules, and resolves data paths (`resolvePath(baseDir, path)`).
 */
export function resolveConfig(layers: Layer[], resolvePath: (baseDir: string | undefined, path: string) => string = (_, p) => p): ResolvedConfig {
  const merged = new Map<string, Leaf>();
  const exclusive: [string, string][] = [
    ['training.steps', 'training.epochs'],
    ['data.train', 'data.heartbeat'],
  ];
  // Every given value must be valid, even one that a later layer overrides.
  for (const layer of layers) {
    for (const [key, leaf] of layer.leaves) {
      const spec = specAt(key);
      if (spec === undefined || spec.kind === 'section') throw new UserError(`${leaf.origin}: ${unknownKeyMessage(key, [])}`);
      const problem = leafProblem(spec, leaf.value);
      if (problem !== undefined) throw located(leaf.origin, key, problem);
    }
  }
  for (const layer of [defaultsLayer(), ...layers]) {
    const sets = (key: string) =>
      specAt(key)?.kind === 'section'
        ? layer.sections.has(key) || [...layer.leaves.keys()].some((k) => k.startsWith(`${key}.`))
        : layer.leaves.has(key) && layer.leaves.get(key)!.value !== null;
    const whereSet = (key: string) =>
      layer.leaves.get(key)?.origin ?? layer.sections.get(key) ?? [...layer.leaves.entries()].find(([k]) => k.startsWith(`${key}.`))![1].origin;
    for (const [a, b] of exclusive) {
      if (sets(a) && sets(b)) {
        const origin = whereSet(b);
        throw origin.startsWith('--')
          ? new UserError(`${whereSet(a)} and ${origin}: give one of ${a} and ${b}, not both`)
          : new UserError(`${origin}: give one of ${a} and ${b}, not both`);
      }
      for (const [mine, other] of [
        [a, b],
        [b, a],
      ]) {
        if (sets(mine)) for (const key of [...merged.keys()]) if (key === other || key.startsWith(`${other}.`)) merged.delete(key);
      }
    }
    for (const [key, leaf] of layer.leaves) merged.set(key, leaf);
  }

  const origins = new Map<string, string>();
  for (const [key, leaf] of merged) {
    const spec = specAt(key);
    if (spec === undefined || spec.kind === 'section') {
      throw new UserError(`${leaf.origin}: ${unknownKeyMessage(key, [])}`);
    }
    const problem = leafProblem(spec, leaf.value);
    if (problem !== undefined) throw located(leaf.origin, key, problem);
    origins.set(key, leaf.origin);
  }
  const value = (key: string) => merged.get(key)?.value;
  const origin = (key: string) => origins.get(key) ?? 'default';

  const pick = <T>(prefix: string, keys: string[]): T => Object.fromEntries(keys.map((k) => [k, value(`${prefix}.${k}`)])) as T;
  const model = pick<ModelSection>('model', Object.keys(DEFAULTS.model));
  model.shape = model.shape === null || model.shape === undefined ? null : (shapeValue(model.shape) as number[]);
  const training = pick<TrainingSection>('training', Object.keys(DEFAULTS.training));
  training.steps = (value('training.steps') as number | null | undefined) ?? null;
  training.epochs = (value('training.epochs') as number | null | undefined) ?? null;
  if (training.steps === null && training.epochs === null) {
    throw located(origin('training.steps'), 'training.steps', 'give training.steps or training.epochs');
  }

  const data: DataSection = {};
  for (const key of ['train', 'val'] as const) {
    const leaf = merged.get(`data.${key}`);
    if (leaf !== undefined) data[key] = resolvePath(leaf.baseDir, leaf.value as string);
  }
  if (data.train === undefined) {
    const heartbeat = pick<HeartbeatSection>('data.heartbeat', ['length', 'period', 'holdout', 'count']);
    for (const key of ['length', 'period', 'holdout', 'count'] as const) {
      if (heartbeat[key] === undefined) heartbeat[key] = DEFAULTS.data.heartbeat![key];
    }
    if (heartbeat.period > heartbeat.length) {
      throw located(
        origin('data.heartbeat.period'),
        'data.heartbeat.period',
        `out of range: the period (${heartbeat.period}) must not exceed the length (${heartbeat.length})`,
      );
    }
    if (heartbeat.holdout >= heartbeat.period) {
      throw located(
        origin('data.heartbeat.holdout'),
        'data.heartbeat.holdout',
        `out of range: must be less than the period (${heartbeat.period}), got ${heartbeat.holdout}`,
      );
    }
    data.heartbeat = heartbeat;
  }
  if (model.max_channels !== 0 && model.max_channels < model.channels) {
    throw located(
      origin('model.max_channels'),
      'model.max_channels',
      `max_channels (${model.max_channels}) must be 0 (channels at every level) or at least model.channels (${model.channels})`,
    );
  }
  if (model.dropout > 0 && model.architecture !== 'unet') {
    throw located(origin('model.dropout'), 'model.dropout', `dropout is implemented by the unet only (architecture is ${model.architecture}); use 0`);
  }
  // Early stopping is on by default; without evaluations (eval_every 0) it has nothing to act on:
  // the default is turned off (so the stored config says what ran), an explicit request is an error.
  if (training.early_stopping > 0 && training.eval_every === 0) {
    if (origin('training.early_stopping') === 'default') training.early_stopping = 0;
    else throw located(origin('training.early_stopping'), 'training.early_stopping', 'early stopping needs evaluations: set training.eval_every > 0');
  }
  return { config: { model, training, data }, origin };
}

/** Checks the config against the data's sequence length (known only once the data is read). */
export function checkAgainstLength(resolved: ResolvedConfig, length: number, dataSource: string): void {
  if (length > MAX_LENGTH) throw new UserError(`${dataSource}: sequences of ${length} bits are longer than the ${MAX_LENGTH}-bit limit`);
  const kernel = resolved.config.model.kernel;
  if (kernel > length) {
    throw located(resolved.origin('model.kernel'), 'model.kernel', `out of range: the kernel (${kernel}) must not exceed the sequence length (${length})`);
  }
}

/** Total optimiser steps: `steps`, or enough batches for `epochs` passes over `trainRows` rows. */
export function totalSteps(training: TrainingSection, trainRows: number): number {
  if (training.steps !== null) return training.steps;
  return Math.max(1, Math.ceil(((training.epochs as number) * trainRows) / training.batch_size));
}

/**
 * The model config the core takes: the `model:` section plus the sequence length L and the row
 * shape: model.shape when set, else `dataShape` (the training data's header), else [L].
 */
export function coreModelConfig(model: ModelSection, length: number, dataShape?: readonly number[]): CoreModelConfig {
  const position_embedding = model.position_embedding === 'auto' ? null : model.position_embedding === 'on';
  const shape = (model.shape ?? dataShape ?? [length]).slice();
  return completeModelConfig({ length, ...model, position_embedding, shape });
}

/**
 * The row shape of a run: model.shape (from --shape or the config) when set, else the training
 * data's. A shape whose product is not the data's row length is a UserError naming where it came
 * from; so is a validation file whose 2-D header disagrees with it.
 */
export function runShape(
  resolved: ResolvedConfig,
  train: { length: number; shape?: readonly number[]; source: string },
  val?: { shape?: readonly number[]; source: string },
): number[] {
  const configured = resolved.config.model.shape;
  const shape = (configured ?? train.shape ?? [train.length]).slice();
  const product = shape.reduce((a, b) => a * b, 1);
  if (configured !== null && product !== train.length) {
    throw located(
      resolved.origin('model.shape'),
      'model.shape',
      `the shape ${formatShape(shape)} has ${product} positions but the rows of ${train.source} have ${train.length} bits`,
    );
  }
  if (val?.shape !== undefined && val.shape.length === 2 && formatShape(val.shape) !== formatShape(shape)) {
    throw new UserError(
      `${val.source}: its shape header says ${formatShape(val.shape)} but the run's shape is ${formatShape(shape)}${configured !== null ? ` (${resolved.origin('model.shape')})` : ` (from ${train.source})`}`,
    );
  }
  return shape;
}

/**
 * A model config with every field the core reads (it has no defaults of its own): the U-Net keys a
 * hand-written config may leave out come from DEFAULTS, the one place defaults live.
 */
export function completeModelConfig(config: CoreModelConfig): Required<CoreModelConfig> {
  const { channels, max_channels, levels, blocks, padding, dropout } = DEFAULTS.model;
  return { channels, max_channels, levels, blocks, padding, position_embedding: null, dropout, shape: null, ...config } as Required<CoreModelConfig>;
}

/** The training config the core takes: the optimiser settings of the `training:` section and the total number of steps (for the schedule). */
export function coreTrainingConfig(training: TrainingSection, total: number): CoreTrainingConfig {
  const { lr, lr_schedule, warmup_steps, min_lr_ratio, beta1, beta2, eps, weight_decay, clip_norm, ema_decay, objective } = training;
  return { lr, lr_schedule, warmup_steps, total_steps: total, min_lr_ratio, beta1, beta2, eps, weight_decay, clip_norm, ema_decay, objective };
}

/** The resolved config as YAML (loadable again with --config): only one of steps/epochs, one of train/heartbeat. */
export function configToYaml(config: RunConfig, comments: string[] = []): string {
  const training: Record<string, unknown> = { ...config.training };
  if (config.training.epochs === null) delete training.epochs;
  else delete training.steps;
  const data: Record<string, unknown> = {};
  if (config.data.train !== undefined) data.train = config.data.train;
  if (config.data.heartbeat !== undefined) data.heartbeat = config.data.heartbeat;
  if (config.data.val !== undefined) data.val = config.data.val;
  const header = comments.map((line) => `# ${line}\n`).join('');
  // A shape reads best as "28x28" (the form of the data header and --shape).
  const model = { ...config.model, shape: config.model.shape === null ? null : formatShape(config.model.shape) };
  return header + stringify({ model, training, data });
}

/** A run config stored as JSON (checkpoint metadata) back into a RunConfig, validated. */
export function configFromJson(json: string, source: string): RunConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new UserError(`${source}: the run configuration in the checkpoint metadata is not valid JSON`);
  }
  return resolveConfig([configLayer(parsed, source)]).config;
}

/** A layer holding a whole (parsed JSON) config, e.g. a checkpoint's, to resolve flags on top of. */
export function configLayer(parsed: unknown, source: string): Layer {
  const layer = emptyLayer();
  const visit = (value: unknown, path: string) => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      if (path) layer.sections.set(path, source);
      for (const [key, child] of Object.entries(value)) visit(child, path ? `${path}.${key}` : key);
    } else if (value !== null) {
      layer.leaves.set(path, { value, origin: `${source} (checkpoint metadata)` });
    }
  };
  visit(parsed, '');
  for (const key of layer.leaves.keys()) {
    if (specAt(key) === undefined) throw new UserError(`${source}: checkpoint metadata: ${unknownKeyMessage(key, [])}`);
  }
  return layer;
}
