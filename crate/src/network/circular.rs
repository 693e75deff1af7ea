//! A cyclic-shift-equivariant network: every position p = 0..L-1 carries a vector of C channels
//! (C = `config.hidden`), and every layer is either the same map at each position or a circular
//! convolution over positions, so shifting x_t cyclically shifts the logits the same way
//! (exactly: every position runs the same sequence of float operations).
//!
//! With s = 2·x_t - 1 (±1), λ_t the evidence log-odds of `TimeFeatures`, e(t) the sinusoidal
//! embedding and τ = e(t)·W_time split in chunks τ_0..τ_n of C values:
//!
//!   h_0[p]   = (b_in + τ_0) + s_p·w_s + λ_t·s_p·w_e
//!   m_i[p,c] = (kb_i[c] + τ_{i+1}[c]) + Σ_{d<K} k_i[d,c]·h_i[(p + d - K/2) mod L, c]
//!              (depthwise circular convolution; the time enters each block through its bias)
//!   a_i[p]   = relu(m_i[p]·W1_i + b1_i)
//!   h_{i+1}[p] = (b2_i + a_i[p]·W2_i) + h_i[p]
//!   logit[p] = h_n[p]·w_out + b_out + λ_t·s_p
//!
//! K = `config.kernel`, or L when it is 0 (then every position sees every other: a circulant
//! layer). The λ_t·s_p skip is the exact independent-bit part of the posterior (see mlp.rs).
//!
//! Layout, in order: "input.weight" [2, C] (row 0: w_s, row 1: w_e), "input.bias" [C],
//! "time.weight" [E, (layers+1)·C], per block i "blocks.i.conv.weight" [K, C],
//! "blocks.i.conv.bias" [C], "blocks.i.fc1.weight" [C, C], "blocks.i.fc1.bias" [C],
//! "blocks.i.fc2.weight" [C, C], "blocks.i.fc2.bias" [C]; "output.weight" [C, 1], "output.bias" [1].
//! Initialisation: weights uniform(±1/sqrt(fan_in)) in layout order (fan_in of a conv tap set
//! is K), biases 0, output.weight 0.

use super::common::{check_times, ensure_len, init_uniform, linear_backward, linear_forward, LayoutBuilder, TimeFeatures};
use super::{ParameterGroup, ReverseNetwork};
use crate::config::ModelConfig;
use crate::linalg::{self, Epilogue, Layout};
use crate::rng::Rng;

pub struct CircularNetwork {
    length: usize,
    channels: usize,
    kernel: usize,
    layers: usize,
    timesteps: usize,
    time: TimeFeatures,
    layout: Vec<ParameterGroup>,
    parameters: Vec<f32>,
    input_weight: usize,
    input_bias: usize,
    time_weight: usize,
    /// Per block: conv.weight, conv.bias, fc1.weight, fc1.bias, fc2.weight, fc2.bias.
    blocks: Vec<[usize; 6]>,
    output_weight: usize,
    output_bias: usize,
    // State of the last forward pass.
    rows: usize,
    /// s per (row, position) and λ_t per row.
    signs: Vec<f32>,
    evidence: Vec<f32>,
    embedding: Vec<f32>,
    /// τ = e(t)·W_time, rows × (layers+1)·C.
    time_projection: Vec<f32>,
    /// streams[i] = h_i, convolved[i] = m_i, activations[i] = a_i; (rows·L) × C each.
    streams: Vec<Vec<f32>>,
    convolved: Vec<Vec<f32>>,
    activations: Vec<Vec<f32>>,
    // Scratch.
    /// A bias per row (rows × C): b_in + τ_0, or kb_i + τ_{i+1}; in backward its gradient.
    row_bias: Vec<f32>,
    dstream: Vec<f32>,
    dconvolved: Vec<f32>,
    dactivation: Vec<f32>,
    dtime_projection: Vec<f32>,
    conv_scratch: Vec<f32>,
}

impl CircularNetwork {
    pub fn new(config: &ModelConfig, rng: &mut Rng) -> Self {
        let (c, e, n) = (config.hidden, config.time_embedding, config.layers);
        let kernel = if config.kernel == 0 { config.length } else { config.kernel };
        let mut builder = LayoutBuilder::default();
        let input_weight = builder.add("input.weight", &[2, c], true);
        let input_bias = builder.add("input.bias", &[c], false);
        let time_weight = builder.add("time.weight", &[e, (n + 1) * c], true);
        let mut blocks = Vec::new();
        for i in 0..n {
            blocks.push([
                builder.add(&format!("blocks.{i}.conv.weight"), &[kernel, c], true),
                builder.add(&format!("blocks.{i}.conv.bias"), &[c], false),
                builder.add(&format!("blocks.{i}.fc1.weight"), &[c, c], true),
                builder.add(&format!("blocks.{i}.fc1.bias"), &[c], false),
                builder.add(&format!("blocks.{i}.fc2.weight"), &[c, c], true),
                builder.add(&format!("blocks.{i}.fc2.bias"), &[c], false),
            ]);
        }
        let output_weight = builder.add("output.weight", &[c, 1], true);
        let output_bias = builder.add("output.bias", &[1], false);
        let mut parameters = vec![0.0f32; builder.total];
        for group in builder.groups.iter().filter(|g| g.decay && g.name != "output.weight") {
            let bound = 1.0 / (group.shape[0].max(1) as f32).sqrt();
            init_uniform(&mut parameters[group.offset..group.offset + group.len()], bound, rng);
        }
        Self {
            length: config.length,
            channels: c,
            kernel,
            layers: n,
            timesteps: config.timesteps,
            time: TimeFeatures::new(config),
            layout: builder.groups,
            parameters,
            input_weight,
            input_bias,
            time_weight,
            blocks,
            output_weight,
            output_bias,
            rows: 0,
            signs: Vec::new(),
            evidence: Vec::new(),
            embedding: Vec::new(),
            time_projection: Vec::new(),
            streams: vec![Vec::new(); n + 1],
            convolved: vec![Vec::new(); n],
            activations: vec![Vec::new(); n],
            row_bias: Vec::new(),
            dstream: Vec::new(),
            dconvolved: Vec::new(),
            dactivation: Vec::new(),
            dtime_projection: Vec::new(),
            conv_scratch: Vec::new(),
        }
    }
}

/// out[r, ·] = bias + τ[r, chunk·C .. (chunk+1)·C] for every row (τ rows have `width` values).
fn bias_plus_time(rows: usize, c: usize, width: usize, chunk: usize, bias: &[f32], tau: &[f32], out: &mut [f32]) {
    for (r, row) in out[..rows * c].chunks_exact_mut(c).enumerate() {
        let t = &tau[r * width + chunk * c..r * width + (chunk + 1) * c];
        for ((o, &b), &tv) in row.iter_mut().zip(&bias[..c]).zip(t) {
            *o = b + tv;
        }
    }
}

impl ReverseNetwork for CircularNetwork {
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
        let (l, c, e, n, kernel) = (self.length, self.channels, self.time.width, self.layers, self.kernel);
        let rows = t.len();
        let tokens = rows * l;
        assert_eq!(xt.len(), tokens);
        assert_eq!(logits.len(), tokens);
        check_times(t, self.timesteps);
        self.rows = rows;
        let width = (n + 1) * c;
        ensure_len(&mut self.signs, tokens);
        ensure_len(&mut self.evidence, rows);
        ensure_len(&mut self.embedding, rows * e);
        ensure_len(&mut self.time_projection, rows * width);
        ensure_len(&mut self.row_bias, rows * c);
        for v in self.streams.iter_mut().chain(&mut self.convolved).chain(&mut self.activations) {
            ensure_len(v, tokens * c);
        }
        for r in 0..rows {
            self.evidence[r] = self.time.evidence_of(t[r]);
            self.embedding[r * e..(r + 1) * e].copy_from_slice(self.time.embedding_of(t[r]));
        }
        for (s, &x) in self.signs.iter_mut().zip(xt) {
            *s = 2.0 * x - 1.0; // s = 2x - 1
        }
        let p = &self.parameters;
        // τ = e(t)·W_time
        let tau = &mut self.time_projection[..rows * width];
        linalg::gemm(rows, e, width, &self.embedding, Layout::Normal, &p[self.time_weight..], Layout::Normal, tau, Epilogue::Set);
        // h_0[p] = (b_in + τ_0) + s_p·w_s + λ·s_p·w_e
        let (w_s, w_e) = (&p[self.input_weight..][..c], &p[self.input_weight + c..][..c]);
        bias_plus_time(rows, c, width, 0, &p[self.input_bias..], tau, &mut self.row_bias);
        for r in 0..rows {
            let base = &self.row_bias[r * c..(r + 1) * c];
            for q in 0..l {
                let s = self.signs[r * l + q];
                let ls = self.evidence[r] * s;
                let out = &mut self.streams[0][(r * l + q) * c..(r * l + q + 1) * c];
                for (((o, &b), &ws), &we) in out.iter_mut().zip(base).zip(w_s).zip(w_e) {
                    *o = b + s * ws + ls * we;
                }
            }
        }
        for (i, &[kw, kb, w1, b1, w2, b2]) in self.blocks.iter().enumerate() {
            let (done, next) = self.streams.split_at_mut(i + 1);
            let (hi, hn) = (&done[i][..tokens * c], &mut next[0][..tokens * c]);
            let m = &mut self.convolved[i][..tokens * c];
            let a = &mut self.activations[i][..tokens * c];
            // m = (kb + τ_{i+1}) + circular conv of h_i
            bias_plus_time(rows, c, width, i + 1, &p[kb..], tau, &mut self.row_bias);
            linalg::circular_depthwise(rows, l, c, kernel, hi, &p[kw..], &self.row_bias, m, &mut self.conv_scratch);
            // a = relu(m·W1 + b1)
            linear_forward(tokens, c, c, m, &p[w1..], &p[b1..], a, true);
            // h_{i+1} = (b2 + a·W2) + h_i
            linalg::gemm(tokens, c, c, a, Layout::Normal, &p[w2..], Layout::Normal, hn, Epilogue::Residual { bias: &p[b2..], residual: hi });
        }
        // logit[p] = h_n[p]·w_out + b_out + λ·s_p
        let hn = &self.streams[n][..tokens * c];
        let (w_out, b_out) = (&p[self.output_weight..][..c], p[self.output_bias]);
        for (token, (logit, h)) in logits.iter_mut().zip(hn.chunks_exact(c)).enumerate() {
            *logit = linalg::dot(h, w_out) + b_out + self.evidence[token / l] * self.signs[token];
        }
    }

    fn backward(&mut self, dlogits: &[f32], grad: &mut [f32]) {
        let (l, c, e, n, kernel, rows) = (self.length, self.channels, self.time.width, self.layers, self.kernel, self.rows);
        let tokens = rows * l;
        let width = (n + 1) * c;
        assert_eq!(dlogits.len(), tokens);
        assert_eq!(grad.len(), self.parameters.len());
        ensure_len(&mut self.dstream, tokens * c);
        ensure_len(&mut self.dconvolved, tokens * c);
        ensure_len(&mut self.dactivation, tokens * c);
        ensure_len(&mut self.dtime_projection, rows * width);
        let p = &self.parameters;
        let dstream = &mut self.dstream[..tokens * c];
        let dm = &mut self.dconvolved[..tokens * c];
        let da = &mut self.dactivation[..tokens * c];
        let dtau = &mut self.dtime_projection[..rows * width];
        let drow_bias = &mut self.row_bias[..rows * c];
        // Output: dh_n[p] = dlogit[p]·w_out, dw_out += Σ_p dlogit[p]·h_n[p], db_out += Σ_p dlogit[p]
        let hn = &self.streams[n][..tokens * c];
        let w_out = &p[self.output_weight..][..c];
        for ((ds, h), &g) in dstream.chunks_exact_mut(c).zip(hn.chunks_exact(c)).zip(dlogits) {
            for (d, &w) in ds.iter_mut().zip(w_out) {
                *d = g * w;
            }
            for (gw, &hv) in grad[self.output_weight..self.output_weight + c].iter_mut().zip(h) {
                *gw += g * hv;
            }
            grad[self.output_bias] += g;
        }
        for (i, &[kw, kb, w1, b1, w2, b2]) in self.blocks.iter().enumerate().rev() {
            let a = &self.activations[i][..tokens * c];
            {
                // h_{i+1} = h_i + a·W2 + b2: da = (dh_{i+1}·W2ᵀ) ⊙ [a > 0]; dh_i gets dh_{i+1} as is
                let (head, tail) = grad.split_at_mut(b2);
                linear_backward(tokens, c, c, a, dstream, &p[w2..], &mut head[w2..][..c * c], &mut tail[..c], Some((&mut *da, Epilogue::Mask { mask: a })));
            }
            {
                // a = relu(m·W1 + b1): dm = da·W1ᵀ
                let (head, tail) = grad.split_at_mut(b1);
                linear_backward(tokens, c, c, &self.convolved[i], da, &p[w1..], &mut head[w1..][..c * c], &mut tail[..c], Some((&mut *dm, Epilogue::Set)));
            }
            // m = (kb + τ_{i+1}) + conv(h_i): per-row bias gradient Σ_p dm, taps, and dh_i
            drow_bias.fill(0.0);
            let (head, tail) = grad.split_at_mut(kb);
            linalg::circular_depthwise_backward(
                rows,
                l,
                c,
                kernel,
                &self.streams[i],
                &p[kw..],
                dm,
                &mut head[kw..][..kernel * c],
                drow_bias,
                dstream,
                &mut self.conv_scratch,
            );
            for (r, db) in drow_bias.chunks_exact(c).enumerate() {
                dtau[r * width + (i + 1) * c..r * width + (i + 2) * c].copy_from_slice(db);
                for (g, &v) in tail[..c].iter_mut().zip(db) {
                    *g += v;
                }
            }
        }
        // h_0[p] = (b_in + τ_0) + s_p·w_s + λ·s_p·w_e: per row, dτ_0 = Σ_p dh_0[p] and
        // S = Σ_p s_p·dh_0[p]; then dw_s += S, dw_e += λ·S, db_in += dτ_0.
        let sums = &mut drow_bias[..c];
        for r in 0..rows {
            let dh_r = &dstream[r * l * c..(r + 1) * l * c];
            let dtau0 = &mut dtau[r * width..r * width + c];
            dtau0.fill(0.0);
            linalg::add_column_sums(l, c, dh_r, dtau0);
            sums.fill(0.0);
            for (q, g) in dh_r.chunks_exact(c).enumerate() {
                let s = self.signs[r * l + q];
                for (o, &v) in sums.iter_mut().zip(g) {
                    *o += s * v;
                }
            }
            let lambda = self.evidence[r];
            let (gw, gb) = grad.split_at_mut(self.input_bias);
            for ch in 0..c {
                gw[self.input_weight + ch] += sums[ch];
                gw[self.input_weight + c + ch] += lambda * sums[ch];
                gb[ch] += dtau0[ch];
            }
        }
        linalg::matmul_tn_add(e, rows, width, &self.embedding, dtau, &mut grad[self.time_weight..self.time_weight + e * width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Architecture;
    use crate::network::common::testing::{check_gradient, config, random_bits};

    #[test]
    fn gradient_matches_finite_differences() {
        for kernel in [0, 3] {
            let mut cfg = config(Architecture::Circular, 6, 8, 4, 2);
            cfg.kernel = kernel;
            let mut rng = Rng::new(21);
            let mut net = CircularNetwork::new(&cfg, &mut rng);
            let xt = random_bits(3, 6, &mut rng);
            let counts = check_gradient(&mut net, &xt, &[2, 8, 5], 22);
            assert_eq!(counts.len(), 3 + 6 * 2 + 2);
        }
    }

    #[test]
    fn shifting_the_input_shifts_the_logits() {
        for kernel in [0, 5] {
            let mut cfg = config(Architecture::Circular, 20, 50, 8, 3);
            cfg.kernel = kernel;
            let mut rng = Rng::new(31);
            let mut net = CircularNetwork::new(&cfg, &mut rng);
            for v in net.parameters_mut() {
                *v = rng.uniform_f32() - 0.5;
            }
            let xt = random_bits(1, 20, &mut rng);
            let mut base = vec![0.0; 20];
            net.forward(&xt, &[17], &mut base);
            for shift in 1..20 {
                let shifted: Vec<f32> = (0..20).map(|i| xt[(i + 20 - shift) % 20]).collect();
                let mut out = vec![0.0; 20];
                net.forward(&shifted, &[17], &mut out);
                for i in 0..20 {
                    assert_eq!(out[i], base[(i + 20 - shift) % 20], "shift {shift}, kernel {kernel}");
                }
            }
        }
    }
}
