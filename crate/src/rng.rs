//! Seeded random numbers: xoshiro128** (Blackman & Vigna 2018), seeded through SplitMix64.
//!
//! Why this pair: xoshiro128** needs only 32-bit operations, so the pure-TypeScript sibling
//! (`src/reference/rng.ts`) reproduces it bit for bit with `Math.imul`; SplitMix64 is the
//! seeding procedure its authors recommend. Every random draw in the crate comes from here.
//!
//! Streams are counter-based: `Rng::for_example(seed, step, index)` gives the generator for one
//! training example at one optimiser step, so sharding a batch across workers draws the same
//! noise as one worker.

use crate::simd::{F4, M4, U4};

/// SplitMix64: one 64-bit output per call; used to expand a seed into generator state.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro128**: 128-bit state, 32-bit outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u32; 4],
}

impl Rng {
    /// State from a 64-bit seed: two SplitMix64 outputs, low word first.
    pub fn new(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        let a = sm.next_u64();
        let b = sm.next_u64();
        let mut s = [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32];
        if s == [0; 4] {
            s[0] = 1; // the all-zero state is the one fixed point of xoshiro
        }
        Self { s }
    }

    /// The generator for example `index` of optimiser step `step` (independent of sharding).
    pub fn for_example(seed: u64, step: u64, index: u64) -> Self {
        let mut sm = SplitMix64::new(seed ^ 0xD1B5_4A32_D192_ED03);
        let mixed = sm.next_u64() ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        Self::new(SplitMix64::new(mixed).next_u64())
    }

    pub fn from_state(s: [u32; 4]) -> Self {
        Self { s }
    }

    pub fn state(&self) -> [u32; 4] {
        self.s
    }

    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 9;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(11);
        result
    }

    /// Uniform in [0, 1) with 24 random bits: u = (x >> 8) · 2^-24.
    #[inline(always)]
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in [0, 1) with 53 random bits (two draws, high word first).
    pub fn uniform_f64(&mut self) -> f64 {
        let hi = (self.next_u32() >> 5) as u64; // 27 bits
        let lo = (self.next_u32() >> 6) as u64; // 26 bits
        ((hi << 26) | lo) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// B(u; p): 1 with probability p, compared at 24-bit resolution: u < p.
    #[inline(always)]
    pub fn bernoulli(&mut self, p: f32) -> bool {
        self.uniform_f32() < p
    }

    /// Uniform integer in [0, n) by Lemire's multiply-shift with rejection (unbiased).
    pub fn below(&mut self, n: u32) -> u32 {
        assert!(n > 0);
        let mut m = (self.next_u32() as u64) * (n as u64);
        let mut low = m as u32;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = (self.next_u32() as u64) * (n as u64);
                low = m as u32;
            }
        }
        (m >> 32) as u32
    }

    /// Standard normal by Box–Muller, with `crate::elementary`'s ln and cos so that the draws are
    /// bit-identical natively and in wasm (std's ln/cos call different libms there).
    pub fn normal(&mut self) -> f32 {
        let u1 = 1.0 - self.uniform_f64(); // (0, 1]
        let u2 = self.uniform_f64();
        ((-2.0 * crate::elementary::ln(u1)).sqrt() * crate::elementary::cos(2.0 * std::f64::consts::PI * u2)) as f32
    }
}

/// Four xoshiro128** generators side by side, one per lane, that draw together: lane i produces
/// exactly the numbers `rngs[i]` would (the sampler draws the bits of four sequences at once).
pub struct Rng4 {
    s: [U4; 4],
}

impl Rng4 {
    /// The generators rngs[0..4] (their states are copied; `store` writes them back).
    pub fn load(rngs: &[Rng]) -> Self {
        let word = |k: usize| U4::new([rngs[0].s[k], rngs[1].s[k], rngs[2].s[k], rngs[3].s[k]]);
        Rng4 { s: [word(0), word(1), word(2), word(3)] }
    }

    /// Writes the four states back into rngs[0..4].
    pub fn store(&self, rngs: &mut [Rng]) {
        let words = self.s.map(U4::to_array);
        for (i, rng) in rngs[..4].iter_mut().enumerate() {
            rng.s = [words[0][i], words[1][i], words[2][i], words[3][i]];
        }
    }

    /// `Rng::next_u32` in every lane.
    #[inline(always)]
    pub fn next_u32(&mut self) -> U4 {
        let [s0, s1, s2, s3] = self.s;
        let result = s1.wrapping_mul(U4::new([5; 4])).rotate_left(7).wrapping_mul(U4::new([9; 4]));
        let t = s1.shl(9);
        let s2 = s2.xor(s0);
        let s3 = s3.xor(s1);
        let s1 = s1.xor(s2);
        let s0 = s0.xor(s3);
        self.s = [s0, s1, s2.xor(t), s3.rotate_left(11)];
        result
    }

    /// `Rng::bernoulli(p[i])` in lane i: u < p with u = (x >> 8)·2^-24.
    #[inline(always)]
    pub fn bernoulli(&mut self, p: F4) -> M4 {
        self.next_u32().shr(8).to_f32().mul(F4::splat(1.0 / 16_777_216.0)).lt(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // Published reference outputs of SplitMix64 for seed 1234567.
        let mut sm = SplitMix64::new(1234567);
        let expected: [u64; 5] = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821];
        for e in expected {
            assert_eq!(sm.next_u64(), e);
        }
    }

    #[test]
    fn xoshiro128starstar_reference_values() {
        // Reference implementation output for state {1, 2, 3, 4}.
        let mut rng = Rng::from_state([1, 2, 3, 4]);
        let expected: [u32; 6] = [11520, 0, 5927040, 70819200, 2031721883, 1637235492];
        for e in expected {
            assert_eq!(rng.next_u32(), e);
        }
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn four_generators_in_lanes_draw_what_each_would_alone() {
        let mut alone: Vec<Rng> = (0..4).map(|i| Rng::for_example(3, 7, i)).collect();
        let mut together = alone.clone();
        let mut lanes = Rng4::load(&together);
        let p = F4::new([0.1, 0.5, 0.9, 0.999_999]);
        for _ in 0..1000 {
            let bits = lanes.bernoulli(p).to_bits();
            let words = lanes.next_u32().to_array();
            for i in 0..4 {
                assert_eq!(bits[i], alone[i].bernoulli(p.to_array()[i]) as u8);
                assert_eq!(words[i], alone[i].next_u32());
            }
        }
        lanes.store(&mut together);
        assert_eq!(together, alone);
    }

    #[test]
    fn example_streams_differ_by_step_and_index() {
        let a = Rng::for_example(1, 0, 0).state();
        assert_ne!(a, Rng::for_example(1, 0, 1).state());
        assert_ne!(a, Rng::for_example(1, 1, 0).state());
        assert_ne!(a, Rng::for_example(2, 0, 0).state());
        assert_eq!(a, Rng::for_example(1, 0, 0).state());
    }
}
