//! A cyclic-shift-equivariant network: every position p = 0..L-1 carries a vector of C channels
//! (C = `config.hidden`), and every layer is either the same map at each position or a circular
//! convolution over positions, so shifting x_t cyclically shifts the logits the same way.
//!
//! With s = 2·x_t - 1 (±1), λ_t the evidence log-odds of `TimeFeatures`, e(t) the sinusoidal
//! embedding and τ = e(t)·W_time split in chunks τ_0..τ_n of C values:
//!
//!   h_0[p]   = s_p·w_s + λ_t·s_p·w_e + b_in + τ_0
//!   m_i[p,c] = Σ_{d<K} k_i[d,c]·h_i[(p + d - K/2) mod L, c] + kb_i[c]   (depthwise circular conv)
//!   a_i[p]   = relu(m_i[p]·W1_i + b1_i + τ_{i+1})
//!   h_{i+1}[p] = h_i[p] + a_i[p]·W2_i + b2_i
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
use crate::linalg::{self, Epilogue};
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
    // Scratch for backward.
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
            dstream: Vec::new(),
            dconvolved: Vec::new(),
            dactivation: Vec::new(),
            dtime_projection: Vec::new(),
            conv_scratch: Vec::new(),
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
        ensure_len(&mut self.signs, tokens);
        ensure_len(&mut self.evidence, rows);
        ensure_len(&mut self.embedding, rows * e);
        ensure_len(&mut self.time_projection, rows * (n + 1) * c);
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
        let width = (n + 1) * c;
        // τ = e(t)·W_time
        let tau = &mut self.time_projection[..rows * width];
        tau.fill(0.0);
        linalg::matmul_add(rows, e, width, &self.embedding, &p[self.time_weight..], tau);
        // h_0[p] = s_p·w_s + λ·s_p·w_e + b_in + τ_0
        let (w_s, w_e, b_in) = (&p[self.input_weight..][..c], &p[self.input_weight + c..][..c], &p[self.input_bias..][..c]);
        let h0 = &mut self.streams[0];
        for r in 0..rows {
            let tau0 = &tau[r * width..r * width + c];
            for q in 0..l {
                let s = self.signs[r * l + q];
                let ls = self.evidence[r] * s;
                let out = &mut h0[(r * l + q) * c..(r * l + q + 1) * c];
                for ch in 0..c {
                    out[ch] = s * w_s[ch] + ls * w_e[ch] + b_in[ch] + tau0[ch];
                }
            }
        }
        for (i, &[kw, kb, w1, b1, w2, b2]) in self.blocks.iter().enumerate() {
            let (done, next) = self.streams.split_at_mut(i + 1);
            let (hi, hn) = (&done[i][..tokens * c], &mut next[0][..tokens * c]);
            let m = &mut self.convolved[i][..tokens * c];
            let a = &mut self.activations[i][..tokens * c];
            linalg::circular_depthwise(rows, l, c, kernel, hi, &p[kw..], &p[kb..], m, &mut self.conv_scratch);
            // a = relu(m·W1 + b1 + τ_{i+1})
            linear_forward(tokens, c, c, m, &p[w1..], &p[b1..], a, false);
            for r in 0..rows {
                let tau_i = &tau[r * width + (i + 1) * c..r * width + (i + 2) * c];
                for q in 0..l {
                    for (v, &tv) in a[(r * l + q) * c..(r * l + q + 1) * c].iter_mut().zip(tau_i) {
                        *v = (*v + tv).max(0.0);
                    }
                }
            }
            // h_{i+1} = h_i + a·W2 + b2
            linear_forward(tokens, c, c, a, &p[w2..], &p[b2..], hn, false);
            for (o, &v) in hn.iter_mut().zip(hi) {
                *o += v;
            }
        }
        // logit[p] = h_n[p]·w_out + b_out + λ·s_p
        let hn = &self.streams[n][..tokens * c];
        linear_forward(tokens, c, 1, hn, &p[self.output_weight..], &p[self.output_bias..], logits, false);
        for r in 0..rows {
            for q in 0..l {
                logits[r * l + q] += self.evidence[r] * self.signs[r * l + q];
            }
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
        dtau.fill(0.0);
        {
            let (head, tail) = grad.split_at_mut(self.output_bias);
            linear_backward(tokens, c, 1, &self.streams[n], dlogits, &p[self.output_weight..], &mut head[self.output_weight..][..c], &mut tail[..1], Some((&mut *dstream, Epilogue::Set)));
        }
        for (i, &[kw, kb, w1, b1, w2, b2]) in self.blocks.iter().enumerate().rev() {
            let a = &self.activations[i][..tokens * c];
            {
                // da = (dh_{i+1}·W2ᵀ) ⊙ [a > 0]
                let (head, tail) = grad.split_at_mut(b2);
                linear_backward(tokens, c, c, a, dstream, &p[w2..], &mut head[w2..][..c * c], &mut tail[..c], Some((&mut *da, Epilogue::Mask { mask: a })));
            }
            // dτ_{i+1}[r] = Σ_p da[r, p]
            for r in 0..rows {
                let dtau_i = &mut dtau[r * width + (i + 1) * c..r * width + (i + 2) * c];
                linalg::add_column_sums(l, c, &da[r * l * c..(r + 1) * l * c], dtau_i);
            }
            {
                let (head, tail) = grad.split_at_mut(b1);
                linear_backward(tokens, c, c, &self.convolved[i], da, &p[w1..], &mut head[w1..][..c * c], &mut tail[..c], Some((&mut *dm, Epilogue::Set)));
            }
            let (head, tail) = grad.split_at_mut(kb);
            linalg::circular_depthwise_backward(rows, l, c, kernel, &self.streams[i], &p[kw..], dm, &mut head[kw..][..kernel * c], &mut tail[..c], dstream, &mut self.conv_scratch);
        }
        // h_0 = s·w_s + λ·s·w_e + b_in + τ_0
        for r in 0..rows {
            for q in 0..l {
                let s = self.signs[r * l + q];
                let ls = self.evidence[r] * s;
                let g = &dstream[(r * l + q) * c..(r * l + q + 1) * c];
                for ch in 0..c {
                    grad[self.input_weight + ch] += s * g[ch];
                    grad[self.input_weight + c + ch] += ls * g[ch];
                    grad[self.input_bias + ch] += g[ch];
                    dtau[r * width + ch] += g[ch];
                }
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

    #[test]
    fn init_is_deterministic() {
        let cfg = config(Architecture::Circular, 20, 100, 16, 2);
        let a = CircularNetwork::new(&cfg, &mut Rng::new(9));
        let b = CircularNetwork::new(&cfg, &mut Rng::new(9));
        assert_eq!(a.parameters(), b.parameters());
        assert_ne!(a.parameters(), CircularNetwork::new(&cfg, &mut Rng::new(8)).parameters());
    }

    #[test]
    fn results_do_not_depend_on_earlier_calls() {
        let cfg = config(Architecture::Circular, 7, 5, 9, 2);
        let mut used = CircularNetwork::new(&cfg, &mut Rng::new(1));
        let mut fresh = CircularNetwork::new(&cfg, &mut Rng::new(1));
        crate::network::common::history::check_no_history(&mut used, &mut fresh, 7, 5);
    }
}
