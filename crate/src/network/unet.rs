//! A time-conditioned residual convolutional U-Net over the data's shape: 1-D (length L, taken
//! as a 1×L grid) or 2-D (H×W, row-major). Every tensor is channel-last: x[r, position, channel].
//! Convolutions are `crate::conv` (im2col + the matrix kernels of linalg.rs); K = 3 taps along
//! every axis longer than 1 (3 in 1-D, 3×3 in 2-D).
//!
//! With s = 2·x_t - 1 (±1), λ_t the evidence log-odds and e(t) the sinusoidal embedding of
//! `TimeFeatures`, C = `channels`, n = `levels`, B = `blocks`, D = 2C:
//!
//!   h      = conv_stem([s, λ_t·s]) + pos                (2 -> C channels; pos: [P, C], optional)
//!   time   = relu(e(t)·W1 + b1)·W2 + b2;  τ = relu(time)·W_proj + b_proj     (τ_k: C_j values per block k at level j)
//!   block_k(h) = conv2(relu(conv1(relu(h)) + b1 + τ_k)) + b2 + (h, or h·W_skip when channels differ)
//!   down:  for level j = 0..n-1: B blocks; if j < n-1: keep h as skip_j, h = downsample_j(h)
//!   up:    for j = n-2..0: h = upsample_j(h), h = [h, skip_j] (2C_j channels), B blocks (the first 2C_j -> C_j)
//!   logit[p] = relu(h[p])·w_out + b_out + λ_t·s_p
//!
//! The λ_t·s_p skip is the exact independent-bit part of the posterior (see mlp.rs); conv2 of every
//! block and w_out start at 0, so blocks start as the identity (or the 1×1 skip) and the untrained
//! network is the independent-bit posterior.
//!
//! Zero padding (default): level j is the grid halved j times (ceil per axis: odd sides keep their
//! last position), downsample_j is a stride-2 3-tap convolution (output o reads 2o-1, 2o, 2o+1),
//! upsample_j is nearest upsampling to level j's grid (crop: fine position q reads coarse q/2)
//! then a 3-tap convolution, fused into one gather.
//! Circular padding: positions wrap, and the network is the "à trous" form of the same U-Net: every
//! level keeps the full grid, level j's convolutions are dilated by 2^j instead of running on a
//! grid subsampled by 2^j, and the upsampling is the identity. Every position then runs the same
//! operations, so the network is exactly equivariant to every cyclic shift (with the position
//! embedding off, its default under circular padding); it costs about n times the top level's work.
//!
//! Defaults that scale with the shape: levels = 0 means the smallest n with the longest side
//! halved n-1 times (ceil) <= 4, e.g. L = 12: 3, L = 20: 4, L = 64: 5, 28×28: 4 (7 -> 4 at the
//! coarsest level). Then every block at the coarsest level sees that whole level, so the receptive
//! field covers the whole input.
//!
//! Channels per level: C_j = min(C·2^j, M) with M = `max_channels` (0: C at every level, the
//! default and every checkpoint before the key existed). Wider coarse levels cost little (a level
//! has a quarter of the positions of the one above it in 2-D, half in 1-D) and carry the
//! network's global structure; e.g. C = 16, M = 64 at 28×28: 16, 32, 64, 64 channels. The
//! downsample_j convolution maps C_j -> C_{j+1} channels, upsample_j C_{j+1} -> C_j, the first up
//! block at level j takes 2·C_j, and block k's τ chunk has its C_j values (τ: Σ_k C_{j(k)} per row).
//!
//! Dropout (`dropout` = p > 0, training mode only): in every block, m_d = m ⊙ mask / (1-p) with
//! mask ~ Bernoulli(1-p) per value (inverted dropout, so E[m_d] = m and evaluation uses m as is),
//! then y = conv2(relu(m_d)) + ...; relu(m ⊙ mask·s) = relu(m) ⊙ mask·s, so this is DDPM's dropout
//! between the block's two convolutions. Row r draws its masks, block by block in stage order and
//! values in (position, channel) order, from `Rng::new(noise_keys[r])` of `forward_training`.
//!
//! Layout, in order: "stem.weight" [K, 2, C], "stem.bias" [C], "position" [P, C] (if on),
//! "time.fc1.weight" [E, D], "time.fc1.bias" [D], "time.fc2.weight" [D, D], "time.fc2.bias" [D],
//! "time.proj.weight" [D, blocks·C], "time.proj.bias" [blocks·C]; then the stages in order:
//! "down.j.blocks.b.{conv1.weight [K, C_in, C], conv1.bias [C], conv2.weight [K, C, C], conv2.bias
//! [C], skip.weight [C_in, C] (only when C_in != C)}", "down.j.downsample.{weight [K, C, C], bias [C]}",
//! "up.j.upsample.{weight, bias}", "up.j.blocks.b.{...}"; "output.weight" [C, 1], "output.bias" [1].
//! Initialisation: weights uniform(±1/sqrt(fan_in)) in layout order (fan_in = K·C_in), biases 0,
//! conv2 weights and output.weight 0, position uniform(±0.1).

use super::common::{check_times, ensure_len, init_uniform, linear_backward, linear_forward, LayoutBuilder, TimeFeatures};
use super::{ParameterGroup, ReverseNetwork};
use crate::config::{ModelConfig, Padding};
use crate::conv::{conv_backward, conv_forward, AxisMap, ConvPlan, ConvShape};
use crate::linalg::{self, Epilogue};
use crate::rng::Rng;

/// Values of the im2col buffer per chunk of rows (4 MB).
const COLS_BUDGET: usize = 1 << 20;

/// The default number of levels for a grid (see the module doc): 1 + the number of halvings
/// (ceil) until the longest side is at most 4.
pub fn default_levels(grid: [usize; 2]) -> usize {
    let mut side = grid[0].max(grid[1]);
    let mut levels = 1;
    while side > 4 {
        side = side.div_ceil(2);
        levels += 1;
    }
    levels
}

/// Channels of each level (see the module doc): C_j = min(C·2^j, M), or C everywhere when M = 0.
pub fn level_widths(channels: usize, max_channels: usize, levels: usize) -> Vec<usize> {
    (0..levels).map(|j| if max_channels == 0 { channels } else { channels.saturating_mul(1 << j.min(20)).min(max_channels.max(channels)) }).collect()
}

/// Offsets of one convolution's parameters and the plan it runs.
#[derive(Clone, Copy, Debug)]
struct Conv {
    weight: usize,
    bias: usize,
    plan: usize,
    c_in: usize,
    c_out: usize,
}

#[derive(Clone, Copy, Debug)]
struct Block {
    conv1: Conv,
    conv2: Conv,
    /// The 1×1 projection of the residual when the channel counts differ (plan: pointwise).
    skip: Option<Conv>,
    /// Where this block's τ chunk (its C_j values) starts in a row of τ.
    tau_offset: usize,
    /// Index into `UnetNetwork::pre` (this block's conv1 output + τ, kept for backward).
    pre: usize,
}

/// One stage maps stream i to stream i+1.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Block(Block),
    /// A plain convolution of h (downsample, or upsample + convolution).
    Conv(Conv),
    /// h -> [h, stream[skip]].
    Concat {
        skip: usize,
    },
}

pub struct UnetNetwork {
    length: usize,
    channels: usize,
    time_width: usize,
    timesteps: usize,
    time: TimeFeatures,
    layout: Vec<ParameterGroup>,
    parameters: Vec<f32>,
    plans: Vec<ConvPlan>,
    stem: Conv,
    position: Option<usize>,
    time_fc1: (usize, usize),
    time_fc2: (usize, usize),
    time_proj: (usize, usize),
    /// Values of τ per row: Σ over blocks of their channels.
    tau_width: usize,
    stages: Vec<Stage>,
    /// Positions and channels of each stream (stream 0 = stem output).
    stream_shapes: Vec<(usize, usize)>,
    output_weight: usize,
    output_bias: usize,
    /// Values per im2col chunk (tests lower it to exercise the chunking).
    pub(crate) cols_budget: usize,
    /// Dropout probability p (0: none).
    dropout: f32,
    /// Set by `forward_training` for the next `forward` only (which clears it).
    dropout_armed: bool,
    /// The last forward pass dropped (backward then scales by 1/(1-p)).
    dropped: bool,
    /// Row r's dropout stream during a training-mode pass.
    dropout_rows: Vec<Rng>,
    // State of the last forward pass.
    rows: usize,
    /// [s, λ·s] per (row, position).
    features: Vec<f32>,
    evidence: Vec<f32>,
    embedding: Vec<f32>,
    /// relu(e·W1 + b1), rows × D.
    time_hidden: Vec<f32>,
    /// relu(time), rows × D.
    time_activation: Vec<f32>,
    /// τ, rows × blocks·C.
    tau: Vec<f32>,
    streams: Vec<Vec<f32>>,
    pre: Vec<Vec<f32>>,
    // Scratch.
    cols: Vec<f32>,
    dstreams: Vec<Vec<f32>>,
    dpre: Vec<f32>,
    dtau: Vec<f32>,
    dtime: Vec<f32>,
    dtime_hidden: Vec<f32>,
}

impl UnetNetwork {
    pub fn new(config: &ModelConfig, rng: &mut Rng) -> Self {
        let grid = config.grid();
        let c = config.channels;
        let d = 2 * c;
        let e = config.time_embedding;
        let circular = config.padding == Padding::Circular;
        let levels = if config.levels == 0 { default_levels(grid) } else { config.levels };
        let widths = level_widths(c, config.max_channels, levels);
        let use_position = config.position_embedding.unwrap_or(!circular);
        let kernel = [if grid[0] > 1 { 3 } else { 1 }, if grid[1] > 1 { 3 } else { 1 }];
        let taps = kernel[0] * kernel[1];
        // level grids and dilations
        let grids: Vec<[usize; 2]> = (0..levels)
            .scan(grid, |g, _| {
                let here = *g;
                if !circular {
                    *g = [g[0].div_ceil(2), g[1].div_ceil(2)];
                }
                Some(here)
            })
            .collect();
        let dilation = |j: usize| if circular { 1usize << j } else { 1 };
        let same = |j: usize| {
            let axis = |a: usize| AxisMap {
                in_len: grids[j][a],
                out_len: grids[j][a],
                kernel: kernel[a],
                stride: 1,
                dilation: dilation(j),
                upsample: false,
                circular,
            };
            ConvPlan::new(axis(0), axis(1))
        };
        let mut plans = Vec::new();
        // plans: 0..levels = same-grid plans per level; then per j < levels-1: down_j, up_j
        for j in 0..levels {
            plans.push(same(j));
        }
        let mut down_plan = Vec::new();
        let mut up_plan = Vec::new();
        for j in 0..levels.saturating_sub(1) {
            if circular {
                // à trous: the strided conv at level j becomes a dilated one on the full grid
                down_plan.push(j);
                up_plan.push(j);
            } else {
                let down = |a: usize| AxisMap {
                    in_len: grids[j][a],
                    out_len: grids[j + 1][a],
                    kernel: kernel[a],
                    stride: 2,
                    dilation: 1,
                    upsample: false,
                    circular: false,
                };
                let up = |a: usize| AxisMap {
                    in_len: grids[j + 1][a],
                    out_len: grids[j][a],
                    kernel: kernel[a],
                    stride: 1,
                    dilation: 1,
                    upsample: true,
                    circular: false,
                };
                down_plan.push(plans.len());
                plans.push(ConvPlan::new(down(0), down(1)));
                up_plan.push(plans.len());
                plans.push(ConvPlan::new(up(0), up(1)));
            }
        }
        let positions: Vec<usize> = grids.iter().map(|g| g[0] * g[1]).collect();
        let mut pointwise_plans = std::collections::BTreeMap::new();

        let mut builder = LayoutBuilder::default();
        let conv = |builder: &mut LayoutBuilder, name: &str, plan: usize, taps: usize, c_in: usize, c_out: usize| Conv {
            weight: builder.add(&format!("{name}.weight"), &[taps, c_in, c_out], true),
            bias: builder.add(&format!("{name}.bias"), &[c_out], false),
            plan,
            c_in,
            c_out,
        };
        let stem = conv(&mut builder, "stem", 0, taps, 2, c);
        let position = use_position.then(|| builder.add("position", &[positions[0], c], false));
        let blocks_total = (2 * levels - 1) * config.blocks;
        let tau_width = config.blocks * (widths.iter().sum::<usize>() + widths[..levels - 1].iter().sum::<usize>());
        let time_fc1 = (builder.add("time.fc1.weight", &[e, d], true), builder.add("time.fc1.bias", &[d], false));
        let time_fc2 = (builder.add("time.fc2.weight", &[d, d], true), builder.add("time.fc2.bias", &[d], false));
        let time_proj = (builder.add("time.proj.weight", &[d, tau_width], true), builder.add("time.proj.bias", &[tau_width], false));
        let mut stages = Vec::new();
        let mut stream_shapes = vec![(positions[0], c)];
        let mut block_count = 0;
        let mut tau_next = 0;
        let mut block = |builder: &mut LayoutBuilder, plans: &mut Vec<ConvPlan>, name: String, j: usize, c_in: usize, c: usize| {
            let conv1 = conv(builder, &format!("{name}.conv1"), j, taps, c_in, c);
            let conv2 = conv(builder, &format!("{name}.conv2"), j, taps, c, c);
            let skip = (c_in != c).then(|| {
                let plan = *pointwise_plans.entry(positions[j]).or_insert_with(|| {
                    plans.push(ConvPlan::pointwise(positions[j]));
                    plans.len() - 1
                });
                Conv { weight: builder.add(&format!("{name}.skip.weight"), &[c_in, c], true), bias: usize::MAX, plan, c_in, c_out: c }
            });
            let b = Block { conv1, conv2, skip, tau_offset: tau_next, pre: block_count };
            block_count += 1;
            tau_next += c;
            b
        };
        let mut skips = Vec::new();
        for j in 0..levels {
            let w = widths[j];
            for b in 0..config.blocks {
                stages.push(Stage::Block(block(&mut builder, &mut plans, format!("down.{j}.blocks.{b}"), j, w, w)));
                stream_shapes.push((positions[j], w));
            }
            if j + 1 < levels {
                skips.push(stream_shapes.len() - 1);
                stages.push(Stage::Conv(conv(&mut builder, &format!("down.{j}.downsample"), down_plan[j], taps, w, widths[j + 1])));
                stream_shapes.push((positions[j + 1], widths[j + 1]));
            }
        }
        for j in (0..levels.saturating_sub(1)).rev() {
            let w = widths[j];
            stages.push(Stage::Conv(conv(&mut builder, &format!("up.{j}.upsample"), up_plan[j], taps, widths[j + 1], w)));
            stream_shapes.push((positions[j], w));
            stages.push(Stage::Concat { skip: skips[j] });
            stream_shapes.push((positions[j], 2 * w));
            for b in 0..config.blocks {
                let c_in = if b == 0 { 2 * w } else { w };
                stages.push(Stage::Block(block(&mut builder, &mut plans, format!("up.{j}.blocks.{b}"), j, c_in, w)));
                stream_shapes.push((positions[j], w));
            }
        }
        assert_eq!(block_count, blocks_total);
        assert_eq!(tau_next, tau_width);
        let output_weight = builder.add("output.weight", &[c, 1], true);
        let output_bias = builder.add("output.bias", &[1], false);
        let mut parameters = vec![0.0f32; builder.total];
        for group in &builder.groups {
            let values = &mut parameters[group.offset..group.offset + group.len()];
            if group.name == "position" {
                init_uniform(values, 0.1, rng);
            } else if group.decay && !group.name.ends_with("conv2.weight") && group.name != "output.weight" {
                let fan_in: usize = group.shape[..group.shape.len() - 1].iter().product();
                init_uniform(values, 1.0 / (fan_in.max(1) as f32).sqrt(), rng);
            }
        }
        let streams = stream_shapes.len();
        Self {
            length: config.length,
            channels: c,
            time_width: d,
            timesteps: config.timesteps,
            time: TimeFeatures::new(config),
            layout: builder.groups,
            parameters,
            plans,
            stem,
            position,
            time_fc1,
            time_fc2,
            time_proj,
            tau_width,
            stages,
            stream_shapes,
            output_weight,
            output_bias,
            cols_budget: COLS_BUDGET,
            dropout: config.dropout as f32,
            dropout_armed: false,
            dropped: false,
            dropout_rows: Vec::new(),
            rows: 0,
            features: Vec::new(),
            evidence: Vec::new(),
            embedding: Vec::new(),
            time_hidden: Vec::new(),
            time_activation: Vec::new(),
            tau: Vec::new(),
            streams: vec![Vec::new(); streams],
            pre: vec![Vec::new(); blocks_total],
            cols: Vec::new(),
            dstreams: vec![Vec::new(); streams],
            dpre: Vec::new(),
            dtau: Vec::new(),
            dtime: Vec::new(),
            dtime_hidden: Vec::new(),
        }
    }
}

/// Inverted dropout of one block's m (rows × `per_row` values), in place: each value becomes 0
/// with probability p, else m/(1-p) (so E[m_d] = m); row r draws from `rows[r]`, in value order.
fn drop_values(m: &mut [f32], per_row: usize, p: f32, rows: &mut [Rng]) {
    let keep_scale = 1.0 / (1.0 - p);
    for (values, rng) in m.chunks_exact_mut(per_row).zip(rows) {
        for v in values {
            *v = if rng.uniform_f32() < p { 0.0 } else { *v * keep_scale };
        }
    }
}

fn conv_shape(rows: usize, conv: &Conv, relu_input: bool) -> ConvShape {
    ConvShape { rows, c_in: conv.c_in, c_out: conv.c_out, relu_input }
}

impl ReverseNetwork for UnetNetwork {
    fn layout(&self) -> Vec<ParameterGroup> {
        self.layout.clone()
    }

    fn parameters(&self) -> &[f32] {
        &self.parameters
    }

    fn parameters_mut(&mut self) -> &mut [f32] {
        &mut self.parameters
    }

    fn forward(&mut self, xt: &[f32], t: &[u32], logits: &mut [f32]) {
        let (l, c, d, e) = (self.length, self.channels, self.time_width, self.time.width);
        let rows = t.len();
        assert_eq!(xt.len(), rows * l);
        assert_eq!(logits.len(), rows * l);
        check_times(t, self.timesteps);
        self.rows = rows;
        // training mode for this pass only when forward_training armed it
        let dropping = std::mem::take(&mut self.dropout_armed);
        self.dropped = dropping;
        let width = self.tau_width;
        ensure_len(&mut self.features, rows * l * 2);
        ensure_len(&mut self.evidence, rows);
        ensure_len(&mut self.embedding, rows * e);
        ensure_len(&mut self.time_hidden, rows * d);
        ensure_len(&mut self.time_activation, rows * d);
        ensure_len(&mut self.tau, rows * width);
        for (stream, &(p, ch)) in self.streams.iter_mut().zip(&self.stream_shapes) {
            ensure_len(stream, rows * p * ch);
        }
        for r in 0..rows {
            let lambda = self.time.evidence_of(t[r]);
            self.evidence[r] = lambda;
            for q in 0..l {
                let s = 2.0 * xt[r * l + q] - 1.0; // s = 2x - 1
                self.features[(r * l + q) * 2] = s;
                self.features[(r * l + q) * 2 + 1] = lambda * s;
            }
            self.embedding[r * e..(r + 1) * e].copy_from_slice(self.time.embedding_of(t[r]));
        }
        let p = &self.parameters;
        // time = relu(e·W1 + b1)·W2 + b2; keep relu(time); τ = relu(time)·W_proj + b_proj
        let hidden = &mut self.time_hidden[..rows * d];
        linear_forward(rows, e, d, &self.embedding, &p[self.time_fc1.0..], &p[self.time_fc1.1..], hidden, true);
        let activation = &mut self.time_activation[..rows * d];
        linear_forward(rows, d, d, hidden, &p[self.time_fc2.0..], &p[self.time_fc2.1..], activation, true);
        linear_forward(rows, d, width, activation, &p[self.time_proj.0..], &p[self.time_proj.1..], &mut self.tau[..rows * width], false);
        // h = conv_stem([s, λs]) + pos
        let stem = self.stem;
        let shape = ConvShape { rows, c_in: 2, c_out: c, relu_input: false };
        let h0 = &mut self.streams[0][..rows * l * c];
        conv_forward(&self.plans[stem.plan], shape, &self.features, &p[stem.weight..], Some(&p[stem.bias..][..c]), h0, &mut self.cols, self.cols_budget);
        if let Some(pos) = self.position {
            for row in h0.chunks_exact_mut(l * c) {
                for (v, &q) in row.iter_mut().zip(&p[pos..pos + l * c]) {
                    *v += q;
                }
            }
        }
        for (i, stage) in self.stages.iter().enumerate() {
            let (done, next) = self.streams.split_at_mut(i + 1);
            let (pin, cin) = self.stream_shapes[i];
            let (pout, cout) = self.stream_shapes[i + 1];
            let x = &done[i][..rows * pin * cin];
            let y = &mut next[0][..rows * pout * cout];
            match *stage {
                Stage::Block(b) => {
                    let c = b.conv1.c_out;
                    let plan = &self.plans[b.conv1.plan];
                    let m = &mut self.pre[b.pre];
                    ensure_len(m, rows * pout * c);
                    let m = &mut m[..rows * pout * c];
                    // m = conv1(relu(h)) + b1 + τ_k
                    conv_forward(
                        plan,
                        conv_shape(rows, &b.conv1, true),
                        x,
                        &p[b.conv1.weight..],
                        Some(&p[b.conv1.bias..][..c]),
                        m,
                        &mut self.cols,
                        self.cols_budget,
                    );
                    for (r, mr) in m.chunks_exact_mut(pout * c).enumerate() {
                        let tau = &self.tau[r * width + b.tau_offset..][..c];
                        for v in mr.chunks_exact_mut(c) {
                            for (a, &tv) in v.iter_mut().zip(tau) {
                                *a += tv;
                            }
                        }
                    }
                    if dropping {
                        drop_values(m, pout * c, self.dropout, &mut self.dropout_rows);
                    }
                    // y = conv2(relu(m)) + b2 + (h or h·W_skip)
                    conv_forward(
                        plan,
                        conv_shape(rows, &b.conv2, true),
                        m,
                        &p[b.conv2.weight..],
                        Some(&p[b.conv2.bias..][..c]),
                        y,
                        &mut self.cols,
                        self.cols_budget,
                    );
                    match b.skip {
                        Some(skip) => conv_forward(
                            &self.plans[skip.plan],
                            conv_shape(rows, &skip, false),
                            x,
                            &p[skip.weight..],
                            None,
                            y,
                            &mut self.cols,
                            self.cols_budget,
                        ),
                        None => {
                            for (a, &v) in y.iter_mut().zip(x) {
                                *a += v;
                            }
                        }
                    }
                }
                Stage::Conv(conv) => {
                    conv_forward(
                        &self.plans[conv.plan],
                        conv_shape(rows, &conv, false),
                        x,
                        &p[conv.weight..],
                        Some(&p[conv.bias..][..conv.c_out]),
                        y,
                        &mut self.cols,
                        self.cols_budget,
                    );
                }
                Stage::Concat { skip } => {
                    let (sp, sc) = self.stream_shapes[skip];
                    let s = &done[skip][..rows * sp * sc];
                    for ((out, a), b) in y.chunks_exact_mut(cout).zip(x.chunks_exact(cin)).zip(s.chunks_exact(sc)) {
                        out[..cin].copy_from_slice(a);
                        out[cin..].copy_from_slice(b);
                    }
                }
            }
        }
        // logit[p] = relu(h[p])·w_out + b_out + λ·s_p
        let last = self.streams.len() - 1;
        let h = &self.streams[last][..rows * l * c];
        let (w_out, b_out) = (&p[self.output_weight..][..c], p[self.output_bias]);
        for (token, (logit, hv)) in logits.iter_mut().zip(h.chunks_exact(c)).enumerate() {
            let mut acc = 0.0f32;
            for (&v, &w) in hv.iter().zip(w_out) {
                acc += v.max(0.0) * w;
            }
            *logit = acc + b_out + self.features[token * 2 + 1];
        }
    }

    fn forward_training(&mut self, xt: &[f32], t: &[u32], noise_keys: &[u64], logits: &mut [f32]) {
        assert_eq!(noise_keys.len(), t.len());
        if self.dropout > 0.0 {
            self.dropout_rows.clear();
            self.dropout_rows.extend(noise_keys.iter().map(|&key| Rng::new(key)));
            self.dropout_armed = true;
        }
        self.forward(xt, t, logits);
    }

    fn backward(&mut self, dlogits: &[f32], grad: &mut [f32]) {
        let (l, c, d, e, rows) = (self.length, self.channels, self.time_width, self.time.width, self.rows);
        let width = self.tau_width;
        assert_eq!(dlogits.len(), rows * l);
        assert_eq!(grad.len(), self.parameters.len());
        for (ds, &(p, ch)) in self.dstreams.iter_mut().zip(&self.stream_shapes) {
            ensure_len(ds, rows * p * ch);
            ds[..rows * p * ch].fill(0.0);
        }
        ensure_len(&mut self.dtau, rows * width);
        ensure_len(&mut self.dtime, rows * d);
        ensure_len(&mut self.dtime_hidden, rows * d);
        let p = &self.parameters;
        let budget = self.cols_budget;
        // Output: dh[p] = dlogit[p]·w_out ⊙ [h[p] > 0]; dw_out += Σ dlogit·relu(h); db_out += Σ dlogit
        let last = self.streams.len() - 1;
        let h = &self.streams[last][..rows * l * c];
        let w_out = &p[self.output_weight..][..c];
        for ((dh, hv), &g) in self.dstreams[last].chunks_exact_mut(c).zip(h.chunks_exact(c)).zip(dlogits) {
            for ((dv, &v), &w) in dh.iter_mut().zip(hv).zip(w_out) {
                *dv = if v > 0.0 { g * w } else { 0.0 };
            }
            for (gw, &v) in grad[self.output_weight..self.output_weight + c].iter_mut().zip(hv) {
                *gw += g * v.max(0.0);
            }
            grad[self.output_bias] += g;
        }
        for (i, stage) in self.stages.iter().enumerate().rev() {
            let (din, dout) = self.dstreams.split_at_mut(i + 1);
            let (pin, cin) = self.stream_shapes[i];
            let (pout, cout) = self.stream_shapes[i + 1];
            let x = &self.streams[i][..rows * pin * cin];
            let dy = &dout[0][..rows * pout * cout];
            match *stage {
                Stage::Block(b) => {
                    let c = b.conv1.c_out;
                    let plan = &self.plans[b.conv1.plan];
                    let m = &self.pre[b.pre][..rows * pout * c];
                    let dx = &mut din[i][..rows * pin * cin];
                    // residual: dh += dy, or dW_skip += hᵀ·dy and dh += dy·W_skipᵀ
                    match b.skip {
                        Some(skip) => {
                            let shape = conv_shape(rows, &skip, false);
                            let dw = &mut grad[skip.weight..skip.weight + cin * c];
                            conv_backward(&self.plans[skip.plan], shape, x, &p[skip.weight..], dy, dw, None, Some(&mut *dx), &mut self.cols, budget);
                        }
                        None => {
                            for (a, &g) in dx.iter_mut().zip(dy) {
                                *a += g;
                            }
                        }
                    }
                    // y = conv2(relu(m)) + b2: dm = scatter(dy·W2ᵀ) ⊙ [m > 0]
                    ensure_len(&mut self.dpre, rows * pout * c);
                    let dm = &mut self.dpre[..rows * pout * c];
                    dm.fill(0.0);
                    {
                        let (head, tail) = grad.split_at_mut(b.conv2.bias);
                        let dw = &mut head[b.conv2.weight..b.conv2.weight + plan.taps * c * c];
                        conv_backward(
                            plan,
                            conv_shape(rows, &b.conv2, true),
                            m,
                            &p[b.conv2.weight..],
                            dy,
                            dw,
                            Some(&mut tail[..c]),
                            Some(&mut *dm),
                            &mut self.cols,
                            budget,
                        );
                    }
                    if self.dropped {
                        // m_d = m ⊙ mask/(1-p): dm = dm_d ⊙ mask/(1-p) (dm_d is 0 where dropped: relu'(0) = 0)
                        let keep_scale = 1.0 / (1.0 - self.dropout);
                        for v in dm.iter_mut() {
                            *v *= keep_scale;
                        }
                    }
                    // m = conv1(relu(h)) + b1 + τ_k: dτ_k[r] = Σ_p dm[r, p]
                    for (r, dmr) in dm.chunks_exact(pout * c).enumerate() {
                        let dtau = &mut self.dtau[r * width + b.tau_offset..][..c];
                        dtau.fill(0.0);
                        linalg::add_column_sums(pout, c, dmr, dtau);
                    }
                    let (head, tail) = grad.split_at_mut(b.conv1.bias);
                    let dw = &mut head[b.conv1.weight..b.conv1.weight + plan.taps * cin * c];
                    conv_backward(
                        plan,
                        conv_shape(rows, &b.conv1, true),
                        x,
                        &p[b.conv1.weight..],
                        dm,
                        dw,
                        Some(&mut tail[..c]),
                        Some(dx),
                        &mut self.cols,
                        budget,
                    );
                }
                Stage::Conv(conv) => {
                    let plan = &self.plans[conv.plan];
                    let (head, tail) = grad.split_at_mut(conv.bias);
                    let dw = &mut head[conv.weight..conv.weight + plan.taps * cin * cout];
                    let dx = &mut din[i][..rows * pin * cin];
                    conv_backward(
                        plan,
                        conv_shape(rows, &conv, false),
                        x,
                        &p[conv.weight..],
                        dy,
                        dw,
                        Some(&mut tail[..cout]),
                        Some(dx),
                        &mut self.cols,
                        budget,
                    );
                }
                Stage::Concat { skip } => {
                    // y = [h, skip]: the two halves of dy go back to their sources
                    let sc = self.stream_shapes[skip].1;
                    for (g, a) in dy.chunks_exact(cout).zip(din[i][..rows * pin * cin].chunks_exact_mut(cin)) {
                        for (a, &v) in a.iter_mut().zip(&g[..cin]) {
                            *a += v;
                        }
                    }
                    for (g, a) in dy.chunks_exact(cout).zip(din[skip][..rows * pin * sc].chunks_exact_mut(sc)) {
                        for (a, &v) in a.iter_mut().zip(&g[cin..]) {
                            *a += v;
                        }
                    }
                }
            }
        }
        // h = conv_stem([s, λs]) + pos: dpos += Σ_r dh
        let dh0 = &self.dstreams[0][..rows * l * c];
        if let Some(pos) = self.position {
            linalg::add_column_sums(rows, l * c, dh0, &mut grad[pos..pos + l * c]);
        }
        let stem = self.stem;
        let plan = &self.plans[stem.plan];
        let shape = ConvShape { rows, c_in: 2, c_out: c, relu_input: false };
        let (head, tail) = grad.split_at_mut(stem.bias);
        conv_backward(
            plan,
            shape,
            &self.features,
            &p[stem.weight..],
            dh0,
            &mut head[stem.weight..stem.weight + plan.taps * 2 * c],
            Some(&mut tail[..c]),
            None,
            &mut self.cols,
            budget,
        );
        // τ = a·W_proj + b_proj with a = relu(time): da = (dτ·W_projᵀ) ⊙ [a > 0]
        let activation = &self.time_activation[..rows * d];
        let dtime = &mut self.dtime[..rows * d];
        let (head, tail) = grad.split_at_mut(self.time_proj.1);
        linear_backward(
            rows,
            d,
            width,
            activation,
            &self.dtau[..rows * width],
            &p[self.time_proj.0..],
            &mut head[self.time_proj.0..][..d * width],
            &mut tail[..width],
            Some((&mut *dtime, Epilogue::Mask { mask: activation })),
        );
        // time = u·W2 + b2 with u = relu(e·W1 + b1): du = (dtime·W2ᵀ) ⊙ [u > 0]
        let hidden = &self.time_hidden[..rows * d];
        let dhidden = &mut self.dtime_hidden[..rows * d];
        let (head, tail) = grad.split_at_mut(self.time_fc2.1);
        linear_backward(
            rows,
            d,
            d,
            hidden,
            dtime,
            &p[self.time_fc2.0..],
            &mut head[self.time_fc2.0..][..d * d],
            &mut tail[..d],
            Some((&mut *dhidden, Epilogue::Mask { mask: hidden })),
        );
        let (head, tail) = grad.split_at_mut(self.time_fc1.1);
        linear_backward(rows, e, d, &self.embedding, dhidden, &p[self.time_fc1.0..], &mut head[self.time_fc1.0..][..e * d], &mut tail[..d], None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Architecture;
    use crate::network::common::testing::{check_gradient_with_noise, check_gradient_with_steps, config, random_bits};

    fn unet(length: usize, shape: Option<Vec<usize>>, padding: Padding, channels: usize, levels: usize, blocks: usize) -> ModelConfig {
        ModelConfig { shape, padding, channels, levels, blocks, ..config(Architecture::Unet, length, 9, 4, 1) }
    }

    #[test]
    fn default_levels_follow_the_rule() {
        assert_eq!(default_levels([1, 1]), 1);
        assert_eq!(default_levels([1, 4]), 1);
        assert_eq!(default_levels([1, 5]), 2);
        assert_eq!(default_levels([1, 12]), 3);
        assert_eq!(default_levels([1, 20]), 4);
        assert_eq!(default_levels([1, 64]), 5);
        assert_eq!(default_levels([28, 28]), 4);
    }

    #[test]
    fn level_widths_double_per_level_up_to_the_cap() {
        assert_eq!(level_widths(32, 0, 4), vec![32, 32, 32, 32]);
        assert_eq!(level_widths(16, 64, 4), vec![16, 32, 64, 64]);
        assert_eq!(level_widths(32, 64, 4), vec![32, 64, 64, 64]);
        assert_eq!(level_widths(3, 10, 4), vec![3, 6, 10, 10]);
        assert_eq!(level_widths(8, 4, 2), vec![8, 8], "a cap below C keeps C");
        assert_eq!(level_widths(5, 1024, 40).len(), 40, "no overflow on deep stacks");
    }

    #[test]
    fn growing_widths_shape_the_layout() {
        // C = 2, M = 8, 3 levels on L = 9: levels 2, 4, 8 channels
        let cfg = ModelConfig { max_channels: 8, ..unet(9, None, Padding::Zero, 2, 3, 1) };
        let net = UnetNetwork::new(&cfg, &mut Rng::new(1));
        let shape_of = |name: &str| net.layout().into_iter().find(|g| g.name == name).unwrap_or_else(|| panic!("{name}")).shape;
        assert_eq!(shape_of("stem.weight"), vec![3, 2, 2]);
        assert_eq!(shape_of("down.1.blocks.0.conv1.weight"), vec![3, 4, 4]);
        assert_eq!(shape_of("down.0.downsample.weight"), vec![3, 2, 4]);
        assert_eq!(shape_of("down.1.downsample.weight"), vec![3, 4, 8]);
        assert_eq!(shape_of("down.2.blocks.0.conv2.weight"), vec![3, 8, 8]);
        assert_eq!(shape_of("up.1.upsample.weight"), vec![3, 8, 4]);
        assert_eq!(shape_of("up.1.blocks.0.conv1.weight"), vec![3, 8, 4]);
        assert_eq!(shape_of("up.1.blocks.0.skip.weight"), vec![8, 4]);
        assert_eq!(shape_of("up.0.upsample.weight"), vec![3, 4, 2]);
        assert_eq!(shape_of("output.weight"), vec![2, 1]);
        // τ: down 2 + 4 + 8, up 4 + 2
        assert_eq!(shape_of("time.proj.bias"), vec![20]);
    }

    #[test]
    fn gradient_matches_finite_differences_for_every_parameter() {
        let cases = [
            unet(7, None, Padding::Zero, 3, 0, 1),              // odd length, 2 levels
            unet(7, None, Padding::Zero, 3, 3, 2),              // 7 -> 4 -> 2, two blocks per level
            unet(15, Some(vec![5, 3]), Padding::Zero, 3, 2, 1), // 2-D, odd sides
            unet(6, None, Padding::Circular, 3, 2, 1),
            unet(12, Some(vec![4, 3]), Padding::Circular, 2, 2, 1),
            ModelConfig { position_embedding: Some(true), ..unet(5, Some(vec![5, 1]), Padding::Circular, 3, 2, 1) },
            // channels growing with depth (max_channels): 2, 4, 5 and 2-D 2, 4
            ModelConfig { max_channels: 5, ..unet(9, None, Padding::Zero, 2, 3, 2) },
            ModelConfig { max_channels: 8, ..unet(15, Some(vec![5, 3]), Padding::Zero, 2, 2, 1) },
            ModelConfig { max_channels: 4, ..unet(6, None, Padding::Circular, 2, 2, 1) },
        ];
        for cfg in cases {
            for budget in [COLS_BUDGET, 7] {
                let mut rng = Rng::new(41);
                let mut net = UnetNetwork::new(&cfg, &mut rng);
                net.cols_budget = budget; // 7: one row per im2col chunk
                let xt = random_bits(3, cfg.length, &mut rng);
                let counts = check_gradient_with_steps(&mut net, &xt, &[2, 9, 5], 42, &[1e-2, 3e-3, 1e-3]);
                assert_eq!(counts.len(), net.layout().len());
                let names: Vec<&str> = counts.iter().map(|(n, _)| n.as_str()).collect();
                assert!(names.contains(&"time.proj.weight") && names.contains(&"output.weight"));
                assert_eq!(names.contains(&"position"), cfg.position_embedding.unwrap_or(cfg.padding == Padding::Zero), "{cfg:?}");
                if cfg.levels > 1 || cfg.levels == 0 {
                    assert!(names.iter().any(|n| n.ends_with("skip.weight")), "{names:?}");
                }
            }
        }
    }

    #[test]
    fn gradient_with_dropout_matches_finite_differences_with_fixed_masks() {
        // The same noise keys give the same masks on every pass, so the training-mode loss is a
        // fixed piecewise-linear function of the parameters, checked like the evaluation mode.
        let cases = [
            unet(7, None, Padding::Zero, 3, 3, 2),
            unet(15, Some(vec![5, 3]), Padding::Zero, 3, 2, 1),
            unet(6, None, Padding::Circular, 3, 2, 1),
            ModelConfig { max_channels: 6, ..unet(7, None, Padding::Zero, 3, 3, 1) },
        ];
        let keys = [0x1234_5678_9abc_def0u64, 7, 1 << 40];
        for cfg in cases {
            let cfg = ModelConfig { dropout: 0.3, ..cfg };
            let mut rng = Rng::new(43);
            let mut net = UnetNetwork::new(&cfg, &mut rng);
            let xt = random_bits(3, cfg.length, &mut rng);
            let t = [2, 9, 5];
            let counts = check_gradient_with_noise(&mut net, &xt, &t, Some(&keys), 44, &[1e-2, 3e-3, 1e-3]);
            assert_eq!(counts.len(), net.layout().len());
            // the check ran with values dropped, and their gradient is not the evaluation mode's
            let mut logits = vec![0.0; 3 * cfg.length];
            net.forward_training(&xt, &t, &keys, &mut logits);
            assert!(net.dropped && net.pre.iter().any(|m| m[..3 * cfg.channels].contains(&0.0)), "{cfg:?}");
            let mut training_grad = vec![0.0; net.parameters().len()];
            net.backward(&logits, &mut training_grad);
            net.forward(&xt, &t, &mut logits);
            assert!(!net.dropped);
            let mut eval_grad = vec![0.0; net.parameters().len()];
            net.backward(&logits, &mut eval_grad);
            assert_ne!(training_grad, eval_grad);
        }
    }

    /// Each block's m of the last forward pass, row `r` only.
    fn pre_of_row(net: &UnetNetwork, r: usize) -> Vec<Vec<f32>> {
        net.stages
            .iter()
            .enumerate()
            .filter_map(|(i, stage)| match stage {
                Stage::Block(b) => {
                    let n = net.stream_shapes[i + 1].0 * b.conv1.c_out;
                    Some(net.pre[b.pre][r * n..(r + 1) * n].to_vec())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dropout_zeroes_a_share_p_and_scales_the_rest_by_one_over_one_minus_p() {
        let p = 0.25f32;
        let cfg = ModelConfig { dropout: p as f64, ..unet(20, None, Padding::Zero, 8, 0, 1) };
        let mut rng = Rng::new(3);
        let mut net = UnetNetwork::new(&cfg, &mut rng);
        for v in net.parameters_mut() {
            *v = rng.uniform_f32() - 0.5;
        }
        let rows = 4;
        let xt = random_bits(rows, 20, &mut rng);
        let t = [1, 3, 6, 9];
        let mut logits = vec![0.0; rows * 20];
        // Block 0's m does not depend on earlier masks: compare it value by value with evaluation mode.
        net.forward(&xt, &t, &mut logits);
        let eval: Vec<Vec<f32>> = (0..rows).map(|r| pre_of_row(&net, r)[0].clone()).collect();
        net.forward_training(&xt, &t, &[1, 2, 3, 4], &mut logits);
        let (mut dropped, mut total) = (0usize, 0usize);
        for (r, eval_row) in eval.iter().enumerate() {
            for (&m_d, &m) in pre_of_row(&net, r)[0].iter().zip(eval_row) {
                assert!(m_d == 0.0 || m_d == m * (1.0 / (1.0 - p)), "{m_d} vs {m}");
                dropped += usize::from(m_d == 0.0 && m != 0.0);
                total += 1;
            }
        }
        // binomial(total, p): within 4 standard deviations
        let (mean, sd) = (total as f64 * p as f64, (total as f64 * p as f64 * (1.0 - p as f64)).sqrt());
        assert!((dropped as f64 - mean).abs() < 4.0 * sd, "{dropped} of {total} dropped, expected about {mean}");
    }

    #[test]
    fn a_rows_masks_depend_on_its_key_only() {
        let cfg = ModelConfig { dropout: 0.5, ..unet(12, None, Padding::Zero, 4, 0, 1) };
        let mut rng = Rng::new(4);
        let mut net = UnetNetwork::new(&cfg, &mut rng);
        for v in net.parameters_mut() {
            *v = rng.uniform_f32() - 0.5;
        }
        let xt = random_bits(3, 12, &mut rng);
        let mut logits = vec![0.0; 3 * 12];
        net.forward_training(&xt, &[4, 5, 6], &[10, 20, 30], &mut logits);
        let zeros = |blocks: Vec<Vec<f32>>| blocks.iter().map(|m| m.iter().map(|&v| v == 0.0).collect::<Vec<_>>()).collect::<Vec<_>>();
        let in_batch = zeros(pre_of_row(&net, 1));
        let in_batch_logits = logits[12..24].to_vec();
        let mut alone = vec![0.0; 12];
        net.forward_training(&xt[12..24], &[5], &[20], &mut alone);
        assert_eq!(zeros(pre_of_row(&net, 0)), in_batch);
        for (a, b) in alone.iter().zip(&in_batch_logits) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // another key, other masks
        net.forward_training(&xt[12..24], &[5], &[21], &mut alone);
        assert_ne!(zeros(pre_of_row(&net, 0)), in_batch);
    }

    #[test]
    fn evaluation_mode_never_drops() {
        let base = unet(12, Some(vec![3, 4]), Padding::Zero, 4, 0, 1);
        let mut with_dropout = UnetNetwork::new(&ModelConfig { dropout: 0.5, ..base.clone() }, &mut Rng::new(5));
        let mut without = UnetNetwork::new(&base, &mut Rng::new(5));
        let mut rng = Rng::new(6);
        for v in with_dropout.parameters_mut() {
            *v = rng.uniform_f32() - 0.5;
        }
        without.parameters_mut().copy_from_slice(with_dropout.parameters());
        let xt = random_bits(2, 12, &mut rng);
        let (mut a, mut b) = (vec![0.0; 24], vec![0.0; 24]);
        without.forward(&xt, &[3, 8], &mut b);
        with_dropout.forward(&xt, &[3, 8], &mut a);
        assert_eq!(a, b, "evaluation mode is the network without dropout");
        with_dropout.forward_training(&xt, &[3, 8], &[1, 2], &mut a);
        assert_ne!(a, b, "training mode drops");
        with_dropout.forward(&xt, &[3, 8], &mut a);
        assert_eq!(a, b, "a training pass leaves the next pass in evaluation mode");
        // dropout 0: training mode is evaluation mode
        without.forward_training(&xt, &[3, 8], &[1, 2], &mut a);
        assert_eq!(a, b);
    }

    #[test]
    fn untrained_network_is_the_independent_bit_posterior() {
        let cfg = unet(6, None, Padding::Zero, 4, 0, 1);
        let mut net = UnetNetwork::new(&cfg, &mut Rng::new(1));
        let xt = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let mut logits = vec![0.0; 6];
        net.forward(&xt, &[3], &mut logits);
        let lambda = net.time.evidence_of(3);
        for (z, x) in logits.iter().zip(xt) {
            assert_eq!(*z, lambda * (2.0 * x - 1.0));
        }
    }

    /// Cyclic shift of a [h, w] grid by (dy, dx).
    fn shift(x: &[f32], h: usize, w: usize, dy: usize, dx: usize) -> Vec<f32> {
        let mut out = vec![0.0; h * w];
        for y in 0..h {
            for xx in 0..w {
                out[((y + dy) % h) * w + (xx + dx) % w] = x[y * w + xx];
            }
        }
        out
    }

    #[test]
    fn circular_padding_is_exactly_equivariant_to_cyclic_shifts() {
        for (length, shape) in [(12, None), (13, None), (30, Some(vec![6, 5]))] {
            let cfg = unet(length, shape.clone(), Padding::Circular, 4, 0, 1);
            let mut rng = Rng::new(5);
            let mut net = UnetNetwork::new(&cfg, &mut rng);
            assert!(net.position.is_none());
            for v in net.parameters_mut() {
                *v = rng.uniform_f32() - 0.5;
            }
            let [h, w] = cfg.grid();
            let xt = random_bits(1, length, &mut rng);
            let mut base = vec![0.0; length];
            net.forward(&xt, &[4], &mut base);
            for dy in 0..h {
                for dx in 0..w {
                    let mut out = vec![0.0; length];
                    net.forward(&shift(&xt, h, w, dy, dx), &[4], &mut out);
                    assert!(out == shift(&base, h, w, dy, dx), "{shape:?} shift ({dy}, {dx})");
                }
            }
        }
    }

    #[test]
    fn zero_padding_with_position_embedding_is_not_shift_equivariant() {
        // the position signal is what lets the network break the symmetry (palindromes, fixed positions)
        let cfg = unet(12, None, Padding::Zero, 4, 0, 1);
        let mut rng = Rng::new(6);
        let mut net = UnetNetwork::new(&cfg, &mut rng);
        for v in net.parameters_mut() {
            *v = rng.uniform_f32() - 0.5;
        }
        let xt = vec![0.0; 12];
        let mut out = vec![0.0; 12];
        net.forward(&xt, &[4], &mut out);
        assert!(out.iter().any(|&v| v != out[0]), "a constant input gives different logits by position");
    }

    #[test]
    fn every_output_depends_on_every_input_position() {
        // The last stream h (before the output's relu, which a random init can close at a position
        // for every channel) at each position must change when any single input bit flips.
        for (length, shape, padding) in [
            (20, None, Padding::Zero),
            (13, None, Padding::Zero),
            (64, None, Padding::Zero),
            (35, Some(vec![7, 5]), Padding::Zero),
            (20, None, Padding::Circular),
            (28, Some(vec![4, 7]), Padding::Circular),
        ] {
            let cfg = unet(length, shape.clone(), padding, 6, 0, 1);
            let mut rng = Rng::new(8);
            let mut net = UnetNetwork::new(&cfg, &mut rng);
            for v in net.parameters_mut() {
                *v = rng.uniform_f32() - 0.5;
            }
            let last = net.streams.len() - 1;
            let c = cfg.channels;
            let xt = random_bits(1, length, &mut rng);
            let mut logits = vec![0.0; length];
            net.forward(&xt, &[5], &mut logits);
            let base = net.streams[last][..length * c].to_vec();
            let mut missing = Vec::new();
            for q in 0..length {
                let mut flipped = xt.clone();
                flipped[q] = 1.0 - flipped[q];
                net.forward(&flipped, &[5], &mut logits);
                let out = &net.streams[last][..length * c];
                for p in 0..length {
                    if out[p * c..(p + 1) * c] == base[p * c..(p + 1) * c] {
                        missing.push((p, q));
                    }
                }
            }
            assert!(missing.is_empty(), "{shape:?} {padding:?}: (output, input) pairs without dependence: {missing:?}");
        }
    }
}
