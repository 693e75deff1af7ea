//! The training objective (DESIGN.md §2): the bound
//!   L(x0) = sum_{t=1..T} KL( q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t) ) + KL( q(x_T | x0) || π )
//! in bits per sequence, its gradient with respect to the network's logits, and three
//! estimators of it for a batch (full sum over t, t sampled uniformly, t importance-sampled).
//!
//! The t = 1 term is -log p(x0 | x1): the posterior at t = 1 is x0 itself (c_0 = 0), so the KL
//! formula gives exactly the cross-entropy of x0 under p(x0 | x1). The prior term is 0 for every
//! schedule of this crate (b_T = 1) but is computed anyway.
//!
//! Terms per bit against the reverse kernel (kernel.rs), from the network's logit z (f64 here):
//! - direct: f = sigmoid(z). Term KL(q || f) = q1 ln q1 + q0 ln q0 + CE (see
//!   `bernoulli::cross_entropy_from_logit`); d/dz = f - q1.
//! - x0: g = sigmoid(z), h = 1 - g = sigmoid(-z); with A = q(x_{t-1} | x_t, x0=1) and
//!   B = q(x_{t-1} | x_t, x0=0): f1 = g·A1 + h·B1, f0 = g·A0 + h·B0 (both halves as convex
//!   combinations, no 1 - f cancellation). dKL/df1 = (f1 - q1)/(f1 f0), df1/dz = (A1 - B1) g h, and
//!   the target q is A (x0 = 1) or B (x0 = 0), so f1 - q1 = -h(A1 - B1) or g(A1 - B1):
//!   x0 = 1: dKL/dz = -g h² (A1 - B1)² / (f1 f0);   x0 = 0: dKL/dz = g² h (A1 - B1)² / (f1 f0).
//!   At t = 1, A = (1, 0) and B = (0, 1), so f = g: the x0 kernel IS the direct one there, and the
//!   direct formulas are used (finite even when g rounds to 0 or 1).

use crate::bernoulli::{self, BITS_PER_NAT};
use crate::config::{ModelConfig, Parameterisation};
use crate::elementary::ln_normal;
use crate::kernel::{draw_noisy_row, draw_noisy_rows, marginal_thresholds, sigmoid_pair};
use crate::network::{training_noise_key, ReverseNetwork};
use crate::rng::Rng;
use crate::schedule::{PosteriorEntry, Schedule};
use crate::simd::{self, F4, M4};
use serde::{Deserialize, Serialize};

/// How a training step estimates the bound of each example.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Every t = 1..T for every example (exact in t; T network passes per step).
    Full,
    /// One t per example, uniform, the term scaled by T (unbiased).
    Sampled,
    /// One t per example with probability p_t ∝ sqrt(E[L_t²]) (running history over bins of t,
    /// mixed with the uniform), the term weighted by 1/p_t (unbiased); uniform until every bin
    /// has a few terms.
    Importance,
}

/// The posterior entry [x0][x_t] of a step's table, chosen by selects (no indexed load, so loops
/// over bits can be vectorised).
#[inline(always)]
fn select_entry(table: &[[PosteriorEntry; 2]; 2], x0: u8, xt: u8) -> PosteriorEntry {
    let of_x0_0 = if xt != 0 { table[0][1] } else { table[0][0] };
    let of_x0_1 = if xt != 0 { table[1][1] } else { table[1][0] };
    if x0 != 0 {
        of_x0_1
    } else {
        of_x0_0
    }
}

/// (KL in nats, dKL/dz) of one bit at step t with x0 and x_t bits and logit z. Branch-free apart
/// from the loop-invariant choice of kernel. Both kernels compute the KL as
/// q1 ln q1 + q0 ln q0 (tabulated) + cross-entropy, clamped at 0: accurate to a few 1e-16 nats
/// absolute per bit (relative accuracy of very small KLs is not needed for a sum over bits and t).
#[inline]
pub fn bit_term(parameterisation: Parameterisation, table: &[[PosteriorEntry; 2]; 2], t: usize, x0: u8, xt: u8, z: f64) -> (f64, f64) {
    let target = select_entry(table, x0, xt); // q(x_{t-1} | x_t, x0)
    if parameterisation == Parameterisation::Direct || t == 1 {
        // KL(q || sigmoid(z)) = q1 ln q1 + q0 ln q0 + CE;  d/dz = sigmoid(z) - q1
        let (ce, f1) = bernoulli::cross_entropy_from_logit(target.q1, target.q0, z);
        ((target.negative_entropy + ce).max(0.0), f1 - target.q1)
    } else {
        let a = if xt != 0 { table[1][1] } else { table[1][0] }; // post(x0 = 1)
        let b = if xt != 0 { table[0][1] } else { table[0][0] }; // post(x0 = 0)
        let (g, h) = sigmoid_pair(z);
        let f1 = g * a.q1 + h * b.q1; // f = g·post(x0=1) + (1-g)·post(x0=0)
        let f0 = g * a.q0 + h * b.q0;
        let d = a.q1 - b.q1;
        let common = g * h * d * d / (f1 * f0);
        let dkl_dz = if x0 != 0 { -h * common } else { g * common };
        // t >= 2: every posterior is in (0, 1), so f1, f0 >= min(post) > 0 and ln f is finite
        let cross_entropy = -(target.q1 * ln_normal(f1) + target.q0 * ln_normal(f0));
        ((target.negative_entropy + cross_entropy).max(0.0), dkl_dz)
    }
}

/// KL( q(x_T | x0) || B(0.5) ) in bits for one sequence (0 when c_T = 1).
pub fn prior_term_bits(schedule: &Schedule, x0: &[u8]) -> f64 {
    let c_last = schedule.c(schedule.timesteps);
    if c_last == 1.0 {
        return 0.0;
    }
    let mut nats = 0.0;
    for &bit in x0 {
        let m1 = bernoulli::marginal(bit as f64, c_last);
        let m0 = bernoulli::marginal(1.0 - bit as f64, c_last);
        nats += bernoulli::kl(m1, m0, 0.5, 0.5);
    }
    nats * BITS_PER_NAT
}

/// For rows (x0, x_t, t) and their logits: writes each row's term (bits, summed over its bits)
/// into `row_terms` and SETS dlogits[r, j] = row_weights[r] · d(term_r)/d(logit[r, j]) (bits).
pub fn terms_and_dlogits(
    parameterisation: Parameterisation,
    schedule: &Schedule,
    length: usize,
    x0: &[u8],
    xt: &[u8],
    t: &[u32],
    logits: &[f32],
    row_weights: &[f64],
    dlogits: &mut [f32],
    row_terms: &mut [f64],
) {
    const CHUNK: usize = 64;
    let mut kl_chunk = [0.0f64; CHUNK];
    let mut dkl_chunk = [0.0f64; CHUNK];
    let rows = t.len();
    for r in 0..rows {
        let tr = t[r] as usize;
        let table = schedule.posterior_table(tr);
        let scale = row_weights[r] * BITS_PER_NAT;
        let mut nats = 0.0f64;
        let mut start = r * length;
        let end = (r + 1) * length;
        while start < end {
            let n = CHUNK.min(end - start);
            let span = start..start + n;
            // per-bit terms first (a loop without a float reduction: it vectorises) ...
            for ((((kl, dkl), &b0), &bt), &z) in
                kl_chunk[..n].iter_mut().zip(&mut dkl_chunk[..n]).zip(&x0[span.clone()]).zip(&xt[span.clone()]).zip(&logits[span.clone()])
            {
                (*kl, *dkl) = bit_term(parameterisation, table, tr, b0, bt, z as f64);
            }
            // ... then the sum in bit order and the scaled gradient
            for ((dz, &dkl), &kl) in dlogits[span].iter_mut().zip(&dkl_chunk[..n]).zip(&kl_chunk[..n]) {
                nats += kl;
                *dz = (scale * dkl) as f32;
            }
            start += n;
        }
        row_terms[r] = nats * BITS_PER_NAT;
    }
}

/// `terms_and_dlogits` for the direct kernel in four f32 lanes: the training estimate's hot loop
/// (evaluation and `loss_and_gradient_given` keep the f64 terms). Per bit, as
/// `bernoulli::cross_entropy_from_logit` but in f32 (`simd::exp_nonpositive`, `simd::ln_1p_unit`):
///   e = e^-|z|,  sigmoid(z) = 1/(1+e) (z >= 0) or e/(1+e),
///   CE = ln(1 + e) + (z >= 0 ? q0 : q1)·|z|,  KL = max(q1 ln q1 + q0 ln q0 + CE, 0),
///   dKL/dz = sigmoid(z) - q1,
/// with q (and q ln q) rounded to f32. The error of a bit's KL is a few 1e-8 nats (f32 rounding of
/// its cross-entropy); each row's sum over bits is taken in f64, in bit order.
#[allow(clippy::too_many_arguments)]
pub fn direct_terms_and_dlogits_f32(
    schedule: &Schedule,
    length: usize,
    x0: &[u8],
    xt: &[u8],
    t: &[u32],
    logits: &[f32],
    row_weights: &[f64],
    dlogits: &mut [f32],
    row_terms: &mut [f64],
) {
    for r in 0..t.len() {
        let span = r * length..(r + 1) * length;
        let scale = (row_weights[r] * BITS_PER_NAT) as f32;
        let nats =
            direct_row_f32(schedule.posterior_table(t[r] as usize), &x0[span.clone()], &xt[span.clone()], &logits[span.clone()], scale, &mut dlogits[span]);
        row_terms[r] = nats * BITS_PER_NAT;
    }
}

/// One row of `direct_terms_and_dlogits_f32`: returns the sum of the bits' KLs (nats) and SETS
/// dz[j] = scale · dKL/dz_j. Bits go four at a time; a last partial group is padded.
fn direct_row_f32(table: &[[PosteriorEntry; 2]; 2], x0: &[u8], xt: &[u8], z: &[f32], scale: f32, dz: &mut [f32]) -> f64 {
    // per (x0, x_t): q1, q0 and q1 ln q1 + q0 ln q0, in f32 lanes
    let lanes = |f: fn(&PosteriorEntry) -> f64| {
        [[F4::splat(f(&table[0][0]) as f32), F4::splat(f(&table[0][1]) as f32)], [F4::splat(f(&table[1][0]) as f32), F4::splat(f(&table[1][1]) as f32)]]
    };
    let kernel = DirectKernel { q1: lanes(|e| e.q1), q0: lanes(|e| e.q0), negative_entropy: lanes(|e| e.negative_entropy), scale: F4::splat(scale) };
    let mut nats = 0.0f64;
    let length = z.len();
    let full = length - length % 4;
    for j in (0..full).step_by(4) {
        let kl = kernel.bits(M4::nonzero(&x0[j..j + 4]), M4::nonzero(&xt[j..j + 4]), F4::load(&z[j..j + 4]), &mut dz[j..j + 4]);
        let [a, b, c, d] = kl.to_array();
        nats = (((nats + a as f64) + b as f64) + c as f64) + d as f64;
    }
    if full < length {
        let n = length - full;
        let (mut b0, mut bt, mut zs, mut ds) = ([0u8; 4], [0u8; 4], [0.0f32; 4], [0.0f32; 4]);
        b0[..n].copy_from_slice(&x0[full..]);
        bt[..n].copy_from_slice(&xt[full..]);
        zs[..n].copy_from_slice(&z[full..]);
        let kl = kernel.bits(M4::nonzero(&b0), M4::nonzero(&bt), F4::load(&zs), &mut ds);
        dz[full..].copy_from_slice(&ds[..n]);
        for &v in &kl.to_array()[..n] {
            nats += v as f64;
        }
    }
    nats
}

/// The direct kernel's per-bit math for four bits of one row (see `direct_terms_and_dlogits_f32`).
struct DirectKernel {
    /// [x0][x_t] of the step's posterior table, as lanes.
    q1: [[F4; 2]; 2],
    q0: [[F4; 2]; 2],
    negative_entropy: [[F4; 2]; 2],
    scale: F4,
}

impl DirectKernel {
    /// Returns the four KLs (nats) and stores scale · dKL/dz into dz[..4].
    #[inline(always)]
    fn bits(&self, x0: M4, xt: M4, z: F4, dz: &mut [f32]) -> F4 {
        let pick = |v: &[[F4; 2]; 2]| x0.select(xt.select(v[1][1], v[1][0]), xt.select(v[0][1], v[0][0])); // v[x0][x_t]
        let (q1, q0, negative_entropy) = (pick(&self.q1), pick(&self.q0), pick(&self.negative_entropy));
        let (zero, one) = (F4::splat(0.0), F4::splat(1.0));
        let magnitude = z.abs();
        let e = simd::exp_nonpositive(zero.sub(magnitude)); // e^-|z|
        let inverse = one.div(one.add(e));
        let positive = z.ge(zero);
        let p1 = positive.select(inverse, e.mul(inverse)); // sigmoid(z)
        let weight = positive.select(q0, q1);
        let linear = weight.gt(zero).select(weight.mul(magnitude), zero); // (z >= 0 ? q0·z : -q1·z), 0·∞ = 0
        let kl = negative_entropy.add(simd::ln_1p_unit(e).add(linear)); // q ln q + CE
        p1.sub(q1).mul(self.scale).store(dz); // dKL/dz = sigmoid(z) - q1
        kl.lt(zero).select(zero, kl)
    }
}

/// What `loss_and_gradient_given` returns.
#[derive(Clone, Debug)]
pub struct GivenResult {
    /// The term of each row (bits): KL( q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t) ) summed over bits.
    pub row_loss_bits: Vec<f64>,
    /// d(sum of row terms)/d logits (bits), rows × L.
    pub dlogits: Vec<f32>,
}

/// The bound's terms for given rows (x0, x_t, t) — no noise drawn, the network in evaluation mode
/// (no dropout) — and their gradient: ADDS d(sum over rows of the terms)/dθ into `grad`. Used by
/// tests and the TypeScript oracle.
pub fn loss_and_gradient_given(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    x0: &[u8],
    xt: &[u8],
    t: &[u32],
    grad: &mut [f32],
) -> GivenResult {
    let rows = t.len();
    let length = config.length;
    assert_eq!(x0.len(), rows * length);
    assert_eq!(xt.len(), rows * length);
    let input: Vec<f32> = xt.iter().map(|&b| b as f32).collect();
    let mut logits = vec![0.0f32; rows * length];
    let mut dlogits = vec![0.0f32; rows * length];
    let mut row_loss_bits = vec![0.0f64; rows];
    network.forward(&input, t, &mut logits);
    terms_and_dlogits(config.parameterisation, schedule, length, x0, xt, t, &logits, &vec![1.0; rows], &mut dlogits, &mut row_loss_bits);
    network.backward(&dlogits, grad);
    GivenResult { row_loss_bits, dlogits }
}

/// Importance sampling of t groups consecutive t into at most this many bins of (nearly) equal
/// size and learns one probability per bin; t is uniform inside its bin. A term L_t is usually
/// tiny with rare large values (an x_t that makes x0 ambiguous), so per-t histories of a few
/// values badly underestimate some E[L_t²]; a bin pools the observations of its neighbours.
pub const IMPORTANCE_BINS: usize = 50;
/// Number of recent terms kept per bin: enough to see a bin's rare large terms (with 64, a bin
/// whose terms are large 2% of the time still often had none and got only the floor).
pub const IMPORTANCE_HISTORY: usize = 256;
/// Terms every bin must have seen before t is drawn from the history (uniform until then).
pub const IMPORTANCE_MIN_COUNT: usize = 10;
/// Share of uniform probability mixed into the importance distribution. Bounds every weight
/// 1/p_t by T/u: without a real floor, a bin whose history missed its rare large terms gets
/// p ≈ 0 and the estimator, while unbiased, becomes so heavy-tailed that its typical value sits
/// far below its mean (the bug this replaced: u = 0.001, per-t histories of 10 values).
pub const IMPORTANCE_UNIFORM_SHARE: f64 = 0.25;

/// Running record of the last (up to) `IMPORTANCE_HISTORY` terms L_t (bits) of every bin of t.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportanceHistory {
    /// T.
    pub timesteps: usize,
    /// values[k·H + i], a ring buffer per bin k.
    pub values: Vec<f64>,
    /// How many values bin k has seen (capped at H), and where the next one goes.
    pub counts: Vec<u32>,
    pub next: Vec<u32>,
}

impl ImportanceHistory {
    pub fn new(timesteps: usize) -> Self {
        let bins = IMPORTANCE_BINS.min(timesteps);
        Self { timesteps, values: vec![0.0; bins * IMPORTANCE_HISTORY], counts: vec![0; bins], next: vec![0; bins] }
    }

    pub fn timesteps(&self) -> usize {
        self.timesteps
    }

    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// The bin of t (1..=T): k = floor((t - 1)·K / T).
    pub fn bin_of(&self, t: u32) -> usize {
        (t as usize - 1) * self.bins() / self.timesteps
    }

    /// True when every bin has at least `IMPORTANCE_MIN_COUNT` terms (until then t is uniform).
    pub fn is_ready(&self) -> bool {
        self.counts.iter().all(|&c| c as usize >= IMPORTANCE_MIN_COUNT)
    }

    pub fn record(&mut self, t: u32, term_bits: f64) {
        let k = self.bin_of(t);
        let i = self.next[k] as usize;
        self.values[k * IMPORTANCE_HISTORY + i] = term_bits;
        self.next[k] = ((i + 1) % IMPORTANCE_HISTORY) as u32;
        self.counts[k] = (self.counts[k] + 1).min(IMPORTANCE_HISTORY as u32);
    }

    /// p_t = (1 - u)·r_k / sum_j n_j r_j + u/T for t in bin k, with r_k = sqrt(mean of the bin's
    /// recorded L²) (so the bin gets the share n_k r_k / sum_j n_j r_j of sum_t sqrt(E[L_t²])),
    /// n_k its number of t and u = `IMPORTANCE_UNIFORM_SHARE`; uniform when not ready (or all
    /// r = 0). Writes p[t-1].
    pub fn probabilities(&self, p: &mut Vec<f64>) {
        let t_max = self.timesteps;
        p.clear();
        p.resize(t_max, 1.0 / t_max as f64);
        if !self.is_ready() {
            return;
        }
        let bins = self.bins();
        let mut sizes = vec![0usize; bins];
        for t in 1..=t_max as u32 {
            sizes[self.bin_of(t)] += 1;
        }
        let mut root_mean_squares = vec![0.0; bins];
        let mut total = 0.0;
        for k in 0..bins {
            let count = self.counts[k] as usize; // the ring fills from 0, so values[..count] are set
            let window = &self.values[k * IMPORTANCE_HISTORY..k * IMPORTANCE_HISTORY + count];
            root_mean_squares[k] = (window.iter().map(|v| v * v).sum::<f64>() / count as f64).sqrt();
            total += sizes[k] as f64 * root_mean_squares[k];
        }
        if !(total > 0.0 && total.is_finite()) {
            return;
        }
        let u = IMPORTANCE_UNIFORM_SHARE;
        for t in 1..=t_max as u32 {
            let k = self.bin_of(t);
            p[t as usize - 1] = (1.0 - u) * root_mean_squares[k] / total + u / t_max as f64;
        }
    }
}

/// Rows per network pass that the full-sum estimator aims at for small batches (several t per
/// pass); a batch at least this large takes one t per pass.
pub const FULL_PASS_ROWS: usize = 256;

/// Reusable buffers for the estimators (sized to the largest batch seen; no allocation per t).
#[derive(Default)]
pub struct Workspace {
    rngs: Vec<Rng>,
    /// The batch's x0 repeated once per t of a full-sum pass.
    x0: Vec<u8>,
    xt: Vec<u8>,
    input: Vec<f32>,
    t: Vec<u32>,
    /// `network::training_noise_key` of each row of a pass (its example and t).
    noise_keys: Vec<u64>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    row_weights: Vec<f64>,
    row_terms: Vec<f64>,
    /// Cumulative importance probabilities (index t-1).
    probabilities: Vec<f64>,
    cumulative: Vec<f64>,
    /// (t, unweighted term in bits) of every row of the last sampled/importance estimate.
    pub observations: Vec<(u32, f64)>,
}

impl Workspace {
    fn prepare(&mut self, rows: usize, length: usize) {
        let n = rows * length;
        self.xt.resize(n, 0);
        self.input.resize(n, 0.0);
        self.logits.resize(n, 0.0);
        self.dlogits.resize(n, 0.0);
        self.t.resize(rows, 0);
        self.noise_keys.resize(rows, 0);
        self.row_weights.resize(rows, 0.0);
        self.row_terms.resize(rows, 0.0);
    }
}

/// One estimate of the bound for every row of a batch and the gradient of their SUM.
///
/// Noise: row r is example `example_offset + r` and draws from
/// `Rng::for_example(seed, step, example_offset + r)`, in this order:
/// - Full: for t = 1, 2, ..., T: for j = 0..L: x_t[j] = bernoulli(q(x_t=1 | x0_j)).
/// - Sampled: t = 1 + below(T); then for j = 0..L: x_t[j] = bernoulli(q(x_t=1 | x0_j)).
/// - Importance: if `history` is ready, u = uniform_f64() and t = the first t with
///   p_1 + ... + p_t > u (else t = 1 + below(T), as Sampled); then the L bits as above.
///
/// So a batch split over workers draws exactly the noise of the whole batch. The network runs in
/// training mode (`forward_training`): row r at time t draws its dropout masks from
/// `training_noise_key(seed, step, example_offset + r, t)`, a separate stream.
///
/// Returns the sum over rows of (prior term + estimated sum of terms), bits; ADDS its gradient
/// into `grad`. For Sampled/Importance, `workspace.observations` gets each row's (t, term).
#[allow(clippy::too_many_arguments)]
pub fn estimate_bound(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    kind: ObjectiveKind,
    history: Option<&ImportanceHistory>,
    x0: &[u8],
    rows: usize,
    seed: u64,
    step: u64,
    example_offset: u64,
    workspace: &mut Workspace,
    grad: &mut [f32],
) -> f64 {
    let length = config.length;
    let t_max = schedule.timesteps;
    assert_eq!(x0.len(), rows * length, "x0 must hold rows × L bits");
    assert!(x0.iter().all(|&b| b <= 1), "x0 bits must be 0 or 1");
    workspace.prepare(rows, length);
    workspace.observations.clear();
    workspace.rngs.clear();
    workspace.rngs.extend((0..rows).map(|r| Rng::for_example(seed, step, example_offset + r as u64)));
    let mut total = 0.0f64;
    for r in 0..rows {
        total += prior_term_bits(schedule, &x0[r * length..(r + 1) * length]);
    }
    match kind {
        ObjectiveKind::Full => {
            // A small batch takes several consecutive t per network pass (rows t-major: all rows
            // at t, then all at t+1, ...), so each pass has about FULL_PASS_ROWS rows: the matrix
            // products get long enough to run at speed. Every row still draws its bits in order
            // t = 1, 2, ..., T from its own stream.
            let steps_per_pass = (FULL_PASS_ROWS / rows).clamp(1, t_max);
            let pass_rows = steps_per_pass * rows;
            workspace.prepare(pass_rows, length);
            workspace.row_weights[..pass_rows].fill(1.0);
            workspace.x0.clear();
            for _ in 0..steps_per_pass {
                workspace.x0.extend_from_slice(x0);
            }
            let mut x0_passes = std::mem::take(&mut workspace.x0);
            for first in (1..=t_max).step_by(steps_per_pass) {
                let steps = steps_per_pass.min(t_max + 1 - first);
                for (k, t) in (first..first + steps).enumerate() {
                    let span = k * rows * length..(k + 1) * rows * length;
                    draw_noisy_rows(&mut workspace.rngs[..rows], x0, marginal_thresholds(schedule, t), &mut workspace.xt[span]);
                    workspace.t[k * rows..(k + 1) * rows].fill(t as u32);
                    for (r, key) in workspace.noise_keys[k * rows..(k + 1) * rows].iter_mut().enumerate() {
                        *key = training_noise_key(seed, step, example_offset + r as u64, t as u32);
                    }
                }
                total += network_terms(network, config, schedule, &x0_passes[..steps * rows * length], steps * rows, workspace, grad);
            }
            std::mem::swap(&mut workspace.x0, &mut x0_passes);
        }
        ObjectiveKind::Sampled | ObjectiveKind::Importance => {
            let use_history = kind == ObjectiveKind::Importance && history.is_some_and(|h| h.is_ready());
            if use_history {
                history.unwrap().probabilities(&mut workspace.probabilities);
                workspace.cumulative.clear();
                let mut running = 0.0;
                for &p in &workspace.probabilities {
                    running += p;
                    workspace.cumulative.push(running);
                }
            }
            for r in 0..rows {
                let rng = &mut workspace.rngs[r];
                let (t, weight) = if use_history {
                    let u = rng.uniform_f64() * workspace.cumulative[t_max - 1];
                    let index = workspace.cumulative.partition_point(|&c| c <= u).min(t_max - 1);
                    (index + 1, 1.0 / workspace.probabilities[index]) // weight 1/p_t
                } else {
                    (1 + rng.below(t_max as u32) as usize, t_max as f64) // weight T = 1/p_t
                };
                workspace.t[r] = t as u32;
                workspace.noise_keys[r] = training_noise_key(seed, step, example_offset + r as u64, t as u32);
                workspace.row_weights[r] = weight;
                let span = r * length..(r + 1) * length;
                draw_noisy_row(rng, &x0[span.clone()], marginal_thresholds(schedule, t), &mut workspace.xt[span]);
            }
            network_terms(network, config, schedule, x0, rows, workspace, grad);
            for r in 0..rows {
                total += workspace.row_weights[r] * workspace.row_terms[r];
                workspace.observations.push((workspace.t[r], workspace.row_terms[r]));
            }
        }
    }
    total
}

/// `direct_terms_and_dlogits_f32` with the signature of `terms_and_dlogits`.
#[allow(clippy::too_many_arguments)]
fn direct_terms(
    _: Parameterisation,
    schedule: &Schedule,
    length: usize,
    x0: &[u8],
    xt: &[u8],
    t: &[u32],
    logits: &[f32],
    row_weights: &[f64],
    dlogits: &mut [f32],
    row_terms: &mut [f64],
) {
    direct_terms_and_dlogits_f32(schedule, length, x0, xt, t, logits, row_weights, dlogits, row_terms);
}

/// Network pass over the workspace's rows (x_t, t and noise keys filled in), in training mode:
/// row terms into `row_terms`, weighted gradient added into `grad`. Returns the sum of the weighted
/// terms (bits).
fn network_terms(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    x0: &[u8],
    rows: usize,
    workspace: &mut Workspace,
    grad: &mut [f32],
) -> f64 {
    let n = rows * config.length;
    for (i, &b) in workspace.input[..n].iter_mut().zip(&workspace.xt[..n]) {
        *i = b as f32;
    }
    network.forward_training(&workspace.input[..n], &workspace.t[..rows], &workspace.noise_keys[..rows], &mut workspace.logits[..n]);
    let terms = if config.parameterisation == Parameterisation::Direct { direct_terms } else { terms_and_dlogits };
    terms(
        config.parameterisation,
        schedule,
        config.length,
        x0,
        &workspace.xt[..n],
        &workspace.t[..rows],
        &workspace.logits[..n],
        &workspace.row_weights[..rows],
        &mut workspace.dlogits[..n],
        &mut workspace.row_terms[..rows],
    );
    network.backward(&workspace.dlogits[..n], grad);
    (0..rows).map(|r| workspace.row_weights[r] * workspace.row_terms[r]).sum()
}

/// A tiny network for tests of the objective, independent of the real architectures:
/// logits[r, j] = sum_k x[r, k]·W[k, j] + bias[t_r - 1, j].
#[cfg(test)]
pub(crate) mod test_network {
    use crate::config::{Architecture, ModelConfig, Parameterisation, ScheduleKind};
    use crate::network::{ParameterGroup, ReverseNetwork};
    use crate::rng::Rng;

    /// A small mlp model config (hidden 8, one layer) on the paper schedule, for the tests' tiny problems.
    pub fn small_config(length: usize, timesteps: usize, parameterisation: Parameterisation) -> ModelConfig {
        ModelConfig {
            length,
            timesteps,
            schedule: ScheduleKind::Paper,
            architecture: Architecture::Mlp,
            parameterisation,
            hidden: 8,
            layers: 1,
            time_embedding: 8,
            kernel: 0,
            ..ModelConfig::default()
        }
    }

    pub struct LinearNetwork {
        pub length: usize,
        pub timesteps: usize,
        pub parameters: Vec<f32>,
        input: Vec<f32>,
        t: Vec<u32>,
    }

    impl LinearNetwork {
        pub fn new(length: usize, timesteps: usize, seed: u64, scale: f32) -> Self {
            let mut rng = Rng::new(seed);
            let parameters = (0..length * length + timesteps * length).map(|_| scale * rng.normal()).collect();
            LinearNetwork { length, timesteps, parameters, input: Vec::new(), t: Vec::new() }
        }
    }

    impl ReverseNetwork for LinearNetwork {
        fn layout(&self) -> Vec<ParameterGroup> {
            let l = self.length;
            vec![
                ParameterGroup { name: "w".into(), shape: vec![l, l], offset: 0, decay: true },
                ParameterGroup { name: "bias".into(), shape: vec![self.timesteps, l], offset: l * l, decay: false },
            ]
        }
        fn parameters(&self) -> &[f32] {
            &self.parameters
        }
        fn parameters_mut(&mut self) -> &mut [f32] {
            &mut self.parameters
        }
        fn forward(&mut self, xt: &[f32], t: &[u32], logits: &mut [f32]) {
            let l = self.length;
            self.input = xt.to_vec();
            self.t = t.to_vec();
            for (r, &tr) in t.iter().enumerate() {
                for j in 0..l {
                    let mut z = self.parameters[l * l + (tr as usize - 1) * l + j];
                    for k in 0..l {
                        z += xt[r * l + k] * self.parameters[k * l + j];
                    }
                    logits[r * l + j] = z;
                }
            }
        }
        fn backward(&mut self, dlogits: &[f32], grad: &mut [f32]) {
            let l = self.length;
            for (r, &tr) in self.t.iter().enumerate() {
                for j in 0..l {
                    let d = dlogits[r * l + j];
                    grad[l * l + (tr as usize - 1) * l + j] += d;
                    for k in 0..l {
                        grad[k * l + j] += self.input[r * l + k] * d;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_network::{small_config as config, LinearNetwork};
    use super::*;
    use crate::config::{Architecture, ScheduleKind};
    use crate::kernel::reverse_probability;

    const PARAMETERISATIONS: [Parameterisation; 2] = [Parameterisation::Direct, Parameterisation::X0];

    #[test]
    fn direct_terms_in_f32_match_the_f64_terms() {
        // Rows of every (x0, x_t) pattern at t = 1, 2, mid, T-1, T, logits from -100 to 100
        // (tiny, huge, both signs), L = 7 (a padded last group of bits).
        let (length, timesteps) = (7, 60);
        for kind in [ScheduleKind::Paper, ScheduleKind::Cosine] {
            let schedule = Schedule::new(kind, timesteps);
            let mut rng = Rng::new(4);
            let rows = 300;
            let x0: Vec<u8> = (0..rows * length).map(|_| rng.below(2) as u8).collect();
            let xt: Vec<u8> = (0..rows * length).map(|_| rng.below(2) as u8).collect();
            let t: Vec<u32> = (0..rows).map(|r| [1, 2, 30, 59, 60][r % 5]).collect();
            let logits: Vec<f32> =
                (0..rows * length).map(|i| if i % 11 == 0 { 100.0 * (rng.uniform_f32() * 2.0 - 1.0) } else { 8.0 * (rng.uniform_f32() * 2.0 - 1.0) }).collect();
            let weights: Vec<f64> = (0..rows).map(|r| 1.0 + r as f64 / 7.0).collect();
            let (mut d64, mut d32) = (vec![0.0f32; rows * length], vec![0.0f32; rows * length]);
            let (mut r64, mut r32) = (vec![0.0f64; rows], vec![0.0f64; rows]);
            terms_and_dlogits(Parameterisation::Direct, &schedule, length, &x0, &xt, &t, &logits, &weights, &mut d64, &mut r64);
            direct_terms_and_dlogits_f32(&schedule, length, &x0, &xt, &t, &logits, &weights, &mut d32, &mut r32);
            for r in 0..rows {
                // a few f32 roundings of each bit's cross-entropy (|z| + ln 2 at most)
                let scale_of_terms: f64 = logits[r * length..(r + 1) * length].iter().map(|z| z.abs() as f64 + 1.0).sum();
                assert!((r32[r] - r64[r]).abs() <= 4e-7 * scale_of_terms, "{kind:?} row {r} (t = {}): {} vs {}", t[r], r32[r], r64[r]);
                assert!(r32[r] >= 0.0);
                for j in r * length..(r + 1) * length {
                    // sigmoid within a few ulp, times the row's weight (bits)
                    let tolerance = 3e-7 * weights[r] * BITS_PER_NAT;
                    assert!((d32[j] - d64[j]).abs() as f64 <= tolerance, "{kind:?} row {r} bit {j}: {} vs {}", d32[j], d64[j]);
                }
            }
        }
    }

    #[test]
    fn training_with_the_direct_kernel_uses_the_f32_terms_and_matches_the_f64_estimate() {
        let (length, timesteps, rows) = (6, 12, 5);
        let cfg = config(length, timesteps, Parameterisation::Direct);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let x0: Vec<u8> = (0..rows * length).map(|i| (i % 3 == 0) as u8).collect();
        let mut network = LinearNetwork::new(length, timesteps, 3, 0.7);
        let mut grad = vec![0.0f32; network.parameters.len()];
        let mut workspace = Workspace::default();
        let total = estimate_bound(&mut network, &cfg, &schedule, ObjectiveKind::Full, None, &x0, rows, 9, 0, 0, &mut workspace, &mut grad);
        // the same estimate from the f64 terms of the same draws, row by row and t by t
        let mut want = 0.0;
        let mut want_grad = vec![0.0f32; grad.len()];
        let mut rngs: Vec<Rng> = (0..rows).map(|r| Rng::for_example(9, 0, r as u64)).collect();
        for t in 1..=timesteps {
            let mut xt = vec![0u8; rows * length];
            for r in 0..rows {
                draw_noisy_row(&mut rngs[r], &x0[r * length..(r + 1) * length], marginal_thresholds(&schedule, t), &mut xt[r * length..(r + 1) * length]);
            }
            let given = loss_and_gradient_given(&mut network, &cfg, &schedule, &x0, &xt, &vec![t as u32; rows], &mut want_grad);
            want += given.row_loss_bits.iter().sum::<f64>();
        }
        assert!((total - want).abs() <= 1e-6 * want, "{total} vs {want}");
        for (g, w) in grad.iter().zip(&want_grad) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }

    #[test]
    fn bit_term_gradient_matches_central_differences_in_f64() {
        for kind in [ScheduleKind::Paper, ScheduleKind::Cosine, ScheduleKind::Linear] {
            let schedule = Schedule::new(kind, 50);
            for p in PARAMETERISATIONS {
                for t in [1usize, 2, 7, 25, 49, 50] {
                    let table = schedule.posterior_table(t);
                    for x0 in 0..2u8 {
                        for xt in 0..2u8 {
                            for z in [-12.0, -3.1, -0.4, 0.0, 0.6, 2.5, 11.0] {
                                let h = 1e-6;
                                let (kl, d) = bit_term(p, table, t, x0, xt, z);
                                let numeric = (bit_term(p, table, t, x0, xt, z + h).0 - bit_term(p, table, t, x0, xt, z - h).0) / (2.0 * h);
                                assert!(kl >= 0.0 && kl.is_finite());
                                assert!((numeric - d).abs() <= 1e-7 * d.abs().max(1e-2), "{kind:?} {p:?} t={t} x0={x0} xt={xt} z={z}: {numeric} vs {d}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bit_term_is_the_kl_against_the_reverse_kernel() {
        let schedule = Schedule::new(ScheduleKind::Paper, 30);
        for p in PARAMETERISATIONS {
            for t in [1usize, 2, 15, 30] {
                let table = schedule.posterior_table(t);
                for x0 in 0..2u8 {
                    for xt in 0..2u8 {
                        for z in [-4.0, 0.3, 5.0] {
                            let (f1, f0) = reverse_probability(p, table, t == 1, xt, z);
                            assert!((f1 + f0 - 1.0).abs() < 1e-15);
                            let q = schedule.posterior(t, x0, xt);
                            let expected = bernoulli::kl(q.q1, q.q0, f1, f0);
                            let (kl, _) = bit_term(p, table, t, x0, xt, z);
                            assert!((kl - expected).abs() < 1e-12 * expected.max(1.0), "{p:?} t={t}: {kl} vs {expected}");
                        }
                    }
                }
            }
        }
        // x0 kernel: g = 1 gives exactly post(x0=1), g = 0 exactly post(x0=0)
        let table = schedule.posterior_table(10);
        assert_eq!(reverse_probability(Parameterisation::X0, table, false, 1, 1e4).0, table[1][1].q1);
        assert_eq!(reverse_probability(Parameterisation::X0, table, false, 1, -1e4).0, table[0][1].q1);
        // ... and the x0 kernel at the right x0 has zero loss
        assert_eq!(bit_term(Parameterisation::X0, table, 10, 1, 0, 1e4).0, 0.0);
    }

    /// The estimator's value (sum over rows) and gradient for a given network and step.
    fn estimate(
        net: &mut LinearNetwork,
        config: &ModelConfig,
        schedule: &Schedule,
        kind: ObjectiveKind,
        history: Option<&ImportanceHistory>,
        x0: &[u8],
        rows: usize,
        step: u64,
        offset: u64,
    ) -> (f64, Vec<f32>) {
        let mut grad = vec![0.0f32; net.parameters.len()];
        let mut workspace = Workspace::default();
        let loss = estimate_bound(net, config, schedule, kind, history, x0, rows, 99, step, offset, &mut workspace, &mut grad);
        (loss, grad)
    }

    fn random_bits(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.bernoulli(0.5) as u8).collect()
    }

    fn ready_history(timesteps: usize) -> ImportanceHistory {
        let mut history = ImportanceHistory::new(timesteps);
        for k in 0..IMPORTANCE_HISTORY {
            for t in 1..=timesteps {
                history.record(t as u32, 1.0 + (t * 7 + k) as f64 % 5.0);
            }
        }
        assert!(history.is_ready());
        history
    }

    #[test]
    fn estimator_gradients_match_central_differences() {
        // With a fixed seed and step each estimator is a deterministic function of the parameters.
        let (length, timesteps, rows) = (5, 8, 6);
        let history = ready_history(timesteps);
        let x0 = random_bits(rows * length, 3);
        for p in PARAMETERISATIONS {
            let config = config(length, timesteps, p);
            let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
            for kind in [ObjectiveKind::Full, ObjectiveKind::Sampled, ObjectiveKind::Importance] {
                let mut net = LinearNetwork::new(length, timesteps, 5, 0.7);
                let (_, grad) = estimate(&mut net, &config, &schedule, kind, Some(&history), &x0, rows, 4, 0);
                let mut checked = 0;
                for i in 0..net.parameters.len() {
                    if grad[i] == 0.0 {
                        continue; // e.g. a bias of a t no row drew
                    }
                    let h = 1e-2f32;
                    let original = net.parameters[i];
                    net.parameters[i] = original + h;
                    let up = estimate(&mut net, &config, &schedule, kind, Some(&history), &x0, rows, 4, 0).0;
                    net.parameters[i] = original - h;
                    let down = estimate(&mut net, &config, &schedule, kind, Some(&history), &x0, rows, 4, 0).0;
                    net.parameters[i] = original;
                    let numeric = (up - down) / (2.0 * h as f64);
                    let analytic = grad[i] as f64;
                    assert!((numeric - analytic).abs() <= 2e-3 * analytic.abs().max(0.1), "{p:?} {kind:?} parameter {i}: {numeric} vs {analytic}");
                    checked += 1;
                }
                assert!(checked > length * length, "{p:?} {kind:?}: only {checked} parameters checked");
            }
        }
    }

    #[test]
    fn sharded_estimates_sum_to_the_whole_batch() {
        let (length, timesteps, rows) = (4, 6, 7);
        let x0 = random_bits(rows * length, 8);
        let history = ready_history(timesteps);
        for kind in [ObjectiveKind::Full, ObjectiveKind::Sampled, ObjectiveKind::Importance] {
            let config = config(length, timesteps, Parameterisation::X0);
            let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
            let mut net = LinearNetwork::new(length, timesteps, 2, 0.5);
            let (whole, grad) = estimate(&mut net, &config, &schedule, kind, Some(&history), &x0, rows, 3, 0);
            let (a, grad_a) = estimate(&mut net, &config, &schedule, kind, Some(&history), &x0[..3 * length], 3, 3, 0);
            let (b, grad_b) = estimate(&mut net, &config, &schedule, kind, Some(&history), &x0[3 * length..], 4, 3, 3);
            assert!((whole - (a + b)).abs() < 1e-9 * whole.abs(), "{kind:?}: {whole} vs {}", a + b);
            for i in 0..grad.len() {
                assert!((grad[i] - (grad_a[i] + grad_b[i])).abs() <= 1e-5 * grad[i].abs().max(1.0));
            }
        }
    }

    #[test]
    fn dropout_masks_follow_the_example_not_its_place_in_the_shard() {
        // A U-Net with dropout: row r of a shard starting at example k draws the masks of example
        // k + r, so two shards give the rows' terms of the whole batch (one network pass).
        use crate::network::unet::UnetNetwork;
        let (length, timesteps, rows) = (6, 5, 7);
        let x0 = random_bits(rows * length, 9);
        let config = ModelConfig { architecture: Architecture::Unet, channels: 4, dropout: 0.5, ..config(length, timesteps, Parameterisation::X0) };
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let mut net = UnetNetwork::new(&config, &mut Rng::new(2));
        for v in net.parameters_mut() {
            *v = 0.3 * (Rng::new(v.to_bits() as u64 + 1).uniform_f32() - 0.5);
        }
        let mut run = |x0: &[u8], rows: usize, offset: u64, kind: ObjectiveKind| {
            let mut grad = vec![0.0f32; net.parameters().len()];
            let mut workspace = Workspace::default();
            let total = estimate_bound(&mut net, &config, &schedule, kind, None, x0, rows, 99, 3, offset, &mut workspace, &mut grad);
            (total, grad)
        };
        for kind in [ObjectiveKind::Full, ObjectiveKind::Sampled] {
            let (whole, grad) = run(&x0, rows, 0, kind);
            let (a, grad_a) = run(&x0[..3 * length], 3, 0, kind);
            let (b, grad_b) = run(&x0[3 * length..], 4, 3, kind);
            assert!((whole - (a + b)).abs() < 1e-5 * whole.abs(), "{kind:?}: {whole} vs {}", a + b);
            for i in 0..grad.len() {
                assert!((grad[i] - (grad_a[i] + grad_b[i])).abs() <= 1e-4 * grad[i].abs().max(1.0), "{kind:?} {i}");
            }
        }
    }

    #[test]
    fn given_rows_match_the_terms() {
        let (length, timesteps, rows) = (5, 9, 4);
        let config = config(length, timesteps, Parameterisation::X0);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let mut net = LinearNetwork::new(length, timesteps, 4, 0.5);
        let x0 = random_bits(rows * length, 1);
        let xt = random_bits(rows * length, 2);
        let t = [1u32, 4, 9, 4];
        let mut grad = vec![0.0f32; net.parameters.len()];
        let result = loss_and_gradient_given(&mut net, &config, &schedule, &x0, &xt, &t, &mut grad);
        let mut logits = vec![0.0f32; rows * length];
        let input: Vec<f32> = xt.iter().map(|&b| b as f32).collect();
        net.forward(&input, &t, &mut logits);
        for r in 0..rows {
            let expected: f64 = (0..length)
                .map(|j| {
                    bit_term(
                        Parameterisation::X0,
                        schedule.posterior_table(t[r] as usize),
                        t[r] as usize,
                        x0[r * length + j],
                        xt[r * length + j],
                        logits[r * length + j] as f64,
                    )
                    .0
                })
                .sum::<f64>()
                * BITS_PER_NAT;
            assert!((result.row_loss_bits[r] - expected).abs() < 1e-12);
        }
        // the bias gradient of (t = 4, bit j) is the sum of the two rows' dlogits
        let j = 2;
        let bias = length * length + 3 * length + j;
        assert!((grad[bias] - (result.dlogits[length + j] + result.dlogits[3 * length + j])).abs() < 1e-6);
    }

    #[test]
    fn sampled_and_importance_estimators_are_unbiased_for_the_full_sum() {
        // E over steps (noise) of each estimator equals E of the full sum; compare the means
        // over many independent steps with a tolerance from their own standard errors.
        // T = 12: one t per importance bin; T = 2K + 1: bins of 2-3 t.
        for timesteps in [12, 2 * IMPORTANCE_BINS + 1] {
            let (length, rows) = (4, 8);
            let config = config(length, timesteps, Parameterisation::X0);
            let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
            let mut net = LinearNetwork::new(length, timesteps, 6, 0.8);
            let x0 = random_bits(rows * length, 5);
            let history = ready_history(timesteps);
            let steps = 3000;
            let mut stats = Vec::new();
            for kind in [ObjectiveKind::Full, ObjectiveKind::Sampled, ObjectiveKind::Importance] {
                let values: Vec<f64> =
                    (0..steps).map(|s| estimate(&mut net, &config, &schedule, kind, Some(&history), &x0, rows, s, 0).0 / rows as f64).collect();
                let mean = values.iter().sum::<f64>() / steps as f64;
                let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (steps - 1) as f64;
                stats.push((mean, (variance / steps as f64).sqrt()));
            }
            let (full, full_se) = stats[0];
            for &(mean, se) in &stats[1..] {
                let tolerance = 4.0 * (se * se + full_se * full_se).sqrt();
                assert!((mean - full).abs() < tolerance, "T = {timesteps}: {mean} vs full {full} (tolerance {tolerance})");
            }
            // and the estimators do differ in variance: the sampled one is noisier than the full sum
            assert!(stats[1].1 > stats[0].1);
        }
    }

    #[test]
    fn importance_probabilities_follow_the_root_mean_square_history() {
        let mut history = ImportanceHistory::new(3);
        let mut p = Vec::new();
        history.probabilities(&mut p);
        assert_eq!(p, vec![1.0 / 3.0; 3]); // not ready: uniform
                                           // ready once every bin has IMPORTANCE_MIN_COUNT terms; the mean is over those recorded
        for _ in 0..IMPORTANCE_MIN_COUNT {
            history.record(1, 2.0);
            history.record(2, 2.0);
        }
        assert!(!history.is_ready());
        for k in 0..IMPORTANCE_MIN_COUNT {
            history.record(3, if k % 2 == 0 { 0.0 } else { 4.0 }); // root mean square 2√2
        }
        assert!(history.is_ready());
        history.probabilities(&mut p);
        let u = IMPORTANCE_UNIFORM_SHARE;
        let total = 4.0 + 8f64.sqrt();
        assert!((p[0] - ((1.0 - u) * 2.0 / total + u / 3.0)).abs() < 1e-15);
        assert!((p[2] - ((1.0 - u) * 8f64.sqrt() / total + u / 3.0)).abs() < 1e-15);
        let mut history = ImportanceHistory::new(3);
        for _ in 0..IMPORTANCE_HISTORY {
            history.record(1, 1.0);
            history.record(2, 2.0);
            history.record(3, 3.0);
        }
        history.probabilities(&mut p);
        for (i, w) in [1.0, 2.0, 3.0].iter().enumerate() {
            assert!((p[i] - ((1.0 - u) * w / 6.0 + u / 3.0)).abs() < 1e-15);
        }
        // the ring buffer keeps only the last H values
        for _ in 0..IMPORTANCE_HISTORY {
            history.record(1, 3.0);
        }
        history.probabilities(&mut p);
        assert!((p[0] - ((1.0 - u) * 3.0 / 8.0 + u / 3.0)).abs() < 1e-15);
    }

    #[test]
    fn importance_bins_pool_neighbouring_t() {
        // T = 2K + 1 with K bins: bin k = floor((t-1)·K/T) holds 2 or 3 consecutive t
        let timesteps = 2 * IMPORTANCE_BINS + 1;
        let mut history = ImportanceHistory::new(timesteps);
        assert_eq!(history.bins(), IMPORTANCE_BINS);
        let mut sizes = vec![0usize; IMPORTANCE_BINS];
        for t in 1..=timesteps as u32 {
            let k = history.bin_of(t);
            assert!(t == 1 || k == history.bin_of(t - 1) || k == history.bin_of(t - 1) + 1, "bins are runs of consecutive t");
            sizes[k] += 1;
        }
        assert!(sizes.iter().all(|&n| n == 2 || n == 3));
        // every t of bin k records the term k + 1 (a bin fills from any of its t)
        for _ in 0..IMPORTANCE_HISTORY {
            for t in 1..=timesteps as u32 {
                let k = history.bin_of(t);
                history.record(t, (k + 1) as f64);
            }
        }
        assert!(history.is_ready());
        let mut p = Vec::new();
        history.probabilities(&mut p);
        // p_t = (1 - u)·w_k / sum_j n_j w_j + u/T with w_k = k + 1
        let total: f64 = (0..IMPORTANCE_BINS).map(|k| sizes[k] as f64 * (k + 1) as f64).sum();
        let u = IMPORTANCE_UNIFORM_SHARE;
        for t in 1..=timesteps as u32 {
            let k = history.bin_of(t);
            let expected = (1.0 - u) * (k + 1) as f64 / total + u / timesteps as f64;
            assert!((p[t as usize - 1] - expected).abs() < 1e-15);
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    /// Terms like the heartbeat's: L_t is 0 for most x_t and large for the rare x_t that make x0
    /// ambiguous, E[L_t] a bump over t. Returns (E[L_t], E[L_t²]) for t = 1..T.
    fn rare_large_terms(timesteps: usize, rarity: f64) -> (Vec<f64>, Vec<f64>) {
        (1..=timesteps)
            .map(|t| {
                let s = (std::f64::consts::PI * t as f64 / timesteps as f64).sin();
                let mean = 0.002 * s * s + 1e-6;
                (mean, mean * mean / rarity) // L = mean/rarity with probability rarity
            })
            .unzip()
    }

    #[test]
    fn importance_sampling_of_rare_large_terms_beats_uniform_t() {
        // Fill the history as training does (t drawn from the current probabilities, its term
        // recorded), then compute EXACTLY the variance of the one-draw estimator L_t/p_t:
        //   Var_p = sum_t E[L_t²]/p_t - (sum_t E[L_t])²,
        // and compare it with uniform t (p_t = 1/T). With per-t histories of a few values most t
        // had seen only zeros, got p_t ≈ 0 and made the estimator far worse than uniform
        // (unbiased, but its typical value sat well below its mean).
        let timesteps = 2000;
        for rarity in [0.02, 0.05, 0.2] {
            let (mean, mean_square) = rare_large_terms(timesteps, rarity);
            let mut history = ImportanceHistory::new(timesteps);
            let mut rng = Rng::new(17);
            let mut p = Vec::new();
            let mut cumulative = Vec::new();
            for _step in 0..300 {
                history.probabilities(&mut p);
                cumulative.clear();
                let mut running = 0.0;
                for &pt in &p {
                    running += pt;
                    cumulative.push(running);
                }
                for _row in 0..256 {
                    let u = rng.uniform_f64() * running;
                    let t = cumulative.partition_point(|&c| c <= u).min(timesteps - 1) + 1;
                    let term = if rng.uniform_f64() < rarity { mean[t - 1] / rarity } else { 0.0 };
                    history.record(t as u32, term);
                }
            }
            history.probabilities(&mut p);
            assert!(history.is_ready());
            // every weight 1/p_t is at most T/u
            let largest_weight = p.iter().map(|&pt| 1.0 / pt).fold(0.0, f64::max);
            assert!(largest_weight <= timesteps as f64 / IMPORTANCE_UNIFORM_SHARE * (1.0 + 1e-9));
            let total: f64 = mean.iter().sum();
            let importance_variance: f64 = mean_square.iter().zip(&p).map(|(m2, pt)| m2 / pt).sum::<f64>() - total * total;
            let uniform_variance: f64 = timesteps as f64 * mean_square.iter().sum::<f64>() - total * total;
            assert!(importance_variance < uniform_variance, "rarity {rarity}: importance {importance_variance} vs uniform {uniform_variance}");
        }
    }
}
