//! The diffusion's two kernels per bit (DESIGN.md §1), shared by training, evaluation, sampling
//! and inpainting:
//! - forward noising q(x_t | x0): bit j of x_t is 1 with probability x0_j(1 - c_t) + c_t/2
//!   (`marginal_thresholds`, `draw_noisy_row(s)`);
//! - the reverse kernel f(x_t, t) = p(x_{t-1} = 1 | x_t) from the network's logit z:
//!   direct: f = sigmoid(z); x0: g = sigmoid(z), f = g·post(x0=1) + (1-g)·post(x0=0) with the
//!   posteriors q(x_{t-1} | x_t, x0) of `Schedule::posterior_table`; at t = 1 both are sigmoid(z)
//!   (`to_data`: a step that lands on x_0, where the posterior is x0 itself; a strided chain's
//!   steps t -> s use `Schedule::reverse_steps`' tables in place of the one-step ones)
//!   (`reverse_probability` in f64, `reverse_probabilities` for a batch in f32 lanes).
//!
//! The loss (KL terms against this kernel and their gradient) is in objective.rs.

use crate::bernoulli;
use crate::config::Parameterisation;
use crate::elementary::exp;
use crate::rng::{Rng, Rng4};
use crate::schedule::{PosteriorEntry, Schedule};
use crate::simd::{self, F4, M4};

/// (sigmoid(z), sigmoid(-z)) from e = e^{-|z|}: (1/(1+e), e/(1+e)) or swapped (no cancellation).
#[inline]
pub fn sigmoid_pair(z: f64) -> (f64, f64) {
    let e = exp(-z.abs());
    let inverse = 1.0 / (1.0 + e);
    let small = e * inverse;
    if z >= 0.0 {
        (inverse, small)
    } else {
        (small, inverse)
    }
}

/// The reverse kernel's two halves (f1, f0) = (p(x_{t-1}=1 | x_t), p(x_{t-1}=0 | x_t)) for one bit.
#[inline]
pub fn reverse_probability(parameterisation: Parameterisation, table: &[[PosteriorEntry; 2]; 2], to_data: bool, xt: u8, z: f64) -> (f64, f64) {
    let (g, h) = sigmoid_pair(z);
    if parameterisation == Parameterisation::Direct || to_data {
        (g, h)
    } else {
        let a = &table[1][xt as usize];
        let b = &table[0][xt as usize];
        (g * a.q1 + h * b.q1, g * a.q0 + h * b.q0) // f = g·post(x0=1) + (1-g)·post(x0=0)
    }
}

/// probabilities[k] = f(x_t, t) for bit k, written as branch-free loops (selects on the bit instead
/// of table indexing) so they can be vectorised. The direct kernel (and t = 1) is sigmoid(z) in f32
/// lanes (`sigmoid_f32`, within 3 ulp of the f64 value rounded to f32); the x0 kernel is
/// `reverse_probability` in f64, rounded to f32.
pub fn reverse_probabilities(
    parameterisation: Parameterisation,
    table: &[[PosteriorEntry; 2]; 2],
    to_data: bool,
    xt: &[u8],
    logits: &[f32],
    probabilities: &mut [f32],
) {
    if parameterisation == Parameterisation::Direct || to_data {
        let mut quads = probabilities.chunks_exact_mut(4);
        let mut logit_quads = logits.chunks_exact(4);
        for (f, z) in (&mut quads).zip(&mut logit_quads) {
            sigmoid_f32(F4::load(z)).store(f); // f = sigmoid(z)
        }
        let (rest, logit_rest) = (quads.into_remainder(), logit_quads.remainder());
        if !rest.is_empty() {
            let mut z = [0.0f32; 4];
            z[..rest.len()].copy_from_slice(logit_rest);
            let f = sigmoid_f32(F4::load(&z)).to_array();
            rest.copy_from_slice(&f[..rest.len()]);
        }
    } else {
        // f = g·post(x0=1) + (1-g)·post(x0=0), posts chosen by the bit x_t
        let (a_of_0, a_of_1) = (table[1][0].q1, table[1][1].q1);
        let (b_of_0, b_of_1) = (table[0][0].q1, table[0][1].q1);
        for ((f, &z), &x) in probabilities.iter_mut().zip(logits).zip(xt) {
            let (g, h) = sigmoid_pair(z as f64);
            let one = x != 0;
            let a = if one { a_of_1 } else { a_of_0 };
            let b = if one { b_of_1 } else { b_of_0 };
            *f = (g * a + h * b) as f32;
        }
    }
}

/// sigmoid(z) = 1/(1 + e^-z) in f32 lanes, from e = e^-|z| (`simd::exp_nonpositive`): 1/(1+e) for
/// z >= 0, e/(1+e) below, so nothing overflows or cancels.
#[inline(always)]
fn sigmoid_f32(z: F4) -> F4 {
    let (zero, one) = (F4::splat(0.0), F4::splat(1.0));
    let e = simd::exp_nonpositive(zero.sub(z.abs()));
    let inverse = one.div(one.add(e));
    z.ge(zero).select(inverse, e.mul(inverse))
}

/// Draws x_t ~ q(x_t | x0) for one row: bit j is 1 with probability x0_j(1 - c_t) + c_t/2,
/// compared in f32 (`Rng::bernoulli`), one uniform draw per bit in order j = 0..L.
#[inline]
pub fn draw_noisy_row(rng: &mut Rng, x0: &[u8], marginal_f32: [f32; 2], out: &mut [u8]) {
    for (o, &b) in out.iter_mut().zip(x0) {
        *o = rng.bernoulli(marginal_f32[b as usize]) as u8;
    }
}

/// `draw_noisy_row` for rows r = 0.. of x0 and out (L bits each) with generators rngs[r], four rows
/// at a time in lanes (`Rng4`: the same draws as row by row).
pub fn draw_noisy_rows(rngs: &mut [Rng], x0: &[u8], marginal_f32: [f32; 2], out: &mut [u8]) {
    let rows = rngs.len();
    let length = x0.len() / rows.max(1);
    let (low, high) = (F4::splat(marginal_f32[0]), F4::splat(marginal_f32[1]));
    let mut r = 0;
    while r + 4 <= rows {
        let mut lanes = Rng4::load(&rngs[r..r + 4]);
        let at = |i: usize, j: usize| (r + i) * length + j;
        for j in 0..length {
            let ones = M4::nonzero(&[x0[at(0, j)], x0[at(1, j)], x0[at(2, j)], x0[at(3, j)]]);
            let bits = lanes.bernoulli(ones.select(high, low)).to_bits();
            for (i, &bit) in bits.iter().enumerate() {
                out[at(i, j)] = bit;
            }
        }
        lanes.store(&mut rngs[r..r + 4]);
        r += 4;
    }
    for (r, rng) in rngs.iter_mut().enumerate().skip(r) {
        draw_noisy_row(rng, &x0[r * length..(r + 1) * length], marginal_f32, &mut out[r * length..(r + 1) * length]);
    }
}

/// (q(x_t=1 | x0=0), q(x_t=1 | x0=1)) rounded to f32, the thresholds of `draw_noisy_row`.
#[inline]
pub fn marginal_thresholds(schedule: &Schedule, t: usize) -> [f32; 2] {
    let c = schedule.c(t);
    [bernoulli::marginal(0.0, c) as f32, bernoulli::marginal(1.0, c) as f32]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScheduleKind;

    #[test]
    fn noisy_rows_drawn_four_at_a_time_equal_rows_drawn_one_by_one() {
        let (rows, length) = (7, 9);
        let x0: Vec<u8> = (0..rows * length).map(|i| (i % 4 == 1) as u8).collect();
        let thresholds = [0.2f32, 0.7];
        let mut alone: Vec<Rng> = (0..rows).map(|r| Rng::for_example(1, 2, r as u64)).collect();
        let mut together = alone.clone();
        let (mut want, mut got) = (vec![0u8; rows * length], vec![0u8; rows * length]);
        for _ in 0..50 {
            for r in 0..rows {
                draw_noisy_row(&mut alone[r], &x0[r * length..(r + 1) * length], thresholds, &mut want[r * length..(r + 1) * length]);
            }
            draw_noisy_rows(&mut together, &x0, thresholds, &mut got);
            assert_eq!(got, want);
        }
        assert_eq!(together, alone);
    }

    #[test]
    fn batched_probabilities_match_the_per_bit_kernel() {
        let schedule = Schedule::new(ScheduleKind::Paper, 20);
        let logits: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 0.7).collect();
        let xt: Vec<u8> = (0..40).map(|i| (i % 3 == 0) as u8).collect();
        let mut out = vec![0.0f32; 40];
        for p in [Parameterisation::Direct, Parameterisation::X0] {
            for t in [1usize, 2, 11, 20] {
                let table = schedule.posterior_table(t);
                reverse_probabilities(p, table, t == 1, &xt, &logits, &mut out);
                for k in 0..40 {
                    let want = reverse_probability(p, table, t == 1, xt[k], logits[k] as f64).0 as f32;
                    if p == Parameterisation::Direct || t == 1 {
                        // the f32 sigmoid: within 3 ulp
                        assert!((out[k].to_bits() as i64 - want.to_bits() as i64).abs() <= 3, "{p:?} t={t} z={}: {} vs {want}", logits[k], out[k]);
                    } else {
                        assert_eq!(out[k], want);
                    }
                }
            }
        }
    }

    #[test]
    fn the_f32_sigmoid_is_within_three_ulp_of_the_f64_one_down_to_the_smallest_normal_probability() {
        let mut z = -87.0f32;
        while z < 120.0 {
            let zs = [z, z + 0.01, -z * 0.3, z * 0.001];
            let got = sigmoid_f32(F4::load(&zs)).to_array();
            for (g, &z) in got.iter().zip(&zs) {
                let want = sigmoid_pair(z as f64).0 as f32;
                assert!((g.to_bits() as i64 - want.to_bits() as i64).abs() <= 3, "z={z}: {g} vs {want}");
            }
            z += 0.173;
        }
        // below e^-87 the probability stays at ~1.6e-38 instead of going further towards 0
        assert!(sigmoid_f32(F4::splat(-200.0)).to_array()[0] <= 1.7e-38);
    }
}
