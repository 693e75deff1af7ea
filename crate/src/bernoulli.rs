//! Per-bit Bernoulli quantities of the forward process (DESIGN.md §1), all in f64:
//! the marginal q(x_t | x0), the normalised posterior q(x_{t-1} | x_t, x0), and the Bernoulli
//! KL divergence, in a form that stays finite and accurate near 0 and 1.
//!
//! Probabilities are "of the bit being 1" unless a pair (p1, p0) is passed; passing both halves
//! lets callers hand over 1 - p computed without cancellation (e.g. the posterior's q0 is
//! (1-a)·l0 / (a·l1 + (1-a)·l0), not 1 - q1).

use crate::elementary::{exp, ln, ln_1p_unit};

/// Bits per nat: log2(e).
pub const BITS_PER_NAT: f64 = std::f64::consts::LOG2_E;

/// q(x_t = 1 | x0) = x0(1 - c_t) + c_t/2.
#[inline]
pub fn marginal(x0: f64, c_t: f64) -> f64 {
    x0 * (1.0 - c_t) + c_t / 2.0
}

/// The posterior q(x_{t-1} | x_t, x0) per bit, WITH its normalisation, as (q1, q0):
///   a  = x0(1 - c_{t-1}) + c_{t-1}/2          q(x_{t-1}=1 | x0)
///   l1 = x_t(1 - b_t/2) + (1 - x_t) b_t/2      q(x_t | x_{t-1}=1)
///   l0 = x_t b_t/2 + (1 - x_t)(1 - b_t/2)      q(x_t | x_{t-1}=0)
///   q1 = a·l1 / (a·l1 + (1-a)·l0),  q0 = (1-a)·l0 / (a·l1 + (1-a)·l0)
/// At t = 1 (c_0 = 0) this is x0 exactly.
#[inline]
pub fn posterior(x0: f64, xt: f64, b_t: f64, c_prev: f64) -> (f64, f64) {
    let a1 = x0 * (1.0 - c_prev) + c_prev / 2.0; // q(x_{t-1}=1 | x0)
    let a0 = (1.0 - x0) * (1.0 - c_prev) + c_prev / 2.0; // q(x_{t-1}=0 | x0) = 1 - a, without cancellation
    let l1 = xt * (1.0 - b_t / 2.0) + (1.0 - xt) * (b_t / 2.0); // q(x_t | x_{t-1}=1)
    let l0 = xt * (b_t / 2.0) + (1.0 - xt) * (1.0 - b_t / 2.0); // q(x_t | x_{t-1}=0)
    let joint1 = a1 * l1;
    let joint0 = a0 * l0;
    let normaliser = joint1 + joint0; // a·l1 + (1-a)·l0 = q(x_t | x0)
    (joint1 / normaliser, joint0 / normaliser)
}

/// q1 ln q1 + q0 ln q0 (minus the entropy of B(q1), nats), with 0·ln 0 = 0.
#[inline]
pub fn negative_entropy(q1: f64, q0: f64) -> f64 {
    let term = |q: f64| if q > 0.0 { q * ln(q) } else { 0.0 };
    term(q1) + term(q0)
}

/// 1/((j+2)(j+1)) for j = 0..=18: the coefficients of the series in `kl_half`.
const KL_SERIES: [f64; 19] = {
    let mut c = [0.0f64; 19];
    let mut j = 0;
    while j < 19 {
        c[j] = 1.0 / (((j + 2) * (j + 1)) as f64);
        j += 1;
    }
    c
};

/// u·ln(u/v) - u + v >= 0 (one half of the KL with its linear term; the linear terms of the two
/// halves cancel because both distributions sum to 1). With r = (u - v)/v it equals
/// v·((1+r) ln(1+r) - r) = v·(r²/2 - r³/6 + r⁴/12 - ...) = v·sum_{k>=2} (-r)^k/(k(k-1)), which is
/// summed directly for |r| < 1/8 (no cancellation when u ≈ v); 0·ln 0 = 0 gives v at u = 0.
#[inline]
fn kl_half(u: f64, v: f64) -> f64 {
    if u == 0.0 {
        return v;
    }
    if v == 0.0 {
        return f64::INFINITY;
    }
    let r = (u - v) / v;
    if r.abs() < 0.125 {
        // sum_{j=0..18} (-r)^j / ((j+2)(j+1)), Horner from j = 18 (remainder < 1e-18 relative)
        let mut s = 0.0f64;
        for &coefficient in KL_SERIES.iter().rev() {
            s = s * (-r) + coefficient;
        }
        v * (r * r) * s
    } else {
        u * ln(u / v) + (v - u)
    }
}

/// KL( B(q) || B(p) ) in nats, from both halves of each distribution:
/// q1 ln(q1/p1) + q0 ln(q0/p0), computed as the sum of two non-negative terms
/// [q1 ln(q1/p1) - q1 + p1] + [q0 ln(q0/p0) - q0 + p0] (see `kl_half`), so it is >= 0, exactly 0
/// when p = q, accurate when p ≈ q, and finite whenever p puts mass where q does (0·ln 0 = 0).
#[inline]
pub fn kl(q1: f64, q0: f64, p1: f64, p0: f64) -> f64 {
    kl_half(q1, p1) + kl_half(q0, p0)
}

/// KL( B(q) || B(p) ) in nats for probabilities q, p of a 1 (halves 1 - q, 1 - p).
pub fn kl_probabilities(q: f64, p: f64) -> f64 {
    kl(q, 1.0 - q, p, 1.0 - p)
}

/// Cross-entropy -q1 ln p1 - q0 ln p0 (nats) of B(q) against p1 = sigmoid(z), and p1 itself,
/// finite for every finite z: ln p1 = -softplus(-z), ln p0 = -softplus(z), and with
/// e = e^{-|z|}: z >= 0: CE = ln(1+e) + q0·z;  z < 0: CE = ln(1+e) - q1·z (no cancellation).
/// A term with zero weight contributes 0 (0·ln 0 = 0, also for infinite z).
#[inline]
pub fn cross_entropy_from_logit(q1: f64, q0: f64, z: f64) -> (f64, f64) {
    let e = exp(-z.abs());
    let log_normaliser = ln_1p_unit(e); // ln(1 + e^-|z|)
    let inverse = 1.0 / (1.0 + e);
    let positive = z >= 0.0;
    let p1 = if positive { inverse } else { e * inverse };
    let (weight, sign) = if positive { (q0, 1.0) } else { (q1, -1.0) };
    let linear = if weight > 0.0 { sign * weight * z } else { 0.0 };
    (log_normaliser + linear, p1)
}

/// KL( B(q) || B(sigmoid(z)) ) in nats from the logit z:
/// KL = q1 ln q1 + q0 ln q0 + CE(q, z) (see `cross_entropy_from_logit`), clamped at 0 (the two
/// parts are computed separately, so the absolute error is a few 1e-16 nats; never negative).
/// d KL / d z = sigmoid(z) - q1.
#[inline]
pub fn kl_from_logit(q1: f64, q0: f64, z: f64) -> f64 {
    let (ce, _) = cross_entropy_from_logit(q1, q0, z);
    (negative_entropy(q1, q0) + ce).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook KL, for comparison where it is accurate.
    fn kl_naive(q: f64, p: f64) -> f64 {
        let t = |u: f64, v: f64| if u == 0.0 { 0.0 } else { u * (u / v).ln() };
        t(q, p) + t(1.0 - q, 1.0 - p)
    }

    #[test]
    fn marginal_has_the_right_limits() {
        assert_eq!(marginal(1.0, 0.0), 1.0);
        assert_eq!(marginal(0.0, 0.0), 0.0);
        assert_eq!(marginal(1.0, 1.0), 0.5);
        assert_eq!(marginal(0.0, 1.0), 0.5);
        assert!((marginal(1.0, 0.3) - 0.85).abs() < 1e-15);
        assert!((marginal(0.0, 0.3) - 0.15).abs() < 1e-15);
    }

    #[test]
    fn posterior_is_normalised() {
        for &b in &[1e-9, 0.01, 0.3, 0.5, 0.9, 1.0] {
            for &c in &[0.0, 1e-9, 0.2, 0.7, 1.0 - 1e-9, 1.0] {
                for x0 in [0.0, 1.0] {
                    for xt in [0.0, 1.0] {
                        let (q1, q0) = posterior(x0, xt, b, c);
                        assert!((q1 + q0 - 1.0).abs() <= 2.0 * f64::EPSILON, "b={b} c={c} x0={x0} xt={xt}");
                        assert!((0.0..=1.0).contains(&q1) && (0.0..=1.0).contains(&q0));
                    }
                }
            }
        }
    }

    #[test]
    fn posterior_without_noise_keeps_x_t() {
        // b_t -> 0: x_{t-1} = x_t (whatever x0, as long as the prior a is not degenerate)
        for &c in &[0.1, 0.5, 1.0] {
            for x0 in [0.0, 1.0] {
                let (q1, _) = posterior(x0, 1.0, 1e-12, c);
                assert!((q1 - 1.0).abs() < 1e-10, "c={c} x0={x0} q1={q1}");
                let (q1, _) = posterior(x0, 0.0, 1e-12, c);
                assert!(q1.abs() < 1e-10, "c={c} x0={x0} q1={q1}");
            }
        }
    }

    #[test]
    fn posterior_with_uniform_prior_is_the_forward_flip() {
        // c_{t-1} = 1: a = 1/2, so q(x_{t-1}=1 | x_t) = l1/(l1 + l0) = 1 - b/2 (x_t = 1) or b/2 (x_t = 0)
        for &b in &[0.01, 0.3, 1.0] {
            for x0 in [0.0, 1.0] {
                let (q1, q0) = posterior(x0, 1.0, b, 1.0);
                assert!((q1 - (1.0 - b / 2.0)).abs() < 1e-15 && (q0 - b / 2.0).abs() < 1e-15);
                let (q1, q0) = posterior(x0, 0.0, b, 1.0);
                assert!((q1 - b / 2.0).abs() < 1e-15 && (q0 - (1.0 - b / 2.0)).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn posterior_at_the_first_step_is_x0() {
        for &b in &[0.001, 0.5, 1.0] {
            for xt in [0.0, 1.0] {
                assert_eq!(posterior(1.0, xt, b, 0.0), (1.0, 0.0));
                assert_eq!(posterior(0.0, xt, b, 0.0), (0.0, 1.0));
            }
        }
    }

    #[test]
    fn posterior_matches_bayes_rule_by_enumeration() {
        // q(x_{t-1} | x_t, x0) ∝ q(x_{t-1} | x0) q(x_t | x_{t-1}), with both factors from the marginal
        let (b, c_prev) = (0.2, 0.35);
        for x0 in [0.0, 1.0] {
            for xt in [0.0, 1.0] {
                let joint = |prev: f64| {
                    let prior = if prev == 1.0 { marginal(x0, c_prev) } else { 1.0 - marginal(x0, c_prev) };
                    let flip = marginal(prev, b); // q(x_t = 1 | x_{t-1} = prev)
                    prior * if xt == 1.0 { flip } else { 1.0 - flip }
                };
                let expected = joint(1.0) / (joint(1.0) + joint(0.0));
                assert!((posterior(x0, xt, b, c_prev).0 - expected).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn kl_is_nonnegative_zero_at_equality_and_matches_the_textbook_formula() {
        let points = [0.0, 1e-12, 1e-6, 0.01, 0.2, 0.5, 0.77, 0.999, 1.0 - 1e-9, 1.0];
        for &q in &points {
            assert_eq!(kl_probabilities(q, q), 0.0, "q={q}");
            for &p in &points {
                let value = kl_probabilities(q, p);
                assert!(value >= 0.0, "q={q} p={p}");
                if p > 0.0 && p < 1.0 {
                    assert!(value.is_finite());
                    let naive = kl_naive(q, p);
                    assert!((value - naive).abs() <= 1e-12 * naive.max(1.0), "q={q} p={p}: {value} vs {naive}");
                }
            }
        }
        assert_eq!(kl_probabilities(0.3, 0.0), f64::INFINITY);
        assert_eq!(kl_probabilities(0.0, 0.0), 0.0);
    }

    #[test]
    fn kl_is_accurate_when_p_is_close_to_q() {
        // KL(q || q + d) = d²/(2 q (1-q)) + O(d³)
        for &q in &[1e-8, 0.3, 0.5, 0.9] {
            let d = q * 1e-7;
            let expected = d * d / (2.0 * q * (1.0 - q));
            let value = kl_probabilities(q, q + d);
            assert!((value / expected - 1.0).abs() < 1e-6, "q={q}: {value} vs {expected}");
        }
    }

    #[test]
    fn kl_from_logit_matches_kl_and_is_finite_at_extremes() {
        for &q in &[0.0f64, 1e-9, 0.25, 0.5, 0.9, 1.0] {
            for &z in &[-30.0f64, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0] {
                // ln p = -ln(1 + e^-z), ln(1-p) = -z - ln(1 + e^-z), by std
                let (ln_p, ln_1mp) = (-(-z).exp().ln_1p(), -z - (-z).exp().ln_1p());
                let t = |u: f64, ln_u_minus_ln_v: f64| if u == 0.0 { 0.0 } else { u * ln_u_minus_ln_v };
                let expected = t(q, q.ln() - ln_p) + t(1.0 - q, (1.0 - q).ln() - ln_1mp);
                let value = kl_from_logit(q, 1.0 - q, z);
                assert!((value - expected).abs() <= 1e-12 * expected.max(1.0), "q={q} z={z}: {value} vs {expected}");
            }
        }
        // p = sigmoid(±1000) is 0 or 1 in floating point, but ln p is still exact: KL = 1000 nats
        assert_eq!(kl_from_logit(1.0, 0.0, -1000.0), 1000.0);
        assert_eq!(kl_from_logit(0.0, 1.0, 1000.0), 1000.0);
        assert_eq!(kl_from_logit(1.0, 0.0, 1000.0), 0.0);
        assert_eq!(kl_from_logit(0.0, 1.0, f64::NEG_INFINITY), 0.0);
        assert!(kl_from_logit(0.5, 0.5, 0.0) < 1e-16);
    }

    #[test]
    fn cross_entropy_gradient_is_sigmoid_minus_q_by_finite_differences() {
        for &q in &[0.0, 0.3, 1.0] {
            for &z in &[-5.0, -0.3, 0.0, 2.0, 9.0] {
                let h = 1e-5;
                let numeric = (kl_from_logit(q, 1.0 - q, z + h) - kl_from_logit(q, 1.0 - q, z - h)) / (2.0 * h);
                let (_, p1) = cross_entropy_from_logit(q, 1.0 - q, z);
                assert!((numeric - (p1 - q)).abs() < 1e-8, "q={q} z={z}: {numeric} vs {}", p1 - q);
            }
        }
    }
}
