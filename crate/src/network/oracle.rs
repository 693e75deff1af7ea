//! The "oracle" reverse kernel: the exact per-bit x0-posterior under a finite dataset, as a
//! network without parameters. Evaluation tests and examples/inpaint_compare.rs measure the best
//! bound a factorised kernel can reach with it (DESIGN.md §3).

use super::{ParameterGroup, ReverseNetwork};
use crate::config::Parameterisation;
use crate::elementary::{exp, ln};
use crate::schedule::Schedule;

/// The best factorised reverse kernel for a finite dataset, as a network for the x0
/// parameterisation: its logit for bit i is ln P(x0_i = 1 | x_t) - ln P(x0_i = 0 | x_t) under the
/// uniform mixture over the dataset's K sequences, with weights
///   w_k ∝ q(x_t | x0^k) = (1 - c_t/2)^{L - d_k} (c_t/2)^{d_k},  d_k = Hamming distance(x_t, x0^k).
/// A bit on which all sequences agree gets logit ±1e4 (probability 0/1 up to rounding).
pub struct OracleNetwork {
    length: usize,
    dataset: Vec<u8>,
    sequences: usize,
    /// ln(1 - c_t/2) and ln(c_t/2) for t = 0..=T.
    log_same: Vec<f64>,
    log_flip: Vec<f64>,
    log_weights: Vec<f64>,
}

impl OracleNetwork {
    pub fn new(schedule: &Schedule, length: usize, dataset: &[u8]) -> Self {
        assert!(length > 0 && !dataset.is_empty() && dataset.len().is_multiple_of(length));
        let log_same = (0..=schedule.timesteps).map(|t| ln(1.0 - schedule.c(t) / 2.0)).collect();
        let log_flip = (0..=schedule.timesteps).map(|t| ln(schedule.c(t) / 2.0)).collect();
        let sequences = dataset.len() / length;
        OracleNetwork { length, dataset: dataset.to_vec(), sequences, log_same, log_flip, log_weights: vec![0.0; sequences] }
    }

    /// The parameterisation the oracle's logits are meant for.
    pub const PARAMETERISATION: Parameterisation = Parameterisation::X0;
}

impl ReverseNetwork for OracleNetwork {
    fn layout(&self) -> Vec<ParameterGroup> {
        Vec::new()
    }
    fn parameters(&self) -> &[f32] {
        &[]
    }
    fn parameters_mut(&mut self) -> &mut [f32] {
        &mut []
    }
    fn forward(&mut self, xt: &[f32], t: &[u32], logits: &mut [f32]) {
        let length = self.length;
        for (r, &tr) in t.iter().enumerate() {
            let row = &xt[r * length..(r + 1) * length];
            let (same, flip) = (self.log_same[tr as usize], self.log_flip[tr as usize]);
            let mut max = f64::NEG_INFINITY;
            for k in 0..self.sequences {
                let data = &self.dataset[k * length..(k + 1) * length];
                let distance = row.iter().zip(data).filter(|(&x, &d)| (x != 0.0) != (d != 0)).count();
                // ln q(x_t | x0^k); with c_t = 0 and d > 0 this is -inf (0·-inf guarded)
                let w = if distance == 0 { length as f64 * same } else { (length - distance) as f64 * same + distance as f64 * flip };
                self.log_weights[k] = w;
                max = max.max(w);
            }
            for w in self.log_weights.iter_mut() {
                *w = exp(*w - max); // normalised so the largest weight is 1
            }
            for i in 0..length {
                let (mut one, mut zero) = (0.0f64, 0.0f64);
                for k in 0..self.sequences {
                    if self.dataset[k * length + i] == 1 {
                        one += self.log_weights[k];
                    } else {
                        zero += self.log_weights[k];
                    }
                }
                logits[r * length + i] = if zero == 0.0 {
                    1e4
                } else if one == 0.0 {
                    -1e4
                } else {
                    ln(one / zero) as f32
                };
            }
        }
    }
    fn backward(&mut self, _dlogits: &[f32], _grad: &mut [f32]) {}
}
