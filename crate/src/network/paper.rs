//! The paper's architecture (DESIGN.md §3): a shared MLP L -> H -> ... -> H with ReLU
//! (`config.layers` hidden layers of width H = `config.hidden`), then a separate linear readout
//! H -> L for every time step t, giving logits (the sigmoid belongs to the objective).
//!
//!   h_1 = relu(x·W_0 + b_0),  h_{i+1} = relu(h_i·W_i + b_i),  logits = h_n·R_t + r_t
//!
//! Conventions mirrored exactly by `src/reference/paper-network.ts`:
//! - the input is the bit itself, x_t in {0, 1} (not 2x - 1);
//! - weights are stored [in, out] row-major (y = x·W + b); the layout, in order:
//!   "shared.0.weight" [L, H], "shared.0.bias" [H], "shared.i.weight" [H, H], "shared.i.bias" [H]
//!   for i = 1..layers-1, "readout.weight" [T, H, L], "readout.bias" [T, L];
//! - initialisation: weights drawn in layout order as std·`Rng::normal()` (rounded to f32), with
//!   std = sqrt(2/fan_in) (He) for the shared layers and sqrt(1/H) for the readouts; biases 0.
//!
//! Rows may have different t: the readout groups rows by t (one matrix product per group; groups
//! of fewer than `SMALL_GROUP` rows go row by row). The full-sum objective calls it with one t
//! for the whole batch: that is the fast path.

use super::common::{check_times, ensure_len, linear_backward, linear_forward, LayoutBuilder};
use super::{ParameterGroup, ReverseNetwork};
use crate::config::ModelConfig;
use crate::linalg::{self, Epilogue};
use crate::rng::Rng;

/// Groups of fewer rows than this (rows sharing a t) go through the readout row by row.
const SMALL_GROUP: usize = 4;

pub struct PaperNetwork {
    length: usize,
    hidden: usize,
    layers: usize,
    timesteps: usize,
    layout: Vec<ParameterGroup>,
    parameters: Vec<f32>,
    /// Offsets of shared.i.weight / shared.i.bias.
    shared_weight: Vec<usize>,
    shared_bias: Vec<usize>,
    readout_weight: usize,
    readout_bias: usize,
    // State of the last forward pass, kept for backward.
    rows: usize,
    input: Vec<f32>,
    /// activations[i]: rows × H, the ReLU output of shared layer i.
    activations: Vec<Vec<f32>>,
    /// Rows ordered by t (stable), and the groups [start, end) of equal t within that order.
    order: Vec<usize>,
    groups: Vec<(u32, usize, usize)>,
    // Scratch.
    gathered: Vec<f32>,
    gathered_out: Vec<f32>,
    dhidden: Vec<f32>,
    dhidden_prev: Vec<f32>,
}

impl PaperNetwork {
    pub fn new(config: &ModelConfig, rng: &mut Rng) -> Self {
        let (length, hidden, layers, timesteps) = (config.length, config.hidden, config.layers, config.timesteps);
        let mut builder = LayoutBuilder::default();
        let mut shared_weight = Vec::new();
        let mut shared_bias = Vec::new();
        for i in 0..layers {
            let fan_in = if i == 0 { length } else { hidden };
            shared_weight.push(builder.add(&format!("shared.{i}.weight"), &[fan_in, hidden], true));
            shared_bias.push(builder.add(&format!("shared.{i}.bias"), &[hidden], false));
        }
        let readout_weight = builder.add("readout.weight", &[timesteps, hidden, length], true);
        let readout_bias = builder.add("readout.bias", &[timesteps, length], false);
        let mut parameters = vec![0.0f32; builder.total];
        for group in builder.groups.iter().filter(|g| g.decay) {
            let fan_in = if group.name == "readout.weight" { hidden } else { group.shape[0] };
            let std = if group.name == "readout.weight" { (1.0 / fan_in as f64).sqrt() } else { (2.0 / fan_in as f64).sqrt() };
            for v in &mut parameters[group.offset..group.offset + group.len()] {
                *v = (std * rng.normal() as f64) as f32; // std·N(0,1) as f32 (TS: Float32Array of std·normal())
            }
        }
        Self {
            length,
            hidden,
            layers,
            timesteps,
            layout: builder.groups,
            parameters,
            shared_weight,
            shared_bias,
            readout_weight,
            readout_bias,
            rows: 0,
            input: Vec::new(),
            activations: vec![Vec::new(); layers],
            order: Vec::new(),
            groups: Vec::new(),
            gathered: Vec::new(),
            gathered_out: Vec::new(),
            dhidden: Vec::new(),
            dhidden_prev: Vec::new(),
        }
    }

    /// True when the group at order[start..end] is rows start..end themselves (rows given in order of t).
    fn group_is_contiguous(&self, start: usize, end: usize) -> bool {
        // `order` is sorted by (t, row), so the group's rows increase: first and last fix them all
        self.order[start] == start && self.order[end - 1] == end - 1
    }

    /// Sorts rows by t (stable) into `order` and records the runs of equal t in `groups`.
    fn group_rows_by_time(&mut self, t: &[u32]) {
        self.order.clear();
        self.order.extend(0..t.len());
        self.groups.clear();
        if t.windows(2).all(|w| w[0] == w[1]) {
            if !t.is_empty() {
                self.groups.push((t[0], 0, t.len()));
            }
            return;
        }
        self.order.sort_unstable_by_key(|&r| (t[r], r)); // (t, row): the stable order without a merge buffer
        let mut start = 0;
        for i in 1..=self.order.len() {
            if i == self.order.len() || t[self.order[i]] != t[self.order[start]] {
                self.groups.push((t[self.order[start]], start, i));
                start = i;
            }
        }
    }
}

impl ReverseNetwork for PaperNetwork {
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
        let (l, h) = (self.length, self.hidden);
        let rows = t.len();
        assert_eq!(xt.len(), rows * l);
        assert_eq!(logits.len(), rows * l);
        check_times(t, self.timesteps);
        self.rows = rows;
        ensure_len(&mut self.input, rows * l);
        self.input[..rows * l].copy_from_slice(xt); // the bit itself is the input
        for i in 0..self.layers {
            let mut out = std::mem::take(&mut self.activations[i]);
            ensure_len(&mut out, rows * h);
            let (n_in, x) = if i == 0 { (l, &self.input[..]) } else { (h, &self.activations[i - 1][..]) };
            let w = &self.parameters[self.shared_weight[i]..self.shared_weight[i] + n_in * h];
            let b = &self.parameters[self.shared_bias[i]..self.shared_bias[i] + h];
            // h_{i+1} = relu(h_i·W_i + b_i)
            linear_forward(rows, n_in, h, x, w, b, &mut out, true);
            self.activations[i] = out;
        }
        self.group_rows_by_time(t);
        let last = &self.activations[self.layers - 1];
        for &(tg, start, end) in &self.groups {
            let n = end - start;
            let w_at = self.readout_weight + (tg as usize - 1) * h * l;
            let b_at = self.readout_bias + (tg as usize - 1) * l;
            let w = &self.parameters[w_at..w_at + h * l];
            let b = &self.parameters[b_at..b_at + l];
            // logits = h_n·R_t + r_t for the rows of this group
            if n == rows {
                linear_forward(rows, h, l, last, w, b, logits, false);
            } else if self.group_is_contiguous(start, end) {
                // the rows come ordered by t (the full-sum objective's passes): no gathering
                linear_forward(n, h, l, &last[start * h..end * h], w, b, &mut logits[start * l..end * l], false);
            } else if n < SMALL_GROUP {
                for &r in &self.order[start..end] {
                    linalg::linear_row(h, l, &last[r * h..(r + 1) * h], w, b, &mut logits[r * l..(r + 1) * l]);
                }
            } else {
                ensure_len(&mut self.gathered, n * h);
                ensure_len(&mut self.gathered_out, n * l);
                for (g, &r) in self.order[start..end].iter().enumerate() {
                    self.gathered[g * h..(g + 1) * h].copy_from_slice(&last[r * h..(r + 1) * h]);
                }
                linear_forward(n, h, l, &self.gathered, w, b, &mut self.gathered_out, false);
                for (g, &r) in self.order[start..end].iter().enumerate() {
                    logits[r * l..(r + 1) * l].copy_from_slice(&self.gathered_out[g * l..(g + 1) * l]);
                }
            }
        }
    }

    fn backward(&mut self, dlogits: &[f32], grad: &mut [f32]) {
        let (l, h, rows) = (self.length, self.hidden, self.rows);
        assert_eq!(dlogits.len(), rows * l);
        assert_eq!(grad.len(), self.parameters.len());
        ensure_len(&mut self.dhidden, rows * h);
        ensure_len(&mut self.dhidden_prev, rows * h);
        let last = &self.activations[self.layers - 1][..rows * h];
        // Readouts, per group of equal t: dR_t += h_nᵀ·dlogits, dr_t += Σ dlogits,
        // dh_n = (dlogits·R_tᵀ) ⊙ [h_n > 0] (through the last ReLU).
        for &(tg, start, end) in &self.groups {
            let n = end - start;
            let w_at = self.readout_weight + (tg as usize - 1) * h * l;
            let b_at = self.readout_bias + (tg as usize - 1) * l;
            let w = &self.parameters[w_at..w_at + h * l];
            let (head, tail) = grad.split_at_mut(b_at);
            let (grad_w, grad_b) = (&mut head[w_at..w_at + h * l], &mut tail[..l]);
            if n == rows {
                let dh = (&mut self.dhidden[..rows * h], Epilogue::Mask { mask: last });
                linear_backward(rows, h, l, last, dlogits, w, grad_w, grad_b, Some(dh));
            } else if self.group_is_contiguous(start, end) {
                let last_group = &last[start * h..end * h];
                let dh = (&mut self.dhidden[start * h..end * h], Epilogue::Mask { mask: last_group });
                linear_backward(n, h, l, last_group, &dlogits[start * l..end * l], w, grad_w, grad_b, Some(dh));
            } else if n < SMALL_GROUP {
                for &r in &self.order[start..end] {
                    let (h_r, dl_r) = (&last[r * h..(r + 1) * h], &dlogits[r * l..(r + 1) * l]);
                    linalg::outer_add(h, l, h_r, dl_r, grad_w);
                    for (gb, &d) in grad_b.iter_mut().zip(dl_r) {
                        *gb += d;
                    }
                    for (p, dh) in self.dhidden[r * h..(r + 1) * h].iter_mut().enumerate() {
                        *dh = if h_r[p] > 0.0 { linalg::dot(&w[p * l..(p + 1) * l], dl_r) } else { 0.0 };
                    }
                }
            } else {
                ensure_len(&mut self.gathered, n * h);
                ensure_len(&mut self.gathered_out, n * l);
                for (g, &r) in self.order[start..end].iter().enumerate() {
                    self.gathered[g * h..(g + 1) * h].copy_from_slice(&last[r * h..(r + 1) * h]);
                    self.gathered_out[g * l..(g + 1) * l].copy_from_slice(&dlogits[r * l..(r + 1) * l]);
                }
                let gathered = &self.gathered[..n * h];
                let dh_group = &mut self.dhidden_prev[..n * h];
                linear_backward(n, h, l, gathered, &self.gathered_out[..n * l], w, grad_w, grad_b, Some((&mut *dh_group, Epilogue::Mask { mask: gathered })));
                for (g, &r) in self.order[start..end].iter().enumerate() {
                    self.dhidden[r * h..(r + 1) * h].copy_from_slice(&dh_group[g * h..(g + 1) * h]);
                }
            }
        }
        // Shared layers, last to first; dhidden holds the gradient at layer i's pre-activation.
        for i in (0..self.layers).rev() {
            let n_in = if i == 0 { l } else { h };
            let x = if i == 0 { &self.input[..rows * l] } else { &self.activations[i - 1][..rows * h] };
            let (w_at, b_at) = (self.shared_weight[i], self.shared_bias[i]);
            let w = &self.parameters[w_at..w_at + n_in * h];
            let (head, tail) = grad.split_at_mut(b_at);
            let (grad_w, grad_b) = (&mut head[w_at..w_at + n_in * h], &mut tail[..h]);
            let dy = &self.dhidden[..rows * h];
            if i == 0 {
                linear_backward(rows, n_in, h, x, dy, w, grad_w, grad_b, None);
            } else {
                // dh_{i-1} = (dh_i·W_iᵀ) ⊙ [h_{i-1} > 0]
                let dx = (&mut self.dhidden_prev[..rows * h], Epilogue::Mask { mask: x });
                linear_backward(rows, n_in, h, x, dy, w, grad_w, grad_b, Some(dx));
                std::mem::swap(&mut self.dhidden, &mut self.dhidden_prev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Architecture;
    use crate::network::common::testing::{check_gradient, config, random_bits};

    #[test]
    fn gradient_matches_finite_differences_with_mixed_t() {
        let cfg = config(Architecture::Paper, 7, 5, 6, 3);
        let mut rng = Rng::new(1);
        let mut net = PaperNetwork::new(&cfg, &mut rng);
        // t = 3 has 5 rows (a gathered group through the matrix product), the others go row by row
        let xt = random_bits(11, 7, &mut rng);
        let t = [3, 1, 5, 3, 2, 3, 5, 1, 4, 3, 3];
        let counts = check_gradient(&mut net, &xt, &t, 2);
        assert_eq!(counts.len(), 8);
    }

    #[test]
    fn gradient_matches_finite_differences_with_one_t() {
        let cfg = config(Architecture::Paper, 5, 3, 4, 2);
        let mut rng = Rng::new(3);
        let mut net = PaperNetwork::new(&cfg, &mut rng);
        let xt = random_bits(6, 5, &mut rng);
        check_gradient(&mut net, &xt, &[2; 6], 4);
    }

    #[test]
    fn layout_is_in_the_documented_order() {
        let cfg = config(Architecture::Paper, 20, 2000, 50, 2);
        let net = PaperNetwork::new(&cfg, &mut Rng::new(0));
        let names: Vec<_> = net.layout().iter().map(|g| (g.name.clone(), g.shape.clone())).collect();
        assert_eq!(
            names,
            [
                ("shared.0.weight".to_string(), vec![20, 50]),
                ("shared.0.bias".to_string(), vec![50]),
                ("shared.1.weight".to_string(), vec![50, 50]),
                ("shared.1.bias".to_string(), vec![50]),
                ("readout.weight".to_string(), vec![2000, 50, 20]),
                ("readout.bias".to_string(), vec![2000, 20]),
            ]
        );
    }

    #[test]
    fn init_is_scaled() {
        let cfg = config(Architecture::Paper, 20, 100, 50, 2);
        let a = PaperNetwork::new(&cfg, &mut Rng::new(9));
        // He init: the first layer's weights have variance 2/L; biases are 0
        let w = &a.parameters()[..20 * 50];
        let var = w.iter().map(|v| (v * v) as f64).sum::<f64>() / w.len() as f64;
        assert!((var - 0.1).abs() < 0.015, "{var}");
        assert!(a.parameters()[1000..1050].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn rows_grouped_by_t_equal_rows_computed_one_by_one() {
        let cfg = config(Architecture::Paper, 6, 4, 5, 2);
        let mut rng = Rng::new(5);
        let mut net = PaperNetwork::new(&cfg, &mut rng);
        let xt = random_bits(9, 6, &mut rng);
        let t = [4, 2, 2, 1, 4, 3, 2, 2, 2];
        let mut logits = vec![0.0; 54];
        net.forward(&xt, &t, &mut logits);
        for r in 0..9 {
            let mut one = vec![0.0; 6];
            net.forward(&xt[r * 6..(r + 1) * 6], &t[r..r + 1], &mut one);
            for i in 0..6 {
                assert!((one[i] - logits[r * 6 + i]).abs() < 1e-5);
            }
        }
    }
}
