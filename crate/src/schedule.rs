//! Noise schedules (DESIGN.md §1): the per-step rates b_t (probability that step t replaces a bit
//! by a fair coin) and the cumulative rates c_t with 1 - c_t = prod_{s<=t} (1 - b_s), c_0 = 0.
//! All in f64. Every schedule ends with b_T = 1, so x_T is exactly uniform and the prior term of
//! the bound is 0.
//!
//! - `Paper`:  b_t = 1/(T - t + 1); then c_t = t/T exactly (stored in closed form).
//! - `Linear`: the DDPM linear schedule carried over to flip rates and scaled with T:
//!   b_t = β_1 + (β_end - β_1)·(t - 1)/(T - 2) for t = 1..T-1, with β_1 = 0.1/T and
//!   β_end = 20/T (1e-4 and 0.02 at T = 1000), each capped at 1; and b_T = 1.
//! - `Cosine`: Nichol & Dhariwal's cosine schedule for the kept fraction 1 - c_t:
//!   1 - c_t = h(t)/h(0), h(t) = cos²(π/2 · (t/T + s)/(1 + s)), s = 0.008;
//!   b_t = 1 - (1 - c_t)/(1 - c_{t-1}) for t < T, and b_T = 1.
//!
//! For `Linear` and `Cosine`, c_t is accumulated from the b_t by the product above.
//! The per-step posterior q(x_{t-1} | x_t, x0) takes only four values per t (x0, x_t in {0, 1});
//! `Schedule` tabulates them once.

use crate::bernoulli;
use crate::config::ScheduleKind;
use crate::elementary::cos;

/// Offset s of the cosine schedule (Nichol & Dhariwal 2021).
pub const COSINE_OFFSET: f64 = 0.008;

/// The posterior q(x_{t-1} | x_t, x0) for one (x0, x_t) pair, as the two probabilities
/// (q1 = P(x_{t-1} = 1), q0 = P(x_{t-1} = 0)) computed separately, and q1 ln q1 + q0 ln q0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PosteriorEntry {
    pub q1: f64,
    pub q0: f64,
    /// Minus the entropy of B(q1), nats (0·ln 0 = 0).
    pub negative_entropy: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// T.
    pub timesteps: usize,
    /// b[t] for t = 0..=T (b[0] = 0, unused).
    b: Vec<f64>,
    /// c[t] for t = 0..=T (c[0] = 0).
    c: Vec<f64>,
    /// posterior[t][x0][x_t] for t = 1..=T (index 0 unused).
    posterior: Vec<[[PosteriorEntry; 2]; 2]>,
}

impl Schedule {
    pub fn new(kind: ScheduleKind, timesteps: usize) -> Schedule {
        assert!(timesteps >= 1, "T must be at least 1");
        let t_max = timesteps;
        let tf = t_max as f64;
        let mut b = vec![0.0f64; t_max + 1];
        let mut c = vec![0.0f64; t_max + 1];
        match kind {
            ScheduleKind::Paper => {
                for t in 1..=t_max {
                    b[t] = 1.0 / (t_max - t + 1) as f64; // b_t = 1/(T - t + 1)
                    c[t] = t as f64 / tf; // c_t = t/T
                }
            }
            ScheduleKind::Linear => {
                let beta_first = (0.1 / tf).min(1.0);
                let beta_end = (20.0 / tf).min(1.0);
                for t in 1..t_max {
                    let fraction = if t_max > 2 { (t - 1) as f64 / (t_max - 2) as f64 } else { 0.0 };
                    b[t] = (beta_first + (beta_end - beta_first) * fraction).min(1.0);
                }
                b[t_max] = 1.0;
                accumulate(&b, &mut c);
            }
            ScheduleKind::Cosine => {
                let kept = |t: usize| {
                    let angle = std::f64::consts::FRAC_PI_2 * (t as f64 / tf + COSINE_OFFSET) / (1.0 + COSINE_OFFSET);
                    cos(angle) * cos(angle)
                };
                for t in 1..t_max {
                    b[t] = 1.0 - kept(t) / kept(t - 1); // b_t = 1 - (1-c_t)/(1-c_{t-1}), 1-c_t = h(t)/h(0)
                }
                b[t_max] = 1.0;
                accumulate(&b, &mut c);
            }
        }
        let mut posterior = vec![[[PosteriorEntry::default(); 2]; 2]; t_max + 1];
        for t in 1..=t_max {
            for x0 in 0..2 {
                for xt in 0..2 {
                    let (q1, q0) = bernoulli::posterior(x0 as f64, xt as f64, b[t], c[t - 1]);
                    posterior[t][x0][xt] = PosteriorEntry { q1, q0, negative_entropy: bernoulli::negative_entropy(q1, q0) };
                }
            }
        }
        Schedule { kind, timesteps, b, c, posterior }
    }

    /// b_t, t = 1..=T.
    #[inline]
    pub fn b(&self, t: usize) -> f64 {
        self.b[t]
    }

    /// c_t, t = 0..=T (c_0 = 0).
    #[inline]
    pub fn c(&self, t: usize) -> f64 {
        self.c[t]
    }

    /// q(x_{t-1} | x_t, x0) for bits x0, x_t in {0, 1}, t = 1..=T.
    #[inline]
    pub fn posterior(&self, t: usize, x0: u8, xt: u8) -> &PosteriorEntry {
        &self.posterior[t][x0 as usize][xt as usize]
    }

    /// The table [x0][x_t] of posteriors at step t.
    #[inline]
    pub fn posterior_table(&self, t: usize) -> &[[PosteriorEntry; 2]; 2] {
        &self.posterior[t]
    }
}

/// c_t = 1 - prod_{s<=t} (1 - b_s), c_0 = 0.
fn accumulate(b: &[f64], c: &mut [f64]) {
    let mut kept = 1.0f64;
    c[0] = 0.0;
    for t in 1..b.len() {
        kept *= 1.0 - b[t];
        c[t] = 1.0 - kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [ScheduleKind; 3] = [ScheduleKind::Paper, ScheduleKind::Linear, ScheduleKind::Cosine];

    #[test]
    fn paper_schedule_has_c_t_equal_t_over_t_max() {
        for &t_max in &[1usize, 2, 10, 2000] {
            let s = Schedule::new(ScheduleKind::Paper, t_max);
            let mut kept = 1.0f64;
            for t in 1..=t_max {
                assert_eq!(s.c(t), t as f64 / t_max as f64);
                kept *= 1.0 - s.b(t);
                // the product form agrees with the closed form
                assert!(((1.0 - s.c(t)) - kept).abs() < 1e-12, "t={t}");
            }
            assert_eq!(s.c(0), 0.0);
            assert_eq!(s.b(t_max), 1.0);
        }
    }

    #[test]
    fn every_schedule_ends_uniform_and_is_monotone() {
        for kind in KINDS {
            for &t_max in &[1usize, 2, 3, 10, 100, 2000] {
                let s = Schedule::new(kind, t_max);
                assert_eq!(s.b(t_max), 1.0, "{kind:?} T={t_max}");
                assert_eq!(s.c(t_max), 1.0, "{kind:?} T={t_max}");
                for t in 1..=t_max {
                    assert!(s.b(t) > 0.0 && s.b(t) <= 1.0, "{kind:?} T={t_max} t={t} b={}", s.b(t));
                    assert!(s.c(t) >= s.c(t - 1));
                    // 1 - c_t = (1 - c_{t-1})(1 - b_t)
                    let expected = (1.0 - s.c(t - 1)) * (1.0 - s.b(t));
                    assert!(((1.0 - s.c(t)) - expected).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn cosine_schedule_follows_its_closed_form() {
        let t_max = 50;
        let s = Schedule::new(ScheduleKind::Cosine, t_max);
        let h = |t: f64| ((t / t_max as f64 + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * std::f64::consts::FRAC_PI_2).cos().powi(2);
        for t in 0..=t_max {
            assert!(((1.0 - s.c(t)) - h(t as f64) / h(0.0)).abs() < 1e-12, "t={t}");
        }
    }

    #[test]
    fn posterior_table_matches_the_posterior_function() {
        let s = Schedule::new(ScheduleKind::Paper, 10);
        for t in 1..=10 {
            for x0 in 0..2u8 {
                for xt in 0..2u8 {
                    let (q1, q0) = bernoulli::posterior(x0 as f64, xt as f64, s.b(t), s.c(t - 1));
                    assert_eq!(s.posterior(t, x0, xt).q1, q1);
                    assert_eq!(s.posterior(t, x0, xt).q0, q0);
                }
            }
        }
        // at t = 1 the posterior is x0 itself
        for xt in 0..2u8 {
            assert_eq!(s.posterior(1, 1, xt).q1, 1.0);
            assert_eq!(s.posterior(1, 0, xt).q1, 0.0);
        }
    }
}
