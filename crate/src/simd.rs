//! Four f32 (and u32) lanes for the matrix kernels of `linalg` and the per-bit loops (the
//! objective's terms, the sampler's sigmoid and draws): wasm simd128 when the crate is compiled
//! with it, plain arrays otherwise (which LLVM vectorises natively). Every operation rounds
//! exactly like the scalar IEEE operation (no fused multiply-add; selects instead of min/max), so
//! the native build and the wasm build give bit-identical results. Also the f32 exp and
//! ln(1 + e) the per-bit loops use.

// Lane operations are explicit methods (`a.mul(b).add(c)`, in the order they round), not operators.
#![allow(clippy::should_implement_trait)]

pub use imp::{F4, M4, U4};

/// ln 2 split so that k·LN2_HI is exact for |k| < 2^15 (Cody–Waite): LN2_HI has 9 significant bits.
const LN2_HI: f32 = 0.693_359_375;
const LN2_LO: f32 = -2.121_944_4e-4;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// 1.5·2^23: (y + SHIFTER) - SHIFTER rounds |y| < 2^22 to the nearest integer (ties to even).
const SHIFTER: f32 = 12_582_912.0;
/// Below this, e^x would leave the normal f32 range (2^-126): `exp_nonpositive` clamps here.
pub const EXP_FLOOR: f32 = -87.0;

/// e^x for x <= 0 (x below EXP_FLOOR counts as EXP_FLOOR: e^x ~ 1.6e-38 instead of smaller).
/// x = k·ln2 + r with |r| <= ln2/2, e^r by Taylor's series to degree 7 (remainder < 6e-9
/// relative), times 2^k built in the exponent field. Within 2 ulp of the true value.
#[inline(always)]
pub fn exp_nonpositive(x: F4) -> F4 {
    let x = x.lt(F4::splat(EXP_FLOOR)).select(F4::splat(EXP_FLOOR), x);
    let k = x.mul(F4::splat(LOG2_E)).add(F4::splat(SHIFTER)).sub(F4::splat(SHIFTER));
    let r = x.sub(k.mul(F4::splat(LN2_HI))).sub(k.mul(F4::splat(LN2_LO)));
    // 1 + r + r²/2! + ... + r⁷/7!, Horner from the highest power
    let mut p = F4::splat(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul(r).add(F4::splat(c));
    }
    p.mul(F4::pow2(k))
}

/// ln(1 + e) for e in [0, 1], without cancellation: ln(1+e) = 2·atanh(s) with s = e/(2+e) for
/// e <= √2-1, else ln 2 + 2·atanh(s) with s = (e-1)/(e+3); |s| <= 0.1716, so the series
/// 2s(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9) leaves < 3e-9 relative.
#[inline(always)]
pub fn ln_1p_unit(e: F4) -> F4 {
    let upper = e.gt(F4::splat(std::f32::consts::SQRT_2 - 1.0));
    let numerator = upper.select(e.sub(F4::splat(1.0)), e);
    let denominator = upper.select(e.add(F4::splat(3.0)), e.add(F4::splat(2.0)));
    let s = numerator.div(denominator);
    let s2 = s.mul(s);
    let mut series = F4::splat(1.0 / 9.0);
    for c in [1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        series = series.mul(s2).add(F4::splat(c));
    }
    let atanh2 = s.add(s).mul(series);
    upper.select(atanh2.add(F4::splat(std::f32::consts::LN_2)), atanh2)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    /// Four f32 lanes.
    #[derive(Clone, Copy)]
    pub struct F4(v128);
    /// Four lane masks (all bits set or clear), from comparisons.
    #[derive(Clone, Copy)]
    pub struct M4(v128);

    impl F4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F4(f32x4_splat(0.0))
        }
        #[inline(always)]
        pub fn splat(x: f32) -> Self {
            F4(f32x4_splat(x))
        }
        #[inline(always)]
        pub fn new(lanes: [f32; 4]) -> Self {
            F4(f32x4(lanes[0], lanes[1], lanes[2], lanes[3]))
        }
        #[inline(always)]
        pub fn load(s: &[f32]) -> Self {
            assert!(s.len() >= 4);
            // SAFETY: four values are in bounds; v128_load has no alignment requirement.
            F4(unsafe { v128_load(s.as_ptr() as *const v128) })
        }
        /// Four values from p (unaligned).
        /// # Safety
        /// p..p+4 must be readable.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> Self {
            F4(v128_load(p as *const v128))
        }
        /// The value at p in all four lanes.
        /// # Safety
        /// p must be readable.
        #[inline(always)]
        pub unsafe fn splat_ptr(p: *const f32) -> Self {
            F4(v128_load32_splat(p as *const u32))
        }
        #[inline(always)]
        pub fn store(self, s: &mut [f32]) {
            assert!(s.len() >= 4);
            // SAFETY: four values are in bounds.
            unsafe { v128_store(s.as_mut_ptr() as *mut v128, self.0) }
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            F4(f32x4_add(self.0, o.0))
        }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self {
            F4(f32x4_sub(self.0, o.0))
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            F4(f32x4_mul(self.0, o.0))
        }
        /// self + a·b: one fused multiply-add (a single rounding) in the relaxed-SIMD build, where the
        /// engine may fuse (`f32x4.relaxed_madd`: fused on FMA hardware); mul then add otherwise.
        #[inline(always)]
        pub fn add_product(self, a: Self, b: Self) -> Self {
            #[cfg(target_feature = "relaxed-simd")]
            return F4(f32x4_relaxed_madd(a.0, b.0, self.0));
            #[cfg(not(target_feature = "relaxed-simd"))]
            return self.add(a.mul(b));
        }
        #[inline(always)]
        pub fn div(self, o: Self) -> Self {
            F4(f32x4_div(self.0, o.0))
        }
        /// |x| (clears the sign bit).
        #[inline(always)]
        pub fn abs(self) -> Self {
            F4(f32x4_abs(self.0))
        }
        /// max(x, 0) lane-wise (pmax: a single maxps; a NaN lane becomes 0).
        #[inline(always)]
        pub fn relu(self) -> Self {
            F4(f32x4_pmax(f32x4_splat(0.0), self.0))
        }
        /// self where mask > 0, else 0.
        #[inline(always)]
        pub fn keep_where_positive(self, mask: Self) -> Self {
            F4(v128_and(self.0, f32x4_gt(mask.0, f32x4_splat(0.0))))
        }
        #[inline(always)]
        pub fn lt(self, o: Self) -> M4 {
            M4(f32x4_lt(self.0, o.0))
        }
        #[inline(always)]
        pub fn gt(self, o: Self) -> M4 {
            M4(f32x4_gt(self.0, o.0))
        }
        #[inline(always)]
        pub fn ge(self, o: Self) -> M4 {
            M4(f32x4_ge(self.0, o.0))
        }
        #[inline(always)]
        pub fn eq(self, o: Self) -> M4 {
            M4(f32x4_eq(self.0, o.0))
        }
        /// 2^k for lanes holding integers k in -126..=127.
        #[inline(always)]
        pub fn pow2(k: Self) -> Self {
            F4(i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(k.0), i32x4_splat(127)), 23))
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            [f32x4_extract_lane::<0>(self.0), f32x4_extract_lane::<1>(self.0), f32x4_extract_lane::<2>(self.0), f32x4_extract_lane::<3>(self.0)]
        }
    }

    /// Four u32 lanes (wrapping arithmetic).
    #[derive(Clone, Copy)]
    pub struct U4(v128);

    impl U4 {
        #[inline(always)]
        pub fn new(lanes: [u32; 4]) -> Self {
            U4(u32x4(lanes[0], lanes[1], lanes[2], lanes[3]))
        }
        #[inline(always)]
        pub fn to_array(self) -> [u32; 4] {
            [u32x4_extract_lane::<0>(self.0), u32x4_extract_lane::<1>(self.0), u32x4_extract_lane::<2>(self.0), u32x4_extract_lane::<3>(self.0)]
        }
        #[inline(always)]
        pub fn wrapping_mul(self, o: Self) -> Self {
            U4(i32x4_mul(self.0, o.0))
        }
        #[inline(always)]
        pub fn xor(self, o: Self) -> Self {
            U4(v128_xor(self.0, o.0))
        }
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self {
            U4(i32x4_shl(self.0, n))
        }
        #[inline(always)]
        pub fn shr(self, n: u32) -> Self {
            U4(u32x4_shr(self.0, n))
        }
        #[inline(always)]
        pub fn rotate_left(self, n: u32) -> Self {
            U4(v128_or(i32x4_shl(self.0, n), u32x4_shr(self.0, 32 - n)))
        }
        /// Lanes below 2^31 as f32 (exact below 2^24).
        #[inline(always)]
        pub fn to_f32(self) -> F4 {
            F4(f32x4_convert_i32x4(self.0))
        }
    }

    impl M4 {
        /// 1 where the mask is set, else 0, per lane.
        #[inline(always)]
        pub fn to_bits(self) -> [u8; 4] {
            let ones = v128_and(self.0, i32x4_splat(1));
            [u32x4_extract_lane::<0>(ones) as u8, u32x4_extract_lane::<1>(ones) as u8, u32x4_extract_lane::<2>(ones) as u8, u32x4_extract_lane::<3>(ones) as u8]
        }
        /// Lanes where bits[i] != 0 (four bytes).
        #[inline(always)]
        pub fn nonzero(bits: &[u8]) -> Self {
            let word = u32::from_le_bytes([bits[0], bits[1], bits[2], bits[3]]);
            let lanes = u32x4_extend_low_u16x8(u16x8_extend_low_u8x16(u32x4(word, 0, 0, 0)));
            M4(v128_not(i32x4_eq(lanes, i32x4_splat(0))))
        }
        /// a where the mask is set, else b.
        #[inline(always)]
        pub fn select(self, a: F4, b: F4) -> F4 {
            F4(v128_bitselect(a.0, b.0, self.0))
        }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            M4(v128_and(self.0, o.0))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    /// Four f32 lanes.
    #[derive(Clone, Copy)]
    pub struct F4([f32; 4]);
    /// Four lane masks, from comparisons.
    #[derive(Clone, Copy)]
    pub struct M4([bool; 4]);

    impl F4 {
        #[inline(always)]
        pub fn zero() -> Self {
            F4([0.0; 4])
        }
        #[inline(always)]
        pub fn splat(x: f32) -> Self {
            F4([x; 4])
        }
        #[inline(always)]
        pub fn new(lanes: [f32; 4]) -> Self {
            F4(lanes)
        }
        #[inline(always)]
        pub fn load(s: &[f32]) -> Self {
            F4([s[0], s[1], s[2], s[3]])
        }
        /// Four values from p (unaligned).
        /// # Safety
        /// p..p+4 must be readable.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> Self {
            F4(std::ptr::read_unaligned(p as *const [f32; 4]))
        }
        /// The value at p in all four lanes.
        /// # Safety
        /// p must be readable.
        #[inline(always)]
        pub unsafe fn splat_ptr(p: *const f32) -> Self {
            F4([*p; 4])
        }
        #[inline(always)]
        pub fn store(self, s: &mut [f32]) {
            s[..4].copy_from_slice(&self.0);
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            F4([self.0[0] + o.0[0], self.0[1] + o.0[1], self.0[2] + o.0[2], self.0[3] + o.0[3]])
        }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self {
            F4([self.0[0] - o.0[0], self.0[1] - o.0[1], self.0[2] - o.0[2], self.0[3] - o.0[3]])
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            F4([self.0[0] * o.0[0], self.0[1] * o.0[1], self.0[2] * o.0[2], self.0[3] * o.0[3]])
        }
        /// self + a·b, mul then add (two roundings, as the plain wasm build).
        #[inline(always)]
        pub fn add_product(self, a: Self, b: Self) -> Self {
            self.add(a.mul(b))
        }
        #[inline(always)]
        pub fn div(self, o: Self) -> Self {
            F4([self.0[0] / o.0[0], self.0[1] / o.0[1], self.0[2] / o.0[2], self.0[3] / o.0[3]])
        }
        #[inline(always)]
        pub fn abs(self) -> Self {
            F4(self.0.map(f32::abs))
        }
        /// max(x, 0) lane-wise (a NaN lane becomes 0, as wasm's pmax(0, x)).
        #[inline(always)]
        pub fn relu(self) -> Self {
            F4(self.0.map(|x| if x > 0.0 { x } else { 0.0 }))
        }
        /// self where mask > 0, else 0.
        #[inline(always)]
        pub fn keep_where_positive(self, mask: Self) -> Self {
            F4([0, 1, 2, 3].map(|l| if mask.0[l] > 0.0 { self.0[l] } else { 0.0 }))
        }
        #[inline(always)]
        pub fn lt(self, o: Self) -> M4 {
            M4([0, 1, 2, 3].map(|l| self.0[l] < o.0[l]))
        }
        #[inline(always)]
        pub fn gt(self, o: Self) -> M4 {
            M4([0, 1, 2, 3].map(|l| self.0[l] > o.0[l]))
        }
        #[inline(always)]
        pub fn ge(self, o: Self) -> M4 {
            M4([0, 1, 2, 3].map(|l| self.0[l] >= o.0[l]))
        }
        #[inline(always)]
        pub fn eq(self, o: Self) -> M4 {
            M4([0, 1, 2, 3].map(|l| self.0[l] == o.0[l]))
        }
        /// 2^k for lanes holding integers k in -126..=127.
        #[inline(always)]
        pub fn pow2(k: Self) -> Self {
            F4(k.0.map(|k| f32::from_bits(((k as i32 + 127) as u32) << 23)))
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            self.0
        }
    }

    /// Four u32 lanes (wrapping arithmetic).
    #[derive(Clone, Copy)]
    pub struct U4([u32; 4]);

    impl U4 {
        #[inline(always)]
        pub fn new(lanes: [u32; 4]) -> Self {
            U4(lanes)
        }
        #[inline(always)]
        pub fn to_array(self) -> [u32; 4] {
            self.0
        }
        #[inline(always)]
        pub fn wrapping_mul(self, o: Self) -> Self {
            U4([0, 1, 2, 3].map(|l| self.0[l].wrapping_mul(o.0[l])))
        }
        #[inline(always)]
        pub fn xor(self, o: Self) -> Self {
            U4([0, 1, 2, 3].map(|l| self.0[l] ^ o.0[l]))
        }
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self {
            U4(self.0.map(|x| x << n))
        }
        #[inline(always)]
        pub fn shr(self, n: u32) -> Self {
            U4(self.0.map(|x| x >> n))
        }
        #[inline(always)]
        pub fn rotate_left(self, n: u32) -> Self {
            U4(self.0.map(|x| x.rotate_left(n)))
        }
        /// Lanes below 2^31 as f32 (exact below 2^24).
        #[inline(always)]
        pub fn to_f32(self) -> F4 {
            F4(self.0.map(|x| x as i32 as f32))
        }
    }

    impl M4 {
        /// 1 where the mask is set, else 0, per lane.
        #[inline(always)]
        pub fn to_bits(self) -> [u8; 4] {
            self.0.map(|b| b as u8)
        }
        /// Lanes where bits[i] != 0 (four bytes).
        #[inline(always)]
        pub fn nonzero(bits: &[u8]) -> Self {
            M4([bits[0] != 0, bits[1] != 0, bits[2] != 0, bits[3] != 0])
        }
        /// a where the mask is set, else b.
        #[inline(always)]
        pub fn select(self, a: F4, b: F4) -> F4 {
            F4([0, 1, 2, 3].map(|l| if self.0[l] { a.0[l] } else { b.0[l] }))
        }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            M4([0, 1, 2, 3].map(|l| self.0[l] && o.0[l]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(f: impl Fn(F4) -> F4, x: [f32; 4]) -> [f32; 4] {
        f(F4::load(&x)).to_array()
    }

    #[test]
    fn exp_is_within_two_ulp_down_to_the_floor() {
        let mut worst = 0.0f64;
        let mut x = 0.0f32;
        while x > -90.0 {
            let got = lanes(exp_nonpositive, [x, x * 0.5, x * 0.25, x * 0.125]);
            for (g, v) in got.iter().zip([x, x * 0.5, x * 0.25, x * 0.125]) {
                let want = (v.max(EXP_FLOOR) as f64).exp();
                let ulp = (want as f32).to_bits() as i64 - g.to_bits() as i64;
                worst = worst.max(ulp.abs() as f64);
            }
            x -= 0.0137;
        }
        assert!(worst <= 2.0, "worst {worst} ulp");
        assert_eq!(lanes(exp_nonpositive, [0.0, -0.0, -1e-30, -200.0]), [1.0, 1.0, 1.0, (EXP_FLOOR as f64).exp() as f32]);
    }

    #[test]
    fn ln_1p_is_accurate_on_the_unit_interval_including_tiny_arguments() {
        let mut e = 1.0f32;
        while e > 1e-30 {
            for v in [e, e * 0.7, e * 0.41, e * 0.3] {
                let got = lanes(ln_1p_unit, [v; 4])[0] as f64;
                let want = (v as f64).ln_1p();
                assert!((got - want).abs() <= 2.5e-7 * want, "ln(1 + {v}): {got} vs {want}");
            }
            e *= 0.83;
        }
        assert_eq!(lanes(ln_1p_unit, [0.0; 4])[0], 0.0);
    }

    #[test]
    fn masks_select_and_bits_read_as_lanes() {
        let m = M4::nonzero(&[0, 1, 2, 0]);
        assert_eq!(m.select(F4::splat(1.0), F4::splat(-1.0)).to_array(), [-1.0, 1.0, 1.0, -1.0]);
        let x = F4::load(&[-2.0, 0.0, 3.0, -0.0]);
        assert_eq!(x.ge(F4::splat(0.0)).select(F4::splat(1.0), F4::splat(0.0)).to_array(), [0.0, 1.0, 1.0, 1.0]);
        assert_eq!(x.abs().to_array(), [2.0, 0.0, 3.0, 0.0]);
        assert_eq!(F4::pow2(F4::load(&[0.0, 1.0, -126.0, 127.0])).to_array(), [1.0, 2.0, f32::MIN_POSITIVE, 2f32.powi(127)]);
        assert_eq!(m.and(x.lt(F4::splat(1.0))).select(F4::splat(1.0), F4::splat(0.0)).to_array(), [0.0, 1.0, 0.0, 0.0]);
    }
}
