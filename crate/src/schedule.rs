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

/// One step x_t -> x_s (s < t) of a reverse chain, with the posterior q(x_s | x_t, x0) as a table
/// [x0][x_t]. For s = t - 1 it is `Schedule::posterior_table(t)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReverseStep {
    pub t: usize,
    pub s: usize,
    pub table: [[PosteriorEntry; 2]; 2],
}

impl ReverseStep {
    /// Whether the step lands on the data (s = 0), where q(x_0 | x_t, x0) is x0 itself.
    #[inline]
    pub fn to_data(&self) -> bool {
        self.s == 0
    }
}

impl Schedule {
    /// The reverse chain in `steps` network calls (0 or >= T: every step T..1): from t_k to t_{k-1}
    /// for k = K..1 with t_k = floor(k·T/K), so t_K = T and t_0 = 0 (a strided chain, as DDIM and
    /// D3PM sample with fewer steps; the x0-parameterised kernel takes any s < t).
    /// A jump s < t is one forward step of rate b = 1 - (1 - c_t)/(1 - c_s), since the kept
    /// fractions multiply (computed as 1 - prod_{s<i<=t} (1 - b_i)): q(x_s | x_t, x0) = `bernoulli::posterior(x0, x_t, b, c_s)`.
    pub fn reverse_steps(&self, steps: usize) -> Vec<ReverseStep> {
        let t_max = self.timesteps;
        let k_max = if steps == 0 { t_max } else { steps.min(t_max) };
        let time = |k: usize| k * t_max / k_max; // t_k = floor(k·T/K)
        (1..=k_max)
            .rev()
            .map(|k| {
                let (t, s) = (time(k), time(k - 1));
                let table = if s + 1 == t { self.posterior[t] } else { self.jump_table(t, s) };
                ReverseStep { t, s, table }
            })
            .collect()
    }

    /// q(x_s | x_t, x0) for s < t - 1 (see `reverse_steps`).
    fn jump_table(&self, t: usize, s: usize) -> [[PosteriorEntry; 2]; 2] {
        // b = 1 - prod_{s<i<=t} (1 - b_i), which is 1 - (1-c_t)/(1-c_s) without dividing by 0 once c_s = 1
        let rate = 1.0 - self.b[s + 1..=t].iter().map(|b| 1.0 - b).product::<f64>();
        let mut table = [[PosteriorEntry::default(); 2]; 2];
        for (x0, row) in table.iter_mut().enumerate() {
            for (xt, entry) in row.iter_mut().enumerate() {
                let (q1, q0) = bernoulli::posterior(x0 as f64, xt as f64, rate, self.c[s]);
                *entry = PosteriorEntry { q1, q0, negative_entropy: bernoulli::negative_entropy(q1, q0) };
            }
        }
        table
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

    #[test]
    fn the_full_reverse_chain_is_every_step_with_the_stored_tables() {
        for kind in KINDS {
            let s = Schedule::new(kind, 7);
            for steps in [0, 7, 100] {
                let chain = s.reverse_steps(steps);
                assert_eq!(chain.len(), 7);
                for (i, step) in chain.iter().enumerate() {
                    assert_eq!((step.t, step.s), (7 - i, 6 - i));
                    assert_eq!(&step.table, s.posterior_table(step.t));
                }
            }
        }
    }

    #[test]
    fn a_strided_chain_covers_t_to_0_in_k_strictly_decreasing_steps() {
        let s = Schedule::new(ScheduleKind::Paper, 1000);
        for steps in [1, 3, 100, 999] {
            let chain = s.reverse_steps(steps);
            assert_eq!(chain.len(), steps);
            assert_eq!(chain[0].t, 1000);
            assert_eq!(chain.last().unwrap().s, 0);
            for pair in chain.windows(2) {
                assert_eq!(pair[0].s, pair[1].t);
            }
            assert!(chain.iter().all(|step| step.s < step.t));
        }
    }

    /// q(x_s | x_t, x0) of a jump equals the two-step chain marginalised over the middle state:
    /// sum over x_m of q(x_s | x_m, x0) q(x_m | x_t, x0), for s < m < t (Markov forward process).
    #[test]
    fn a_jump_posterior_is_the_composition_of_its_steps() {
        for kind in KINDS {
            let s = Schedule::new(kind, 12);
            // a chain of 3 steps on T = 12 jumps 12 -> 8 -> 4 -> 0; compare 8 -> 4 against 8 -> 6 -> 4
            let jump = s.jump_table(8, 4);
            let (upper, lower) = (s.jump_table(8, 6), s.jump_table(6, 4));
            for x0 in 0..2 {
                for xt in 0..2 {
                    let composed = upper[x0][xt].q1 * lower[x0][1].q1 + upper[x0][xt].q0 * lower[x0][0].q1;
                    assert!((jump[x0][xt].q1 - composed).abs() < 1e-12, "{kind:?} x0={x0} xt={xt}");
                    assert!((jump[x0][xt].q1 + jump[x0][xt].q0 - 1.0).abs() < 1e-12);
                }
            }
            // a one-step "jump" computed in general agrees with the stored table
            for t in 2..=12 {
                let general = s.jump_table(t, t - 1);
                for x0 in 0..2 {
                    for xt in 0..2 {
                        assert!(
                            (general[x0][xt].q1 - s.posterior_table(t)[x0][xt].q1).abs() < 1e-12,
                            "{kind:?} t={t} {} {}",
                            general[x0][xt].q1,
                            s.posterior_table(t)[x0][xt].q1
                        );
                    }
                }
            }
            // a jump to the data is x0 itself
            for xt in 0..2 {
                assert_eq!(s.jump_table(9, 0)[1][xt].q1, 1.0);
                assert_eq!(s.jump_table(9, 0)[0][xt].q1, 0.0);
            }
        }
    }
}
