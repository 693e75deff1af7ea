/**
 * The paper's reverse network in plain TypeScript (DESIGN.md §3): a shared MLP L -> H -> H with
 * ReLU, then a separate linear readout H -> L for every time step t, giving logits
 * (the sigmoid and the parameterisation live in objective.ts). Forward and hand-written backward,
 * batched over rows, each row with its own t. Mirrors crate/src/network/paper.rs: the same
 * parameter layout (names, shapes, order, [in, out] row-major weights, y = x·W + b) and the
 * same input encoding, so parameters can be copied between the two by name.
 */
import { Rng } from './rng.js';

/** One named tensor inside the flat parameter vector. */
export interface ParameterGroup {
  name: string;
  shape: number[];
  offset: number;
  /** Whether AdamW's decoupled weight decay applies (weights yes, biases no). */
  decay: boolean;
}

export interface PaperShape {
  /** L: bits per sequence. */
  length: number;
  /** H: hidden width. */
  hidden: number;
  /** Number of shared hidden layers (the paper's L -> H -> H is 2). */
  layers?: number;
  /** T: number of diffusion steps (one readout each). */
  timesteps: number;
}

/** Weight-initialisation stream of a model with seed s: new Rng(s ^ INIT_STREAM) (crate/src/model.rs). */
export const INIT_STREAM = 0x6e6574776f726b21n; // "network!"

/** The generator the Rust `Model::new(…, seed)` initialises its network from. */
export function initialisationRng(seed: number | bigint): Rng {
  return new Rng(BigInt(seed) ^ INIT_STREAM);
}

/** The network's input for a bit x_t in {0, 1}: the bit itself (as in paper.rs, not 2x - 1). */
export function encodeInput(bit: number): number {
  return bit;
}

export function paperLayout({ length: L, hidden: H, layers = 2, timesteps: T }: PaperShape): ParameterGroup[] {
  const groups: ParameterGroup[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], decay: boolean) => {
    groups.push({ name, shape, offset, decay });
    offset += shape.reduce((a, b) => a * b, 1);
  };
  for (let i = 0; i < layers; i++) {
    add(`shared.${i}.weight`, [i === 0 ? L : H, H], true);
    add(`shared.${i}.bias`, [H], false);
  }
  add('readout.weight', [T, H, L], true);
  add('readout.bias', [T, L], false);
  return groups;
}

export function parameterCount(layout: ParameterGroup[]): number {
  const last = layout[layout.length - 1];
  return last.offset + last.shape.reduce((a, b) => a * b, 1);
}

/**
 * Named tensors from a flat parameter vector and its layout (e.g. the wasm RawModel's
 * `parameters()` and `layoutJson()`), as subarray views.
 */
export function tensorsFromFlat(layout: Pick<ParameterGroup, 'name' | 'shape' | 'offset'>[], flat: Float32Array): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const g of layout) {
    const n = g.shape.reduce((a, b) => a * b, 1);
    if (g.offset + n > flat.length) throw new RangeError(`tensor '${g.name}' runs past the ${flat.length} parameters`);
    out[g.name] = flat.subarray(g.offset, g.offset + n);
  }
  return out;
}

/** y[r, ·] = x[r, ·]·W + b for `rows` rows; W is [nIn, nOut] row-major at wOffset (i-k-j loop). */
function linearForward(
  x: Float32Array,
  rows: number,
  nIn: number,
  nOut: number,
  params: Float32Array,
  wOffset: number,
  bOffset: number,
  y: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const yRow = r * nOut;
    for (let j = 0; j < nOut; j++) y[yRow + j] = params[bOffset + j];
    for (let k = 0; k < nIn; k++) {
      const xk = x[r * nIn + k];
      if (xk === 0) continue; // ReLU outputs and 0/1 inputs are often exactly 0
      const wRow = wOffset + k * nOut;
      for (let j = 0; j < nOut; j++) y[yRow + j] += xk * params[wRow + j];
    }
  }
}

/**
 * Given dy = dLoss/dy of y = x·W + b: ADD dW += xᵀ·dy and db += Σ_r dy into grad, and, if dx is
 * given, SET dx = dy·Wᵀ.
 */
function linearBackward(
  x: Float32Array,
  dy: Float32Array,
  rows: number,
  nIn: number,
  nOut: number,
  params: Float32Array,
  wOffset: number,
  bOffset: number,
  grad: Float32Array,
  dx: Float32Array | null,
): void {
  for (let r = 0; r < rows; r++) {
    const dyRow = r * nOut;
    for (let j = 0; j < nOut; j++) grad[bOffset + j] += dy[dyRow + j];
    for (let k = 0; k < nIn; k++) {
      const xk = x[r * nIn + k];
      const wRow = wOffset + k * nOut;
      if (xk !== 0) {
        for (let j = 0; j < nOut; j++) grad[wRow + j] += xk * dy[dyRow + j];
      }
      if (dx !== null) {
        let sum = 0;
        for (let j = 0; j < nOut; j++) sum += dy[dyRow + j] * params[wRow + j];
        dx[r * nIn + k] = sum;
      }
    }
  }
}

export class PaperNetwork {
  readonly shape: Required<PaperShape>;
  readonly layout: ParameterGroup[];
  readonly parameters: Float32Array;
  private readonly sharedWeight: number[];
  private readonly sharedBias: number[];
  private readonly readoutWeight: number;
  private readonly readoutBias: number;
  // State of the last forward pass, kept for backward.
  private rows = 0;
  private capacity = 0;
  private input = new Float32Array(0);
  /** activations[i]: rows × H, the ReLU output of shared layer i. */
  private activations: Float32Array[] = [];
  private t = new Int32Array(0);
  private dHidden = new Float32Array(0);
  private dHiddenPrevious = new Float32Array(0);

  /**
   * With an rng: the Rust initialisation (weights drawn in layout order from N(0, std²) by
   * Rng.normal, std = sqrt(2/fan_in) for shared layers and sqrt(1/H) for readouts; biases 0).
   * Without: all zeros (load the tensors by name).
   */
  constructor(shape: PaperShape, rng?: Rng) {
    this.shape = { layers: 2, ...shape };
    this.layout = paperLayout(this.shape);
    this.parameters = new Float32Array(parameterCount(this.layout));
    const offset = (name: string) => this.layout.find((g) => g.name === name)!.offset;
    this.sharedWeight = Array.from({ length: this.shape.layers }, (_, i) => offset(`shared.${i}.weight`));
    this.sharedBias = Array.from({ length: this.shape.layers }, (_, i) => offset(`shared.${i}.bias`));
    this.readoutWeight = offset('readout.weight');
    this.readoutBias = offset('readout.bias');
    if (rng) this.initialise(rng);
  }

  private initialise(rng: Rng): void {
    for (const group of this.layout) {
      if (!group.decay) continue; // biases start at 0
      const isReadout = group.name === 'readout.weight';
      const fanIn = isReadout ? this.shape.hidden : group.shape[0];
      const std = isReadout ? Math.sqrt(1 / fanIn) : Math.sqrt(2 / fanIn);
      const n = group.shape.reduce((a, b) => a * b, 1);
      for (let i = 0; i < n; i++) this.parameters[group.offset + i] = std * rng.normal(); // as paper.rs: N(0,1) rounded to f32, times std, rounded to f32 on store
    }
  }

  /** A network with the given named tensors (e.g. `RawModel`'s, from the wasm core); all must be present. */
  static fromTensors(shape: PaperShape, tensors: Record<string, ArrayLike<number>>): PaperNetwork {
    const network = new PaperNetwork(shape);
    const missing = network.layout.filter((g) => !(g.name in tensors)).map((g) => g.name);
    if (missing.length > 0) throw new Error(`missing tensors: ${missing.join(', ')}`);
    network.loadTensors(Object.fromEntries(network.layout.map((g) => [g.name, tensors[g.name]])));
    return network;
  }

  /** The tensor called `name`, as a view into the flat parameters. */
  tensor(name: string): Float32Array {
    const group = this.layout.find((g) => g.name === name);
    if (!group) throw new Error(`no parameter tensor '${name}'`);
    const n = group.shape.reduce((a, b) => a * b, 1);
    return this.parameters.subarray(group.offset, group.offset + n);
  }

  /** Copies named tensors in (e.g. from the Rust/wasm model); every name must exist with its length. */
  loadTensors(tensors: Record<string, ArrayLike<number>>): void {
    for (const [name, values] of Object.entries(tensors)) {
      const target = this.tensor(name);
      if (values.length !== target.length) {
        throw new Error(`tensor '${name}' has ${values.length} values, expected ${target.length}`);
      }
      target.set(values);
    }
  }

  /** The named tensors (copies), in layout order. */
  tensors(): Record<string, Float32Array> {
    return Object.fromEntries(this.layout.map((g) => [g.name, this.tensor(g.name).slice()]));
  }

  private ensureCapacity(rows: number): void {
    if (rows <= this.capacity) return;
    const { length: L, hidden: H, layers } = this.shape;
    this.capacity = rows;
    this.input = new Float32Array(rows * L);
    this.activations = Array.from({ length: layers }, () => new Float32Array(rows * H));
    this.dHidden = new Float32Array(rows * H);
    this.dHiddenPrevious = new Float32Array(rows * H);
    this.t = new Int32Array(rows);
  }

  /** logits[r, i] for rows r with noisy bits xt[r, ·] (0/1) at time t[r] (1..T). */
  forward(xt: ArrayLike<number>, t: ArrayLike<number>, rows: number, logits: Float32Array): void {
    const { length: L, hidden: H, layers, timesteps: T } = this.shape;
    const p = this.parameters;
    this.ensureCapacity(rows);
    this.rows = rows;
    for (let i = 0; i < rows * L; i++) this.input[i] = encodeInput(xt[i]);
    for (let layer = 0; layer < layers; layer++) {
      const x = layer === 0 ? this.input : this.activations[layer - 1];
      const h = this.activations[layer];
      // h_{i+1} = relu(h_i·W_i + b_i)
      linearForward(x, rows, layer === 0 ? L : H, H, p, this.sharedWeight[layer], this.sharedBias[layer], h);
      for (let i = 0; i < rows * H; i++) if (h[i] < 0) h[i] = 0;
    }
    const last = this.activations[layers - 1];
    // logits[r] = h_n[r]·R_t + r_t with t = t[r]; R_t is [H, L] inside readout.weight [T, H, L]
    for (let r = 0; r < rows; r++) {
      const tr = t[r];
      if (!(tr >= 1 && tr <= T)) throw new RangeError(`t must be in 1..${T}, got ${tr}`);
      this.t[r] = tr;
      const wBase = this.readoutWeight + (tr - 1) * H * L;
      const bBase = this.readoutBias + (tr - 1) * L;
      const out = r * L;
      for (let i = 0; i < L; i++) logits[out + i] = p[bBase + i];
      for (let k = 0; k < H; k++) {
        const hk = last[r * H + k];
        if (hk === 0) continue;
        const wRow = wBase + k * L;
        for (let i = 0; i < L; i++) logits[out + i] += hk * p[wRow + i];
      }
    }
  }

  /** Given dLoss/dlogits for the rows of the last forward, ADD dLoss/dθ into grad. */
  backward(dlogits: Float32Array, grad: Float32Array): void {
    const { length: L, hidden: H, layers } = this.shape;
    const p = this.parameters;
    const rows = this.rows;
    const last = this.activations[layers - 1];
    // Readouts: dR_t += h_nᵀ·dlogits, dr_t += Σ dlogits, dh_n = dlogits·R_tᵀ (row by row)
    for (let r = 0; r < rows; r++) {
      const tr = this.t[r];
      const wBase = this.readoutWeight + (tr - 1) * H * L;
      const bBase = this.readoutBias + (tr - 1) * L;
      const d = r * L;
      for (let i = 0; i < L; i++) grad[bBase + i] += dlogits[d + i];
      for (let k = 0; k < H; k++) {
        const hk = last[r * H + k];
        const wRow = wBase + k * L;
        let sum = 0;
        if (hk !== 0) {
          // ReLU: no gradient flows to units with h = 0, so their dh stays 0
          for (let i = 0; i < L; i++) {
            grad[wRow + i] += hk * dlogits[d + i];
            sum += dlogits[d + i] * p[wRow + i];
          }
        }
        this.dHidden[r * H + k] = sum;
      }
    }
    // Shared layers, last to first: through the ReLU, then the linear map.
    for (let layer = layers - 1; layer >= 0; layer--) {
      const h = this.activations[layer];
      for (let i = 0; i < rows * H; i++) if (h[i] === 0) this.dHidden[i] = 0; // ReLU
      const x = layer === 0 ? this.input : this.activations[layer - 1];
      const nIn = layer === 0 ? L : H;
      const dx = layer === 0 ? null : this.dHiddenPrevious;
      linearBackward(x, this.dHidden, rows, nIn, H, p, this.sharedWeight[layer], this.sharedBias[layer], grad, dx);
      if (dx) [this.dHidden, this.dHiddenPrevious] = [this.dHiddenPrevious, this.dHidden];
    }
  }
}
