/**
 * Inference weights for other tools (browser-safe): the weights a model samples with (the EMA when
 * it has one), named and laid out as PyTorch would hold them, in a safetensors file whose metadata
 * describes the network. docs/FORMAT.md specifies the file; python/bernoulli_diffusion_ref.py reads it.
 *
 * The core stores a linear layer's weight [in, out] (y = x·W + b); PyTorch's `nn.Linear` holds
 * [out, in] (y = x·Wᵀ + b). Export writes every weight the PyTorch way:
 *   linear            [in, out]    -> [out, in]
 *   paper readouts    [T, H, L]    -> [T, L, H]        (one linear layer H -> L per t)
 *   depthwise conv    [K, C]       -> [C, 1, K]        (`nn.Conv1d(C, C, K, groups=C)`)
 *   biases            [n]          -> [n]
 * The values are copied exactly (no arithmetic), so the export computes what the model computes.
 */
import { encodeSafetensors, type TensorToEncode } from './checkpoint.js';
import { UserError } from './errors.js';
import type { DiffusionModel, LayoutEntry, ModelConfig } from './model.js';

/** `__metadata__.format` of an export file (a training checkpoint says 'bernoulli-diffusion'). */
export const EXPORT_FORMAT = 'bernoulli-diffusion-export';
/** `__metadata__.format_version`: bumped when names, shapes or the forward pass change. */
export const EXPORT_FORMAT_VERSION = 1;

/** How one tensor of the core's layout becomes an export tensor ('copy': any shape, as it is). */
type Relayout = 'copy' | 'transpose' | 'transpose-last-two' | 'depthwise-conv';

/** Per architecture: every tensor name of its layout and how it is laid out in the export. */
const RULES: Record<string, [RegExp, Relayout][]> = {
  paper: [
    [/^shared\.\d+\.weight$/, 'transpose'],
    [/^shared\.\d+\.bias$/, 'copy'],
    [/^readout\.weight$/, 'transpose-last-two'],
    [/^readout\.bias$/, 'copy'],
  ],
  mlp: [
    [/^(input|time|output|blocks\.\d+\.fc[12])\.weight$/, 'transpose'],
    [/^(input|output|blocks\.\d+\.fc[12])\.bias$/, 'copy'],
  ],
  circular: [
    [/^(input|time|output|blocks\.\d+\.fc[12])\.weight$/, 'transpose'],
    [/^blocks\.\d+\.conv\.weight$/, 'depthwise-conv'],
    [/^(input|output|blocks\.\d+\.(conv|fc[12]))\.bias$/, 'copy'],
  ],
  // unet: to be filled in with the U-Net (docs/FORMAT.md, section "unet").
};

function relayoutOf(architecture: string, name: string): Relayout {
  const rules = RULES[architecture];
  if (rules === undefined) throw new UserError(`export does not support the '${architecture}' architecture yet`);
  const rule = rules.find(([pattern]) => pattern.test(name));
  if (rule === undefined) throw new Error(`export: no layout rule for tensor '${name}' of the ${architecture} architecture`);
  return rule[1];
}

/** The export tensor of one layout entry: its PyTorch shape and its values in that layout. */
function relayout(kind: Relayout, name: string, shape: number[], values: Float32Array): { shape: number[]; data: Float32Array } {
  if (kind === 'copy') return { shape: [...shape], data: values.slice() };
  const rank = { transpose: 2, 'transpose-last-two': 3, 'depthwise-conv': 2 }[kind];
  if (shape.length !== rank) throw new Error(`export: tensor '${name}' has shape [${shape.join(', ')}], expected rank ${rank} for '${kind}'`);
  // [n, a, b] -> [n, b, a] (n = 1 for a matrix): out[k, j, i] = in[k, i, j]
  const [n, a, b] = shape.length === 3 ? shape : [1, shape[0], shape[1]];
  const data = new Float32Array(values.length);
  for (let k = 0; k < n; k++) {
    const base = k * a * b;
    for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) data[base + j * a + i] = values[base + i * b + j];
  }
  if (kind === 'transpose') return { shape: [b, a], data };
  if (kind === 'transpose-last-two') return { shape: [n, b, a], data };
  return { shape: [b, 1, a], data }; // depthwise conv: taps [K, C] -> [C, 1, K]
}

/**
 * The export tensors of flat weights `values` (layout order), in layout order. Throws a UserError
 * for an architecture export does not know.
 */
export function exportTensors(architecture: string, layout: readonly LayoutEntry[], values: Float32Array): TensorToEncode[] {
  return layout.map(({ name, shape, offset }) => {
    const size = shape.reduce((p, d) => p * d, 1);
    if (offset + size > values.length) throw new Error(`export: tensor '${name}' runs past the ${values.length} weights`);
    const out = relayout(relayoutOf(architecture, name), name, shape, values.subarray(offset, offset + size));
    return { name, dtype: 'F32', shape: out.shape, data: out.data };
  });
}

/** The export file's `__metadata__`: everything needed to rebuild the network (all strings). */
export function exportMetadata(config: ModelConfig, weights: 'ema' | 'weights', step: number): Record<string, string> {
  const kernel = config.architecture === 'circular' ? (config.kernel > 0 ? config.kernel : config.length) : 0;
  return {
    format: EXPORT_FORMAT,
    format_version: String(EXPORT_FORMAT_VERSION),
    architecture: config.architecture,
    parameterisation: config.parameterisation,
    schedule: config.schedule,
    length: String(config.length),
    T: String(config.T),
    hidden: String(config.hidden),
    layers: String(config.layers),
    time_embedding: String(config.time_embedding),
    kernel: String(kernel),
    bit_order: 'bit i of a sequence is character i of its data line (0-based, left to right)',
    weights,
    step: String(step),
    // the core's model configuration, keys in a fixed order (the same bytes however it was loaded)
    model_config: JSON.stringify({
      length: config.length,
      T: config.T,
      schedule: config.schedule,
      architecture: config.architecture,
      parameterisation: config.parameterisation,
      hidden: config.hidden,
      layers: config.layers,
      time_embedding: config.time_embedding,
      kernel: config.kernel,
    }),
  };
}

/** The export file of a model: its sampling weights (EMA when on) as PyTorch-layout safetensors. */
export function exportBytes(model: DiffusionModel): Uint8Array {
  const config = model.modelConfig;
  const weights = model.trainingConfig.ema_decay > 0 ? 'ema' : 'weights';
  const tensors = exportTensors(config.architecture, model.layout(), model.inferenceParameters());
  return encodeSafetensors(tensors, exportMetadata(config, weights, model.step));
}
