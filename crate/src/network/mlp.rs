//! The default architecture: a time-conditioned residual MLP (no per-t readouts).
//!
//! With s = 2·x_t - 1 (±1) and λ_t the evidence log-odds of `TimeFeatures` (for the
//! x0-parameterisation λ_t = log((1 - c_t/2)/(c_t/2))), for each row:
//!
//!   u      = [s, λ_t·s]                                   (2L input features)
//!   h_0    = u·W_in + e(t)·W_time + b_in                  (e(t): sinusoidal embedding, width E)
//!   a_i    = relu(h_i·W1_i + b1_i),  h_{i+1} = h_i + a_i·W2_i + b2_i     (i < layers)
//!   logits = h_n·W_out + b_out + λ_t·s
//!
//! Why the last term: x_t's bits are independent given x0, so exactly
//! logit P(x0_i = 1 | x_t) = λ_t·s_i + logit P(x0_i = 1 | x_t without bit i); the network only
//! has to learn what the other bits say (for the direct parameterisation the same holds with
//! b_t in place of c_t). λ_t·s in the input lets the first layer weigh the evidence by t.
//!
//! Layout, in order: "input.weight" [2L, H], "input.bias" [H], "time.weight" [E, H],
//! then per block i "blocks.i.fc1.weight" [H, H], "blocks.i.fc1.bias" [H],
//! "blocks.i.fc2.weight" [H, H], "blocks.i.fc2.bias" [H]; "output.weight" [H, L], "output.bias" [L].
//! Initialisation: weights uniform(±1/sqrt(fan_in)) in layout order, biases 0, output.weight 0
//! (so the untrained network is the independent-bits posterior λ_t·s + b_out).

use super::common::{check_times, ensure_len, init_uniform, linear_backward, linear_forward, LayoutBuilder, TimeFeatures};
use super::{ParameterGroup, ReverseNetwork};
use crate::config::ModelConfig;
use crate::linalg::{self, Epilogue, Layout};
use crate::rng::Rng;

pub struct MlpNetwork {
    length: usize,
    hidden: usize,
    layers: usize,
    timesteps: usize,
    time: TimeFeatures,
    layout: Vec<ParameterGroup>,
    parameters: Vec<f32>,
    input_weight: usize,
    input_bias: usize,
    time_weight: usize,
    /// Per block: offsets of fc1.weight, fc1.bias, fc2.weight, fc2.bias.
    blocks: Vec<[usize; 4]>,
    output_weight: usize,
    output_bias: usize,
    // State of the last forward pass.
    rows: usize,
    /// u = [s, λ·s], rows × 2L.
    features: Vec<f32>,
    /// e(t) per row, rows × E.
    embedding: Vec<f32>,
    /// λ_t per row.
    evidence: Vec<f32>,
    /// streams[i] = h_i, rows × H, i = 0..=layers.
    streams: Vec<Vec<f32>>,
    /// activations[i] = a_i, rows × H.
    activations: Vec<Vec<f32>>,
    // Scratch for backward.
    dstream: Vec<f32>,
    dactivation: Vec<f32>,
}

impl MlpNetwork {
    pub fn new(config: &ModelConfig, rng: &mut Rng) -> Self {
        let (l, h, e) = (config.length, config.hidden, config.time_embedding);
        let mut builder = LayoutBuilder::default();
        let input_weight = builder.add("input.weight", &[2 * l, h], true);
        let input_bias = builder.add("input.bias", &[h], false);
        let time_weight = builder.add("time.weight", &[e, h], true);
        let mut blocks = Vec::new();
        for i in 0..config.layers {
            blocks.push([
                builder.add(&format!("blocks.{i}.fc1.weight"), &[h, h], true),
                builder.add(&format!("blocks.{i}.fc1.bias"), &[h], false),
                builder.add(&format!("blocks.{i}.fc2.weight"), &[h, h], true),
                builder.add(&format!("blocks.{i}.fc2.bias"), &[h], false),
            ]);
        }
        let output_weight = builder.add("output.weight", &[h, l], true);
        let output_bias = builder.add("output.bias", &[l], false);
        let mut parameters = vec![0.0f32; builder.total];
        for group in builder.groups.iter().filter(|g| g.decay && g.name != "output.weight") {
            let bound = 1.0 / (group.shape[0].max(1) as f32).sqrt();
            init_uniform(&mut parameters[group.offset..group.offset + group.len()], bound, rng);
        }
        Self {
            length: l,
            hidden: h,
            layers: config.layers,
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
            features: Vec::new(),
            embedding: Vec::new(),
            evidence: Vec::new(),
            streams: vec![Vec::new(); config.layers + 1],
            activations: vec![Vec::new(); config.layers],
            dstream: Vec::new(),
            dactivation: Vec::new(),
        }
    }
}

/// (weight gradient, bias gradient) slices of `grad` for a weight at `w` of `w_len` values and
/// a bias at `b` (> w) of `b_len` values.
fn weight_and_bias(grad: &mut [f32], w: usize, w_len: usize, b: usize, b_len: usize) -> (&mut [f32], &mut [f32]) {
    let (head, tail) = grad.split_at_mut(b);
    (&mut head[w..w + w_len], &mut tail[..b_len])
}

impl ReverseNetwork for MlpNetwork {
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
        let (l, h, e) = (self.length, self.hidden, self.time.width);
        let rows = t.len();
        assert_eq!(xt.len(), rows * l);
        assert_eq!(logits.len(), rows * l);
        check_times(t, self.timesteps);
        self.rows = rows;
        ensure_len(&mut self.features, rows * 2 * l);
        ensure_len(&mut self.embedding, rows * e);
        ensure_len(&mut self.evidence, rows);
        for r in 0..rows {
            let lambda = self.time.evidence_of(t[r]);
            self.evidence[r] = lambda;
            for i in 0..l {
                let s = 2.0 * xt[r * l + i] - 1.0; // s = 2x - 1
                self.features[r * 2 * l + i] = s;
                self.features[r * 2 * l + l + i] = lambda * s;
            }
            self.embedding[r * e..(r + 1) * e].copy_from_slice(self.time.embedding_of(t[r]));
        }
        let p = &self.parameters;
        for s in &mut self.streams {
            ensure_len(s, rows * h);
        }
        for a in &mut self.activations {
            ensure_len(a, rows * h);
        }
        // h_0 = u·W_in + e(t)·W_time + b_in
        let h0 = &mut self.streams[0][..rows * h];
        linear_forward(rows, 2 * l, h, &self.features, &p[self.input_weight..], &p[self.input_bias..], h0, false);
        linalg::matmul_add(rows, e, h, &self.embedding, &p[self.time_weight..], h0);
        for (i, &[w1, b1, w2, b2]) in self.blocks.iter().enumerate() {
            let (done, next) = self.streams.split_at_mut(i + 1);
            let (hi, hn) = (&done[i][..rows * h], &mut next[0][..rows * h]);
            let a = &mut self.activations[i][..rows * h];
            // a_i = relu(h_i·W1 + b1)
            linear_forward(rows, h, h, hi, &p[w1..], &p[b1..], a, true);
            // h_{i+1} = (b2 + a_i·W2) + h_i
            linalg::gemm(rows, h, h, a, Layout::Normal, &p[w2..], Layout::Normal, hn, Epilogue::Residual { bias: &p[b2..], residual: hi });
        }
        // logits = h_n·W_out + b_out + λ_t·s
        let hn = &self.streams[self.layers][..rows * h];
        linear_forward(rows, h, l, hn, &p[self.output_weight..], &p[self.output_bias..], logits, false);
        for r in 0..rows {
            for i in 0..l {
                logits[r * l + i] += self.features[r * 2 * l + l + i];
            }
        }
    }

    fn backward(&mut self, dlogits: &[f32], grad: &mut [f32]) {
        let (l, h, e, rows) = (self.length, self.hidden, self.time.width, self.rows);
        assert_eq!(dlogits.len(), rows * l);
        assert_eq!(grad.len(), self.parameters.len());
        ensure_len(&mut self.dstream, rows * h);
        ensure_len(&mut self.dactivation, rows * h);
        let p = &self.parameters;
        let dstream = &mut self.dstream[..rows * h];
        let dact = &mut self.dactivation[..rows * h];
        // Output layer (the λ·s skip has no parameters): dh_n = dlogits·W_outᵀ
        let (gw, gb) = weight_and_bias(grad, self.output_weight, h * l, self.output_bias, l);
        let hn = &self.streams[self.layers][..rows * h];
        linear_backward(rows, h, l, hn, dlogits, &p[self.output_weight..], gw, gb, Some((&mut *dstream, Epilogue::Set)));
        for (i, &[w1, b1, w2, b2]) in self.blocks.iter().enumerate().rev() {
            let a = &self.activations[i][..rows * h];
            // h_{i+1} = h_i + a·W2 + b2 with a = relu(h_i·W1 + b1):
            // da = (dh_{i+1}·W2ᵀ) ⊙ [a > 0], then dh_i = dh_{i+1} + da·W1ᵀ.
            let (gw, gb) = weight_and_bias(grad, w2, h * h, b2, h);
            linear_backward(rows, h, h, a, dstream, &p[w2..], gw, gb, Some((&mut *dact, Epilogue::Mask { mask: a })));
            let (gw, gb) = weight_and_bias(grad, w1, h * h, b1, h);
            linear_backward(rows, h, h, &self.streams[i], dact, &p[w1..], gw, gb, Some((&mut *dstream, Epilogue::Add)));
        }
        // h_0 = u·W_in + e·W_time + b_in
        let (gw, gb) = weight_and_bias(grad, self.input_weight, 2 * l * h, self.input_bias, h);
        linear_backward(rows, 2 * l, h, &self.features, dstream, &p[self.input_weight..], gw, gb, None);
        linalg::matmul_tn_add(e, rows, h, &self.embedding, dstream, &mut grad[self.time_weight..self.time_weight + e * h]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Architecture, Parameterisation};
    use crate::network::common::testing::{check_gradient, config, random_bits};

    #[test]
    fn gradient_matches_finite_differences() {
        for parameterisation in [Parameterisation::X0, Parameterisation::Direct] {
            let mut cfg = config(Architecture::Mlp, 6, 10, 7, 2);
            cfg.parameterisation = parameterisation;
            let mut rng = Rng::new(11);
            let mut net = MlpNetwork::new(&cfg, &mut rng);
            let xt = random_bits(5, 6, &mut rng);
            let counts = check_gradient(&mut net, &xt, &[1, 10, 4, 4, 7], 12);
            assert_eq!(counts.len(), 3 + 4 * 2 + 2);
        }
    }

    #[test]
    fn untrained_network_is_the_independent_bit_posterior() {
        // output.weight starts at 0, output.bias at 0: logits = λ_t·s, λ_t = log((1 - c_t/2)/(c_t/2))
        let cfg = config(Architecture::Mlp, 4, 10, 8, 2);
        let mut net = MlpNetwork::new(&cfg, &mut Rng::new(1));
        let mut logits = vec![0.0; 8];
        net.forward(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0], &[1, 10], &mut logits);
        let c1: f64 = 0.1;
        let lambda = ((1.0 - c1 / 2.0) / (c1 / 2.0)).ln() as f32;
        assert!((logits[0] - lambda).abs() < 1e-5 && (logits[1] + lambda).abs() < 1e-5);
        assert!(logits[4..].iter().all(|v| v.abs() < 1e-6), "c_T = 1: no evidence left");
    }
}
