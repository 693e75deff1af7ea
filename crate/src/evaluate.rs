//! Evaluation (DESIGN.md §2): the bound by Monte Carlo over x_t (full or stratified sum over t,
//! R repeats, standard errors) and the exact NLL by the forward algorithm over all 2^L states (small L).
//! The "oracle" reverse kernel they are checked with is `network::oracle::OracleNetwork`.

use crate::config::ModelConfig;
use crate::elementary::ln;
use crate::error::{CoreError, CoreResult};
use crate::kernel::{draw_noisy_row, marginal_thresholds, reverse_probability};
use crate::network::ReverseNetwork;
use crate::objective::{prior_term_bits, terms_and_dlogits};
use crate::rng::Rng;
use crate::schedule::Schedule;
use std::ops::Range;

/// Repeat r of the bound's Monte Carlo draws for sequence i uses
/// `Rng::for_example(seed, EVAL_STREAM_BASE - r, i)` (far from training steps and sampling).
pub const EVAL_STREAM_BASE: u64 = u64::MAX - 16;
/// Largest L the exact likelihood accepts (2^L states, cost O(T·4^L)).
pub const EXACT_MAX_LENGTH: usize = 12;
/// At most this many rows, and rows × L bits, per network call in `evaluate_bound` (the
/// activations of a call grow with both).
const CHUNK_ROWS: usize = 512;
const CHUNK_CELLS: usize = 1 << 16;

/// A Monte-Carlo estimate of the bound on a dataset, bits per sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundEstimate {
    /// Per sequence: the mean over the R repeats of the full-sum bound (prior term included).
    pub per_sequence: Vec<f64>,
    /// Mean over sequences of `per_sequence`.
    pub mean: f64,
    /// Monte-Carlo standard error of `mean` for THIS dataset (its sequences fixed, only the
    /// x_t draws random): sqrt( sum_i s_i² / R ) / n, with s_i² the sample variance of
    /// sequence i's R repeats. This is the error bar to compare with a number for a fixed set,
    /// e.g. all 5 heartbeat phases (a uniform distribution over them). NaN when R < 2.
    pub mc_stderr: f64,
    /// Standard error of `mean` as an estimate of the bound's expectation over the data
    /// distribution, the dataset being a sample from it: the sample standard deviation of
    /// `per_sequence` over sqrt(n) (includes the Monte-Carlo error). NaN when n < 2.
    pub sequence_stderr: f64,
    pub repeats: usize,
}

/// How the bound's sum over t = 1..T is estimated for one (sequence, repeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSampling {
    /// Every term t = 1..T, each with its own x_t draw: exact in t, T network rows per repeat.
    Full,
    /// K strata of t (contiguous, near-equal ranges [lo_s, hi_s]); one t drawn uniformly in each,
    /// its term weighted by the stratum's size: sum_s (hi_s - lo_s + 1) · L_{t_s}, an unbiased
    /// estimate of sum_t L_t with K network rows per repeat. K >= T is `Full` exactly.
    Stratified(usize),
}

impl TimeSampling {
    /// `Stratified(strata)` for strata > 0, `Full` for 0 (the wasm and CLI convention).
    pub fn from_strata(strata: usize) -> Self {
        if strata == 0 {
            TimeSampling::Full
        } else {
            TimeSampling::Stratified(strata)
        }
    }

    /// The strata of t = 1..T as inclusive ranges: T of width 1 for `Full` (or K >= T), else K.
    pub fn strata(self, timesteps: usize) -> Vec<(usize, usize)> {
        let k = match self {
            TimeSampling::Full => timesteps,
            TimeSampling::Stratified(k) => k.min(timesteps),
        };
        // stratum s covers t in [1 + floor(s·T/K), floor((s+1)·T/K)]
        (0..k).map(|s| (1 + s * timesteps / k, (s + 1) * timesteps / k)).collect()
    }
}

/// The bound of every sequence (prior term + the sum over t of L_t, each L_t at an x_t ~ q(x_t |
/// x0) of its own), repeated R times, with the sum over t exact or stratified (`TimeSampling`).
/// Draw order of (sequence i, repeat r), from its own stream (see `EVAL_STREAM_BASE`): for each
/// stratum in order of t: t (only when the stratum holds more than one step), then x_t[j] =
/// bernoulli(q(x_t=1 | x0_j)) for j = 0..L. So the result does not depend on chunking, and
/// `Full` and `Stratified(K >= T)` give the same totals.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_bound(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    x0: &[u8],
    rows: usize,
    repeats: usize,
    sampling: TimeSampling,
    seed: u64,
) -> CoreResult<BoundEstimate> {
    let totals = bound_totals(network, config, schedule, x0, rows, repeats, sampling, seed, 0, 0..rows * repeats)?;
    Ok(summarise(&totals, rows, repeats))
}

/// The Monte-Carlo totals of `evaluate_bound` before summarising: totals[i·R + r] (bits) for the
/// rows of x0, which are sequences first_index.. of the dataset (their streams' index), so a
/// worker evaluating rows a..b computes exactly those totals of one big call. Only the items
/// (i·R + r) in `items` are computed and returned (in order): every item draws from its own
/// stream, so a pool can split the work by (sequence, repeat) rather than by sequence.
#[allow(clippy::too_many_arguments)]
pub fn bound_totals(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    x0: &[u8],
    rows: usize,
    repeats: usize,
    sampling: TimeSampling,
    seed: u64,
    first_index: u64,
    items: Range<usize>,
) -> CoreResult<Vec<f64>> {
    let length = config.length;
    if x0.len() != rows * length {
        return Err(CoreError::User(format!("x0 must hold rows × L = {} bits, got {}", rows * length, x0.len())));
    }
    if x0.iter().any(|&b| b > 1) {
        return Err(CoreError::user("x0 bits must be 0 or 1"));
    }
    if repeats == 0 {
        return Err(CoreError::user("repeats must be at least 1"));
    }
    if items.start > items.end || items.end > rows * repeats {
        return Err(CoreError::Internal(format!("items {items:?} are not within the {} of {rows} rows × {repeats} repeats", rows * repeats)));
    }
    let strata = sampling.strata(schedule.timesteps);
    let first_item = items.start;
    let items = items.len(); // local item k is item first_item + k = i·R + r
    let mut totals = vec![0.0f64; items];
    let mut rngs: Vec<Rng> = Vec::with_capacity(items);
    for (k, total) in totals.iter_mut().enumerate() {
        let item = first_item + k;
        let (i, r) = (item / repeats, item % repeats);
        rngs.push(Rng::for_example(seed, EVAL_STREAM_BASE - r as u64, first_index + i as u64));
        *total = prior_term_bits(schedule, &x0[i * length..(i + 1) * length]);
    }
    // Network rows are (item, stratum) pairs taken item-major in chunks: each item's generator
    // draws its strata in order whatever the chunk boundaries. With every stratum one step wide
    // (`Full`), the chunks go t-major instead (all items at t = 1, then t = 2, ...), which keeps
    // each item's draw order and lets small data sets fill a chunk.
    let per_item = strata.len();
    let pairs = items * per_item;
    let t_major = strata.iter().all(|&(lo, hi)| lo == hi);
    let pair_of = |p: usize| if t_major { (p % items, p / items) } else { (p / per_item, p % per_item) };
    let chunk = CHUNK_ROWS.min((CHUNK_CELLS / length.max(1)).max(1)).min(pairs.max(1));
    let mut x0_rows = vec![0u8; chunk * length];
    let mut xt = vec![0u8; chunk * length];
    let mut input = vec![0.0f32; chunk * length];
    let mut logits = vec![0.0f32; chunk * length];
    let mut dlogits = vec![0.0f32; chunk * length];
    let mut t_rows = vec![0u32; chunk];
    let mut items_of_rows = vec![0usize; chunk];
    let mut widths = vec![0.0f64; chunk];
    let unit_weights = vec![1.0f64; chunk];
    let mut terms = vec![0.0f64; chunk];
    let mut start = 0;
    while start < pairs {
        let n = chunk.min(pairs - start);
        let cells = n * length;
        for k in 0..n {
            let (item, stratum) = pair_of(start + k);
            let i = (first_item + item) / repeats;
            let (lo, hi) = strata[stratum];
            let rng = &mut rngs[item];
            let t = if hi > lo { lo + rng.below((hi - lo + 1) as u32) as usize } else { lo };
            let span = k * length..(k + 1) * length;
            x0_rows[span.clone()].copy_from_slice(&x0[i * length..(i + 1) * length]);
            draw_noisy_row(rng, &x0_rows[span.clone()], marginal_thresholds(schedule, t), &mut xt[span]);
            t_rows[k] = t as u32;
            items_of_rows[k] = item;
            widths[k] = (hi - lo + 1) as f64;
        }
        for (x, &b) in input[..cells].iter_mut().zip(&xt[..cells]) {
            *x = b as f32;
        }
        network.forward(&input[..cells], &t_rows[..n], &mut logits[..cells]);
        terms_and_dlogits(
            config.parameterisation,
            schedule,
            length,
            &x0_rows[..cells],
            &xt[..cells],
            &t_rows[..n],
            &logits[..cells],
            &unit_weights[..n],
            &mut dlogits[..cells],
            &mut terms[..n],
        );
        for k in 0..n {
            // the stratum's share of the sum over t: (hi - lo + 1) · L_t
            totals[items_of_rows[k]] += widths[k] * terms[k];
        }
        start += n;
    }
    Ok(totals)
}

/// Per-sequence means and both standard errors from totals[i·R + r].
pub fn summarise(totals: &[f64], rows: usize, repeats: usize) -> BoundEstimate {
    let mut per_sequence = Vec::with_capacity(rows);
    let mut within_variance_sum = 0.0f64;
    for i in 0..rows {
        let values = &totals[i * repeats..(i + 1) * repeats];
        let mean = values.iter().sum::<f64>() / repeats as f64;
        if repeats > 1 {
            within_variance_sum += values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (repeats - 1) as f64;
        }
        per_sequence.push(mean);
    }
    let n = rows as f64;
    let mean = per_sequence.iter().sum::<f64>() / n;
    // sqrt( sum_i s_i²/R ) / n
    let mc_stderr = if repeats > 1 { (within_variance_sum / repeats as f64).sqrt() / n } else { f64::NAN };
    // sd(per_sequence)/sqrt(n)
    let sequence_stderr = if rows > 1 { (per_sequence.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt() } else { f64::NAN };
    BoundEstimate { per_sequence, mean, mc_stderr, sequence_stderr, repeats }
}

/// What `exact_nll` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ExactNll {
    /// -log2 p(x0) for every given sequence.
    pub nll_bits: Vec<f64>,
    /// sum over all 2^L sequences of p(x0) (1 up to rounding; a test of the computation).
    pub total_mass: f64,
}

/// The model's exact p(x0) by the forward algorithm: p(x_T) = 2^-L, and for t = T..1
///   p(x_{t-1} = y) = sum_x p(x_t = x) · prod_j f_j(x, t)^{y_j} (1 - f_j(x, t))^{1-y_j}.
/// State x is the integer sum_j x_j 2^j. For each x the product kernel over all y is built by
/// doubling (bit j splits every entry into (1-f_j, f_j) halves, 2^L work) starting from p(x),
/// then added into p_{t-1}: O(4^L) per t plus the network on all 2^L states. f in f64.
pub fn exact_nll(network: &mut dyn ReverseNetwork, config: &ModelConfig, schedule: &Schedule, x0: &[u8], rows: usize) -> CoreResult<ExactNll> {
    let length = config.length;
    if length > EXACT_MAX_LENGTH {
        return Err(CoreError::User(format!("the exact likelihood needs L <= {EXACT_MAX_LENGTH}, got {length}")));
    }
    if x0.len() != rows * length || x0.iter().any(|&b| b > 1) {
        return Err(CoreError::User(format!("x0 must hold rows × L = {} bits of 0/1", rows * length)));
    }
    let states = 1usize << length;
    let mut p = vec![1.0 / states as f64; states]; // p(x_T) uniform
    let mut p_prev = vec![0.0f64; states];
    let mut kernel = vec![0.0f64; states];
    // every state's bits as network input
    let mut input = vec![0.0f32; states * length];
    let mut bits = vec![0u8; states * length];
    for x in 0..states {
        for j in 0..length {
            bits[x * length + j] = ((x >> j) & 1) as u8;
            input[x * length + j] = bits[x * length + j] as f32;
        }
    }
    let mut logits = vec![0.0f32; states * length];
    let mut f1 = vec![0.0f64; states * length];
    let mut f0 = vec![0.0f64; states * length];
    let chunk = 1024.min(states);
    let mut t_rows = vec![0u32; chunk];
    for t in (1..=schedule.timesteps).rev() {
        let table = schedule.posterior_table(t);
        t_rows.fill(t as u32);
        let mut start = 0;
        while start < states {
            let n = chunk.min(states - start);
            let span = start * length..(start + n) * length;
            network.forward(&input[span.clone()], &t_rows[..n], &mut logits[span]);
            start += n;
        }
        for k in 0..states * length {
            let (a, b) = reverse_probability(config.parameterisation, table, t == 1, bits[k], logits[k] as f64);
            f1[k] = a;
            f0[k] = b;
        }
        p_prev.fill(0.0);
        for x in 0..states {
            if p[x] == 0.0 {
                continue;
            }
            kernel[0] = p[x];
            let mut size = 1;
            for j in 0..length {
                let (one, zero) = (f1[x * length + j], f0[x * length + j]);
                for k in 0..size {
                    kernel[k + size] = kernel[k] * one; // y_j = 1
                    kernel[k] *= zero; // y_j = 0
                }
                size *= 2;
            }
            for (q, &v) in p_prev.iter_mut().zip(&kernel) {
                *q += v;
            }
        }
        std::mem::swap(&mut p, &mut p_prev);
    }
    let total_mass = p.iter().sum::<f64>();
    let nll_bits = (0..rows)
        .map(|i| {
            let index = (0..length).map(|j| (x0[i * length + j] as usize) << j).sum::<usize>();
            -ln(p[index]) / std::f64::consts::LN_2
        })
        .collect();
    Ok(ExactNll { nll_bits, total_mass })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Parameterisation, ScheduleKind};
    use crate::network::oracle::OracleNetwork;
    use crate::objective::test_network::{small_config as config, LinearNetwork};

    /// All P phases of the heartbeat: bit i of phase k is 1 when i mod P = k.
    fn heartbeat(length: usize, period: usize) -> Vec<u8> {
        (0..period).flat_map(|k| (0..length).map(move |i| (i % period == k) as u8)).collect()
    }

    #[test]
    fn summarise_uses_the_within_sequence_variance_for_the_monte_carlo_error() {
        // two sequences, three repeats each
        let totals = [1.0, 2.0, 3.0, 10.0, 10.0, 13.0];
        let e = summarise(&totals, 2, 3);
        assert_eq!(e.per_sequence, vec![2.0, 11.0]);
        assert_eq!(e.mean, 6.5);
        // s² = 1 and 3: sqrt((1 + 3)/3)/2
        assert!((e.mc_stderr - (4.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-15);
        // sd of (2, 11) = 9/√2, over √2
        assert!((e.sequence_stderr - 4.5).abs() < 1e-12);
        assert!(summarise(&[1.0, 2.0], 2, 1).mc_stderr.is_nan());
    }

    #[test]
    fn exact_nll_of_the_fair_coin_kernel_is_l_bits() {
        // direct parameterisation with all logits 0: every step is a fair coin, p(x0) = 2^-L
        let (length, timesteps) = (5, 4);
        let mut net = LinearNetwork::new(length, timesteps, 1, 0.0);
        let x0 = [0, 1, 1, 0, 1, 1, 1, 1, 1, 1];
        let exact = exact_nll(&mut net, &config(length, timesteps, Parameterisation::Direct), &Schedule::new(ScheduleKind::Paper, timesteps), &x0, 2).unwrap();
        assert!((exact.total_mass - 1.0).abs() < 1e-12);
        for v in exact.nll_bits {
            assert!((v - length as f64).abs() < 1e-9);
        }
    }

    #[test]
    fn exact_nll_matches_brute_force_enumeration_of_paths() {
        // T = 2, L = 2: p(x0) = sum_{x2, x1} p(x2) p(x1|x2) p(x0|x1), enumerated directly
        let (length, timesteps) = (2, 2);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        for p in [Parameterisation::Direct, Parameterisation::X0] {
            let config = config(length, timesteps, p);
            let mut net = LinearNetwork::new(length, timesteps, 7, 1.5);
            let kernel = |net: &mut LinearNetwork, x: [u8; 2], t: usize, y: [u8; 2]| -> f64 {
                let mut logits = [0.0f32; 2];
                net.forward(&[x[0] as f32, x[1] as f32], &[t as u32], &mut logits);
                (0..2)
                    .map(|j| {
                        let (f1, f0) = reverse_probability(p, schedule.posterior_table(t), t == 1, x[j], logits[j] as f64);
                        if y[j] == 1 {
                            f1
                        } else {
                            f0
                        }
                    })
                    .product()
            };
            let states = [[0u8, 0], [1, 0], [0, 1], [1, 1]];
            let all: Vec<u8> = states.iter().flatten().copied().collect();
            let exact = exact_nll(&mut net, &config, &schedule, &all, 4).unwrap();
            for (s, x0) in states.iter().enumerate() {
                let mut prob = 0.0;
                for x2 in states {
                    for x1 in states {
                        prob += 0.25 * kernel(&mut net, x2, 2, x1) * kernel(&mut net, x1, 1, *x0);
                    }
                }
                assert!((exact.nll_bits[s] - (-prob.log2())).abs() < 1e-9, "{p:?} {x0:?}");
            }
        }
    }

    #[test]
    fn oracle_bound_is_above_its_exact_nll_and_the_data_entropy() {
        // L = 6, P = 3: three sequences; exact p(x0) of the oracle kernel vs its MC bound
        let (length, period, timesteps) = (6, 3, 20);
        let data = heartbeat(length, period);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let config = config(length, timesteps, Parameterisation::X0);
        let mut oracle = OracleNetwork::new(&schedule, length, &data);
        let exact = exact_nll(&mut oracle, &config, &schedule, &data, period).unwrap();
        assert!((exact.total_mass - 1.0).abs() < 1e-9);
        let exact_mean = exact.nll_bits.iter().sum::<f64>() / period as f64;
        let bound = evaluate_bound(&mut oracle, &config, &schedule, &data, period, 400, TimeSampling::Full, 5).unwrap();
        assert!(exact_mean >= (period as f64).log2() - 1e-9, "exact {exact_mean}");
        assert!(bound.mean >= exact_mean - 3.0 * bound.mc_stderr, "bound {} ± {} vs exact {exact_mean}", bound.mean, bound.mc_stderr);
    }

    #[test]
    fn strata_partition_one_to_t_in_near_equal_ranges() {
        assert_eq!(TimeSampling::Stratified(3).strata(10), vec![(1, 3), (4, 6), (7, 10)]);
        assert_eq!(TimeSampling::Stratified(1).strata(7), vec![(1, 7)]);
        assert_eq!(TimeSampling::Full.strata(3), vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!(TimeSampling::Stratified(50).strata(4), TimeSampling::Full.strata(4));
        for (k, timesteps) in [(7, 100), (64, 2000), (100, 1000), (13, 13)] {
            let strata = TimeSampling::Stratified(k).strata(timesteps);
            assert_eq!(strata.len(), k);
            assert_eq!(strata[0].0, 1);
            assert_eq!(strata[k - 1].1, timesteps);
            for pair in strata.windows(2) {
                assert_eq!(pair[1].0, pair[0].1 + 1, "contiguous");
            }
            let widths: Vec<usize> = strata.iter().map(|(lo, hi)| hi - lo + 1).collect();
            assert!(widths.iter().max().unwrap() - widths.iter().min().unwrap() <= 1, "{widths:?}");
        }
    }

    #[test]
    fn stratified_with_a_stratum_per_step_is_the_full_sum_bit_for_bit() {
        let (length, timesteps) = (5, 9);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let config = config(length, timesteps, Parameterisation::X0);
        let mut net = LinearNetwork::new(length, timesteps, 3, 0.7);
        let x0 = [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1];
        let full = bound_totals(&mut net, &config, &schedule, &x0, 3, 4, TimeSampling::Full, 8, 2, 0..12).unwrap();
        for k in [timesteps, 1000] {
            assert_eq!(bound_totals(&mut net, &config, &schedule, &x0, 3, 4, TimeSampling::Stratified(k), 8, 2, 0..12).unwrap(), full);
        }
        assert_ne!(bound_totals(&mut net, &config, &schedule, &x0, 3, 4, TimeSampling::Stratified(4), 8, 2, 0..12).unwrap(), full);
    }

    /// E[bound] exactly, for tiny L: prior + sum_t sum_{x_t} q(x_t | x0) L_t(x0, x_t), every x_t enumerated.
    fn expected_bound(net: &mut LinearNetwork, config: &ModelConfig, schedule: &Schedule, x0: &[u8]) -> f64 {
        let length = x0.len();
        let states = 1usize << length;
        let mut total = prior_term_bits(schedule, x0);
        let (mut logits, mut dlogits) = (vec![0.0f32; length], vec![0.0f32; length]);
        let mut term = [0.0f64];
        for t in 1..=schedule.timesteps {
            let q1 = marginal_thresholds(schedule, t).map(f64::from); // q(x_t = 1 | x0 = b) as the sampler uses it
            for state in 0..states {
                let xt: Vec<u8> = (0..length).map(|j| ((state >> j) & 1) as u8).collect();
                let probability: f64 = (0..length).map(|j| if xt[j] == 1 { q1[x0[j] as usize] } else { 1.0 - q1[x0[j] as usize] }).product();
                let input: Vec<f32> = xt.iter().map(|&b| b as f32).collect();
                net.forward(&input, &[t as u32], &mut logits);
                terms_and_dlogits(config.parameterisation, schedule, length, x0, &xt, &[t as u32], &logits, &[1.0], &mut dlogits, &mut term);
                total += probability * term[0];
            }
        }
        total
    }

    #[test]
    fn stratified_bound_is_unbiased_with_an_honest_standard_error() {
        // L = 3, T = 40: the exact expectation by enumerating x_t, against K = 1, 5 and 40 strata
        let (length, timesteps) = (3, 40);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        for p in [Parameterisation::X0, Parameterisation::Direct] {
            let config = config(length, timesteps, p);
            let mut net = LinearNetwork::new(length, timesteps, 11, 1.2);
            let x0 = [1u8, 0, 1];
            let exact = expected_bound(&mut net, &config, &schedule, &x0);
            let mut errors = vec![];
            for k in [1, 5, timesteps] {
                let e = evaluate_bound(&mut net, &config, &schedule, &x0, 1, 4000, TimeSampling::Stratified(k), 3).unwrap();
                assert!((e.mean - exact).abs() < 4.0 * e.mc_stderr, "{p:?} K = {k}: {} ± {} vs exact {exact}", e.mean, e.mc_stderr);
                errors.push(e.mc_stderr);
            }
            // more strata, less variance (one t per stratum removes the spread between strata)
            assert!(errors[0] > errors[1] && errors[1] > errors[2], "{p:?}: {errors:?}");
        }
    }

    /// DESIGN.md §3: the best factorised kernel on the 5 heartbeat phases (L = 20).
    fn oracle_heartbeat_bound(timesteps: usize, repeats: usize) -> BoundEstimate {
        let (length, period) = (20, 5);
        let data = heartbeat(length, period);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let mut oracle = OracleNetwork::new(&schedule, length, &data);
        evaluate_bound(&mut oracle, &config(length, timesteps, Parameterisation::X0), &schedule, &data, period, repeats, TimeSampling::Full, 2015).unwrap()
    }

    #[test]
    fn oracle_kernel_on_the_heartbeat_at_t_100() {
        let bound = oracle_heartbeat_bound(100, 6000);
        eprintln!("oracle T=100: {} ± {} (sequence stderr {})", bound.mean, bound.mc_stderr, bound.sequence_stderr);
        assert!(bound.mc_stderr < 0.003);
        assert!((bound.mean - 2.371).abs() < 3.0 * (bound.mc_stderr.powi(2) + 0.003f64.powi(2)).sqrt(), "{}", bound.mean);
        // never below log2 5 (up to Monte-Carlo error), for the mean and for each phase
        assert!(bound.mean > 5f64.log2() - 3.0 * bound.mc_stderr);
        assert!(bound.per_sequence.iter().all(|&v| v > 5f64.log2() - 3.0 * bound.mc_stderr * 5f64.sqrt()));
    }

    #[test]
    fn oracle_kernel_on_the_heartbeat_at_t_2000() {
        let bound = oracle_heartbeat_bound(2000, 400);
        eprintln!("oracle T=2000: {} ± {} (sequence stderr {})", bound.mean, bound.mc_stderr, bound.sequence_stderr);
        assert!(bound.mc_stderr < 0.003);
        assert!((bound.mean - 2.324).abs() < 3.0 * (bound.mc_stderr.powi(2) + 0.001f64.powi(2)).sqrt(), "{}", bound.mean);
        assert!(bound.mean > 5f64.log2() - 3.0 * bound.mc_stderr);
        assert!(bound.per_sequence.iter().all(|&v| v > 5f64.log2() - 3.0 * bound.mc_stderr * 5f64.sqrt()));
    }
}
