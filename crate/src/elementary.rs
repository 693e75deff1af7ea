//! Elementary functions (exp, ln, ln(1+x), sigmoid, softplus, sin, cos, powi) written with plain IEEE-754
//! arithmetic only, so they give bit-identical results on every platform.
//!
//! Why not `f64::exp`/`f64::ln`: natively they call the C library (glibc), in the wasm32 build a
//! port of musl's libm; the two can differ in the last bit, and one flipped bit in a loss or a
//! sampling probability is enough to make the native and the wasm build diverge. Rust never fuses
//! a*b+c into an FMA on its own, so the code below rounds the same way everywhere.
//! Accuracy: within a few units in the last place of the correctly rounded result (tested
//! against std below). Results that would be subnormal are flushed: `exp(x) = 0` for
//! x < -708.39 (e^x < 2^-1022), which no probability in this crate can notice.

const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1; // ln 2, high part (k·LN2_HI exact for |k| < 2^11)
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10; // ln 2 - LN2_HI
const LOG2_E: f64 = std::f64::consts::LOG2_E;

/// Rounds |y| < 2^51 to the nearest integer (ties to even) by adding and subtracting 1.5·2^52
/// (exact IEEE arithmetic; avoids a libm call for `round` on targets without a rounding instruction).
#[inline(always)]
fn round_to_integer(y: f64) -> f64 {
    const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    (y + SHIFTER) - SHIFTER
}

/// e^x. Cody–Waite reduction x = k·ln2 + r, |r| <= ln2/2, then e^r by its Taylor series to
/// degree 13 (remainder < 4e-18 relative) and the scaling by 2^k, -1022 <= k <= 1023, built in
/// the exponent bits. Written without branches (selects only) and with integer operations that
/// vector units have (add, and, left shift), so loops over it can be vectorised; NaN propagates.
/// Range: x > 709 gives +inf (the true value is within a factor 2.2 of f64::MAX there) and
/// x < -708.39 gives 0 (no subnormal results).
#[inline]
pub fn exp(x: f64) -> f64 {
    const HIGHEST: f64 = 709.0; // above: +inf
    const LOWEST: f64 = -708.396_418_532_264; // below: 0 (flushed)
    const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    let clamped = x.clamp(LOWEST, HIGHEST); // NaN stays NaN
    let shifted = clamped * LOG2_E + SHIFTER; // 1.5·2^52 + k, k = round(x/ln2)
    let k = shifted - SHIFTER;
    let r = (clamped - k * LN2_HI) - k * LN2_LO;
    // e^r = sum_{i=0..13} r^i/i!, by Estrin's scheme (pairs, then powers r², r⁴, r⁸: a short
    // dependency chain, so consecutive calls overlap in the pipeline)
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let a0 = 1.0 + r;
    let a1 = 1.0 / 2.0 + r * (1.0 / 6.0);
    let a2 = 1.0 / 24.0 + r * (1.0 / 120.0);
    let a3 = 1.0 / 720.0 + r * (1.0 / 5_040.0);
    let a4 = 1.0 / 40_320.0 + r * (1.0 / 362_880.0);
    let a5 = 1.0 / 3_628_800.0 + r * (1.0 / 39_916_800.0);
    let a6 = 1.0 / 479_001_600.0 + r * (1.0 / 6_227_020_800.0);
    let b0 = a0 + r2 * a1;
    let b1 = a2 + r2 * a3;
    let b2 = a4 + r2 * a5;
    let d0 = b0 + r4 * b1;
    let d1 = b2 + r4 * a6;
    let p = d0 + r8 * d1;
    // shifted's low mantissa bits hold k (two's complement); 2^k = bits (k + 1023) << 52
    let k_bits = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f64::from_bits(k_bits.wrapping_add(1023) << 52);
    let result = p * scale;
    if x > HIGHEST {
        f64::INFINITY
    } else if x < LOWEST {
        0.0
    } else {
        result
    }
}

/// (atanh(s)/s - 1)/s² = 1/3 + s²/5 + s⁴/7 + ... + s^20/23 as a polynomial in w = s² (|w| <= 0.0295),
/// by Estrin's scheme.
#[inline(always)]
fn atanh_series(w: f64) -> f64 {
    let w2 = w * w;
    let w4 = w2 * w2;
    let w8 = w4 * w4;
    let a0 = 1.0 / 3.0 + w * (1.0 / 5.0);
    let a1 = 1.0 / 7.0 + w * (1.0 / 9.0);
    let a2 = 1.0 / 11.0 + w * (1.0 / 13.0);
    let a3 = 1.0 / 15.0 + w * (1.0 / 17.0);
    let a4 = 1.0 / 19.0 + w * (1.0 / 21.0);
    let a5 = 1.0 / 23.0;
    let b0 = a0 + w2 * a1;
    let b1 = a2 + w2 * a3;
    let b2 = a4 + w2 * a5;
    (b0 + w4 * b1) + w8 * b2
}

/// ln x. x = 2^k·m with m in [√½, √2), s = (m-1)/(m+1), ln m = 2·atanh(s) = 2(s + s³/3 + ...)
/// (|s| <= 0.1716, series to s^23: remainder < 1e-18 relative).
#[inline]
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    if x < f64::MIN_POSITIVE {
        // subnormal: scale into the normal range first
        return ln_normal(x * 18_014_398_509_481_984.0) - 54.0 * LN2_HI - 54.0 * LN2_LO;
        // ln(x·2^54) - 54 ln 2
    }
    ln_normal(x)
}

/// ln x for positive normal x (no checks, no branches: the core of `ln`, vectorisable).
/// x = 2^k·m with m in [√½, √2), s = (m-1)/(m+1), ln m = 2·atanh(s) (|s| <= 0.1716).
#[inline]
pub fn ln_normal(x: f64) -> f64 {
    let bits = x.to_bits();
    let exponent_field = (bits >> 52) & 0x7ff;
    // the exponent as an f64 without an int->float conversion: bits of 2^52 + e, minus 2^52
    let exponent = f64::from_bits(0x4330_0000_0000_0000 | exponent_field) - 4_503_599_627_370_496.0;
    let m_full = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000); // [1, 2)
    let upper = m_full > std::f64::consts::SQRT_2;
    let m = if upper { m_full * 0.5 } else { m_full };
    let k = exponent - 1023.0 + if upper { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0); // m - 1 is exact here (Sterbenz)
    let s2 = s * s;
    // atanh(s)/s = 1 + s²/3 + s⁴/5 + ... + s^22/23
    let p = atanh_series(s2);
    let ln_m = 2.0 * s + 2.0 * s * (s2 * p);
    k * LN2_HI + (k * LN2_LO + ln_m)
}

/// ln(1 + e) for e in [0, 1] without branches (softplus and the Bernoulli cross-entropy):
/// ln(1+e) = 2·atanh(s) with s = e/(2+e) for e <= √2-1, else ln 2 + 2·atanh(s), s = (e-1)/(e+3)
/// (the same m = (1+e)/2 reduction as `ln`, written in e so nothing cancels); |s| <= 0.1716.
#[inline]
pub fn ln_1p_unit(e: f64) -> f64 {
    let upper = e > std::f64::consts::SQRT_2 - 1.0;
    let s = if upper { (e - 1.0) / (e + 3.0) } else { e / (2.0 + e) };
    let s2 = s * s;
    let p = atanh_series(s2);
    let atanh2 = 2.0 * s + 2.0 * s * (s2 * p);
    if upper {
        LN2_HI + (LN2_LO + atanh2)
    } else {
        atanh2
    }
}

/// ln(1 + x), accurate for small |x|: with u = 1 + x rounded, ln(1+x) = ln(u)·x/(u - 1)
/// (Goldberg's correction of the rounding in u; exact u = 1 gives x itself).
#[inline]
pub fn ln_1p(x: f64) -> f64 {
    let u = 1.0 + x;
    if u == 1.0 {
        return x;
    }
    if u == f64::INFINITY {
        return u;
    }
    ln(u) * (x / (u - 1.0))
}

/// sigmoid(z) = 1/(1 + e^-z), computed from e^-|z| so nothing overflows.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    let e = exp(-z.abs());
    let inverse = 1.0 / (1.0 + e);
    if z >= 0.0 {
        inverse
    } else {
        e * inverse
    }
}

/// softplus(z) = ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|) (no overflow, accurate for z << 0).
#[inline]
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + ln_1p_unit(exp(-z.abs()))
}

// π/2 split in three parts of 33 bits each (fdlibm's pio2_1, pio2_2, pio2_3), so k·part is exact
// for |k| < 2^20: the reduction x - k·π/2 is accurate for |x| up to about 1e6.
const PIO2_1: f64 = 1.570_796_326_734_125_614_17e0;
const PIO2_2: f64 = 6.077_100_506_303_965_976_60e-11;
const PIO2_3: f64 = 2.022_266_248_711_166_455_80e-21;
const PIO2_3T: f64 = 8.478_427_660_368_899_569_97e-32;

/// (sin r, cos r) for |r| <= π/4 by Taylor series (to r^21 / r^20; remainder < 1e-19).
#[inline]
fn sin_cos_reduced(r: f64) -> (f64, f64) {
    let r2 = r * r;
    // sin r = r(1 - r²/3! + r⁴/5! - ...), cos r = 1 - r²/2! + r⁴/4! - ...
    let mut s = 0.0f64;
    let mut c = 0.0f64;
    for k in (1..=10).rev() {
        let two_k = 2 * k;
        s = (1.0 - s) * r2 / ((two_k * (two_k + 1)) as f64);
        c = (1.0 - c) * r2 / (((two_k - 1) * two_k) as f64);
    }
    (r * (1.0 - s), 1.0 - c)
}

/// Quadrant k (x ≈ k·π/2) and the remainder r = x - k·π/2.
#[inline]
fn reduce_quarter_turns(x: f64) -> (i64, f64) {
    let k = round_to_integer(x * std::f64::consts::FRAC_2_PI);
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * (PIO2_3 + PIO2_3T);
    (k as i64, r)
}

/// sin x (accurate to a few ulps for |x| < 1e6; NaN for infinite x).
pub fn sin(x: f64) -> f64 {
    if !x.is_finite() {
        return f64::NAN;
    }
    let (k, r) = reduce_quarter_turns(x);
    let (s, c) = sin_cos_reduced(r);
    match k.rem_euclid(4) {
        0 => s,
        1 => c,
        2 => -s,
        _ => -c,
    }
}

/// cos x (accurate to a few ulps for |x| < 1e6; NaN for infinite x).
pub fn cos(x: f64) -> f64 {
    if !x.is_finite() {
        return f64::NAN;
    }
    let (k, r) = reduce_quarter_turns(x);
    let (s, c) = sin_cos_reduced(r);
    match k.rem_euclid(4) {
        0 => c,
        1 => -s,
        2 => -c,
        _ => s,
    }
}

/// base^k for k >= 0 by square-and-multiply (deterministic, unlike `powi`'s unspecified method).
pub fn powi(base: f64, mut k: u64) -> f64 {
    let mut result = 1.0f64;
    let mut square = base;
    while k > 0 {
        if k & 1 == 1 {
            result *= square;
        }
        square *= square;
        k >>= 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let scale = b.abs().max(f64::MIN_POSITIVE);
        ((a - b) / scale).abs() / f64::EPSILON
    }

    #[test]
    fn exp_matches_std_within_a_few_ulps() {
        let mut rng = Rng::new(11);
        let mut worst = 0.0f64;
        for i in 0..200_000 {
            let x = if i % 2 == 0 { (rng.uniform_f64() - 0.5) * 1400.0 + 0.5 } else { (rng.uniform_f64() - 0.5) * 4.0 };
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2.0, "worst {worst} ulps");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert!(exp(708.9).is_finite() && ulps(exp(708.9), 708.9f64.exp()) <= 2.0);
        assert_eq!(exp(709.5), f64::INFINITY);
        assert!(ulps(exp(-708.3), (-708.3f64).exp()) <= 2.0);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn ln_and_ln_1p_match_std_within_a_few_ulps() {
        let mut rng = Rng::new(12);
        let mut worst_ln = 0.0f64;
        let mut worst_ln1p = 0.0f64;
        for _ in 0..200_000 {
            let x = exp((rng.uniform_f64() - 0.5) * 1400.0);
            worst_ln = worst_ln.max(ulps(ln(x), x.ln()));
            let y = (rng.uniform_f64() - 0.5) * 2.0 * exp(-30.0 * rng.uniform_f64());
            worst_ln1p = worst_ln1p.max(ulps(ln_1p(y), y.ln_1p()));
        }
        assert!(worst_ln <= 2.0, "ln worst {worst_ln} ulps");
        assert!(worst_ln1p <= 4.0, "ln_1p worst {worst_ln1p} ulps");
        let mut worst_unit = 0.0f64;
        for i in 0..200_000 {
            let e = if i % 2 == 0 { rng.uniform_f64() } else { exp(-700.0 * rng.uniform_f64()) };
            worst_unit = worst_unit.max(ulps(ln_1p_unit(e), e.ln_1p()));
        }
        assert!(worst_unit <= 3.0, "ln_1p_unit worst {worst_unit} ulps");
        assert_eq!(ln_1p_unit(0.0), 0.0);
        assert!(ulps(ln_1p_unit(1.0), std::f64::consts::LN_2) <= 1.0);
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ulps(ln(5e-324), (5e-324f64).ln()) <= 2.0);
        assert_eq!(ln_1p(-1.0), f64::NEG_INFINITY);
        assert_eq!(ln_1p(1e-300), 1e-300);
    }

    #[test]
    fn sigmoid_and_softplus_are_finite_and_consistent() {
        for &z in &[-800.0, -40.0, -1.0, 0.0, 1e-9, 3.0, 40.0, 800.0] {
            let s = sigmoid(z);
            assert!((0.0..=1.0).contains(&s));
            // sigmoid(z) + sigmoid(-z) = 1; softplus(z) - softplus(-z) = z
            assert!((s + sigmoid(-z) - 1.0).abs() <= 2.0 * f64::EPSILON);
            assert!((softplus(z) - softplus(-z) - z).abs() <= 4.0 * f64::EPSILON * z.abs().max(1.0));
        }
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(ulps(softplus(-30.0), (-30.0f64).exp().ln_1p()) <= 4.0);
        assert!(ulps(softplus(2.0), (1.0 + 2.0f64.exp()).ln()) <= 4.0);
    }
    #[test]
    fn sin_cos_match_std() {
        let mut rng = Rng::new(13);
        let mut worst = 0.0f64;
        for i in 0..200_000 {
            let x = if i % 2 == 0 { (rng.uniform_f64() - 0.5) * 2e4 } else { (rng.uniform_f64() - 0.5) * 8.0 };
            // absolute error relative to 1 (results near zero of sin/cos have large relative error in any method)
            worst = worst.max((sin(x) - x.sin()).abs().max((cos(x) - x.cos()).abs()));
        }
        assert!(worst < 4e-16, "worst absolute error {worst}");
        assert_eq!(sin(0.0), 0.0);
        assert_eq!(cos(0.0), 1.0);
        assert!((cos(std::f64::consts::PI) + 1.0).abs() < 1e-16);
        assert!(ulps(sin(1e-3), 1e-3f64.sin()) <= 1.0);
    }

    #[test]
    fn powi_by_squaring() {
        assert_eq!(powi(0.9, 0), 1.0);
        assert_eq!(powi(2.0, 10), 1024.0);
        assert!(ulps(powi(0.999, 1000), 0.999f64.powi(1000)) < 1e3);
        assert!((powi(0.999, 1000) - 0.999f64.powf(1000.0)).abs() < 1e-13);
    }
}
