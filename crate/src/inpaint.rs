//! Inpainting (DESIGN.md §1, "Conditioning / inpainting"): n completions of a pattern over
//! {0, 1, 2 = unknown}. K is the set of known positions, y their values. In every mode the
//! output never changes a known bit.
//!
//! `InpaintMode::Clamp` is the paper's §2.5 perturbed kernel with r a delta on the known bits:
//! they are set to y at x_T and after every reverse step, the unknown bits follow the model
//! (`sampler::sample` with a pattern). It is cheap but not the model's conditional: the network
//! reads a clamped bit at step t as a noisy x_t bit (right with probability 1 - c_t/2), i.e. as
//! weak evidence at high t, the unknown bits commit to something there, and nothing later pulls
//! them back. On the heartbeat (L = 20, P = 5) only 65–80% of its completions are valid
//! heartbeats (examples/inpaint_compare.rs).
//!
//! `InpaintMode::Smc { particles: M }` (the default) is twisted sequential Monte Carlo
//! (Wu et al. 2023, "Practical and asymptotically exact conditional sampling in diffusion
//! models"; the known-bit proposal as in Trippe et al. 2022, SMCDiff). It targets the model's own
//! conditional p_θ(x0 | x0_K = y): as M grows the completions' law tends to it. Per completion,
//! M particles run the chain together:
//!   x_T:      known bits ~ q(x_T | y) = B(y(1 - c_T) + c_T/2); unknown bits ~ B(0.5)
//!   proposal: unknown bits x_{t-1,i} ~ B(f_i(x_t, t))      (the model)
//!             known bits   x_{t-1,i} ~ q(x_{t-1,i} | x_{t,i}, x0_i = y_i)   (DESIGN.md's posterior;
//!             so the known bits run a reverse trajectory of the forward process from y, on the
//!             inputs the network was trained on, and equal y exactly at t = 0 since c_0 = 0)
//!   twist:    ψ_t(x_t) = prod_{i in K} P_θ(x0_i = y_i | x_t)   (the network's x0-prediction of
//!             the known bits; ψ_0 = 1 as x_{0,K} = y)
//!   weight:   w ← w · prod_{i in K} p_θ(x_{t-1,i} | x_t) / q(x_{t-1,i} | x_{t,i}, y_i) · ψ_{t-1}(x_{t-1}) / ψ_t(x_t)
//!   resample the M particles (systematic) when ESS = (Σ w)² / Σ w² < M/2; output one particle
//!   drawn ∝ w at t = 0.
//! The weight is the exact importance ratio of the target p_θ(x_{0:T}) ψ against the proposal; the
//! twist makes particles whose unknown bits disagree with y lose weight while t is still high.
//! P_θ(x0_i = 1 | x_t) is g_i = sigmoid(z_i) for the x0-parameterisation; for the direct one it is
//! the g implied by f = g·post(x0=1) + (1-g)·post(x0=0), g = (f - post(x0=0))/(post(x0=1) -
//! post(x0=0)), clipped to [ε, 1 - ε] (any positive twist keeps the target; this one tracks it).
//! M = 1 never resamples: the known bits follow the forward posterior, nothing is reweighted.
//! Cost: M times `sample`'s network work.
//!
//! Randomness (so results do not depend on batching and ranges equal one big call): completion i
//! draws from `Rng::for_example(seed, SAMPLE_STREAM, first_index + i)`, in this order: for each
//! particle, for j = 0..L: its x_T bit; then for t = T..1: one uniform if its particles are
//! resampled, then for each particle, for j = 0..L: its x_{t-1} bit; last, one uniform to pick
//! the output particle.

use crate::config::{ModelConfig, Parameterisation};
use crate::elementary::{exp, ln, softplus};
use crate::error::{CoreError, CoreResult};
use crate::kernel::{reverse_probabilities, reverse_probability, sigmoid_pair};
use crate::network::ReverseNetwork;
use crate::rng::Rng;
use crate::sampler::{self, SAMPLE_STREAM, UNKNOWN};
use crate::schedule::{ReverseStep, Schedule};

/// How known bits condition the reverse chain (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InpaintMode {
    /// The paper's §2.5: known bits clamped at x_T and after every reverse step.
    Clamp,
    /// Twisted sequential Monte Carlo with `particles` chains per completion.
    Smc { particles: usize },
}

/// Particles per completion of the default mode.
pub const DEFAULT_PARTICLES: usize = 8;
/// Largest number of particles per completion.
pub const MAX_PARTICLES: usize = 4096;
/// Clip of the direct parameterisation's implied x0-prediction in the twist.
const IMPLIED_X0_CLIP: f64 = 1e-3;
/// Particle rows per network call (at least one completion's particles).
const CHUNK_ROWS: usize = 1024;

impl Default for InpaintMode {
    fn default() -> Self {
        InpaintMode::Smc { particles: DEFAULT_PARTICLES }
    }
}

impl InpaintMode {
    /// The mode named "smc" (default when None) or "clamp"; `particles` only for "smc".
    pub fn from_name(name: Option<&str>, particles: Option<usize>) -> CoreResult<InpaintMode> {
        match (name.unwrap_or("smc"), particles) {
            ("smc", particles) => Ok(InpaintMode::Smc { particles: particles.unwrap_or(DEFAULT_PARTICLES) }),
            ("clamp", None) => Ok(InpaintMode::Clamp),
            ("clamp", Some(_)) => Err(CoreError::user("particles apply to the 'smc' inpainting mode only")),
            (other, _) => Err(CoreError::User(format!("unknown inpainting mode '{other}' (expected 'smc' or 'clamp')"))),
        }
    }
}

/// Completions first_index..first_index+n of a pattern with L or n·L entries in {0, 1, 2 = unknown}
/// (with L entries it applies to every completion). n × L bits.
#[allow(clippy::too_many_arguments)]
pub fn inpaint(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    first_index: u64,
    n: usize,
    seed: u64,
    steps: usize,
    pattern: &[u8],
    mode: InpaintMode,
) -> CoreResult<Vec<u8>> {
    let length = config.length;
    if pattern.len() != length && pattern.len() != n * length {
        return Err(CoreError::User(format!("pattern must have L = {length} or n·L = {} entries, got {}", n * length, pattern.len())));
    }
    if let Some(bad) = pattern.iter().find(|&&v| v > UNKNOWN) {
        return Err(CoreError::User(format!("pattern entries must be 0, 1 or 2 (unknown), got {bad}")));
    }
    match mode {
        InpaintMode::Clamp => sampler::sample(network, config, schedule, first_index, n, seed, steps, 0, Some(pattern)).map(|r| r.bits),
        InpaintMode::Smc { particles } => {
            if particles == 0 || particles > MAX_PARTICLES {
                return Err(CoreError::User(format!("particles must be in 1..={MAX_PARTICLES}, got {particles}")));
            }
            let chain = sampler::reverse_chain(config, schedule, steps)?;
            Ok(twisted_smc(network, config, &chain, schedule.c(schedule.timesteps), first_index, n, seed, pattern, particles))
        }
    }
}

/// ln P_θ(x0_i = y | x_t) of one known bit from its logit z (see the module comment).
#[inline]
fn log_x0_prediction(parameterisation: Parameterisation, step: &ReverseStep, xt: u8, z: f32, y: u8) -> f64 {
    let z = z as f64;
    if parameterisation == Parameterisation::X0 {
        // ln g = -softplus(-z), ln(1 - g) = -softplus(z)
        return if y == 1 { -softplus(-z) } else { -softplus(z) };
    }
    let f = sigmoid_pair(z).0;
    let implied = if step.to_data() {
        f // p(x_0 | x_1) is the x0-prediction itself
    } else {
        let table = &step.table;
        let (with_one, with_zero) = (table[1][xt as usize].q1, table[0][xt as usize].q1);
        let gap = with_one - with_zero;
        if gap > 1e-12 {
            (f - with_zero) / gap // g = (f - post(x0=0)) / (post(x0=1) - post(x0=0))
        } else {
            0.5 // c_{t-1} = 1: x_{t-1} says nothing about x0
        }
    };
    let g = implied.clamp(IMPLIED_X0_CLIP, 1.0 - IMPLIED_X0_CLIP);
    ln(if y == 1 { g } else { 1.0 - g })
}

/// Systematic resampling of D = ancestors.len() draws: ancestors[m] = the particle whose interval
/// of the cumulative weights holds (m + u)/D of the total (u uniform in [0, 1)); D = 1 is one
/// draw ∝ weights. A zero-weight particle is not chosen (unless rounding puts a target at the total).
fn systematic_ancestors(weights: &[f64], u: f64, ancestors: &mut [usize]) {
    let draws = ancestors.len();
    let total: f64 = weights.iter().sum();
    let (mut k, mut below) = (0, 0.0); // below = weights[0..k] summed
    for (m, ancestor) in ancestors.iter_mut().enumerate() {
        let target = (m as f64 + u) / draws as f64 * total;
        while k + 1 < weights.len() && below + weights[k] <= target {
            below += weights[k];
            k += 1;
        }
        *ancestor = k;
    }
}

#[allow(clippy::too_many_arguments)]
fn twisted_smc(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    chain: &[ReverseStep],
    c_last: f64,
    first_index: u64,
    n: usize,
    seed: u64,
    pattern: &[u8],
    particles: usize,
) -> Vec<u8> {
    let length = config.length;
    let parameterisation = config.parameterisation;
    let mut out = vec![0u8; n * length];
    let per_chunk = (CHUNK_ROWS / particles).max(1).min(n.max(1));
    let capacity = per_chunk * particles * length;
    let mut known = vec![UNKNOWN; per_chunk * length]; // pattern rows of the chunk's completions
    let mut state = vec![0u8; capacity];
    let mut input = vec![0.0f32; capacity];
    let mut logits = vec![0.0f32; capacity];
    let mut probabilities = vec![0.0f32; capacity];
    let mut t_rows = vec![0u32; per_chunk * particles];
    let mut log_weight = vec![0.0f64; per_chunk * particles];
    let mut log_twist = vec![0.0f64; per_chunk * particles]; // ln ψ_t of each particle's x_t
    let mut weights = vec![0.0f64; particles];
    let mut ancestors = vec![0usize; particles];
    let mut scratch_bits = vec![0u8; particles * length];
    let mut scratch_logits = vec![0.0f32; particles * length];
    let mut scratch_twist = vec![0.0f64; particles];
    let mut rngs: Vec<Rng> = Vec::with_capacity(per_chunk);

    let mut start = 0;
    while start < n {
        let completions = per_chunk.min(n - start);
        let rows = completions * particles;
        let cells = rows * length;
        rngs.clear();
        rngs.extend((start..start + completions).map(|i| Rng::for_example(seed, SAMPLE_STREAM, first_index + i as u64)));
        for c in 0..completions {
            let source = if pattern.len() == length { pattern } else { &pattern[(start + c) * length..(start + c + 1) * length] };
            known[c * length..(c + 1) * length].copy_from_slice(source);
        }
        // x_T: known bits ~ B(y(1 - c_T) + c_T/2), unknown bits ~ B(0.5)
        for row in 0..rows {
            let c = row / particles;
            for j in 0..length {
                let y = known[c * length + j];
                let p = if y == UNKNOWN { 0.5 } else { y as f64 * (1.0 - c_last) + c_last / 2.0 };
                state[row * length + j] = rngs[c].bernoulli(p as f32) as u8;
            }
        }
        log_weight[..rows].fill(0.0);
        log_twist[..rows].fill(0.0);
        for step in chain {
            for (x, &b) in input[..cells].iter_mut().zip(&state[..cells]) {
                *x = b as f32;
            }
            t_rows[..rows].fill(step.t as u32);
            network.forward(&input[..cells], &t_rows[..rows], &mut logits[..cells]);
            // w ← w · ψ_t(x_t) / ψ_{t+1}(x_{t+1})   (the proposal ratio was added at step t+1)
            for row in 0..rows {
                let c = row / particles;
                let mut twist = 0.0;
                for j in 0..length {
                    let y = known[c * length + j];
                    if y != UNKNOWN {
                        twist += log_x0_prediction(parameterisation, step, state[row * length + j], logits[row * length + j], y);
                    }
                }
                log_weight[row] += twist - log_twist[row];
                log_twist[row] = twist;
            }
            // resample a completion's particles when ESS = (Σ w)² / Σ w² < M/2
            for c in 0..completions {
                let group = c * particles..(c + 1) * particles;
                let max = log_weight[group.clone()].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                for (w, &lw) in weights.iter_mut().zip(&log_weight[group.clone()]) {
                    *w = exp(lw - max);
                }
                let sum: f64 = weights.iter().sum();
                let sum_of_squares: f64 = weights.iter().map(|w| w * w).sum();
                if sum * sum >= 0.5 * particles as f64 * sum_of_squares {
                    continue;
                }
                systematic_ancestors(&weights, rngs[c].uniform_f64(), &mut ancestors);
                let span = group.start * length..group.end * length;
                scratch_bits.copy_from_slice(&state[span.clone()]);
                scratch_logits.copy_from_slice(&logits[span]);
                scratch_twist.copy_from_slice(&log_twist[group.clone()]);
                for (m, &a) in ancestors.iter().enumerate() {
                    let row = group.start + m;
                    state[row * length..(row + 1) * length].copy_from_slice(&scratch_bits[a * length..(a + 1) * length]);
                    logits[row * length..(row + 1) * length].copy_from_slice(&scratch_logits[a * length..(a + 1) * length]);
                    log_twist[row] = scratch_twist[a];
                    log_weight[row] = 0.0;
                }
            }
            // proposal: unknown bits from the model, known bits from q(x_{t-1} | x_t, x0 = y)
            let table = &step.table;
            reverse_probabilities(parameterisation, table, step.to_data(), &state[..cells], &logits[..cells], &mut probabilities[..cells]);
            for row in 0..rows {
                let c = row / particles;
                let rng = &mut rngs[c];
                for j in 0..length {
                    let k = row * length + j;
                    let y = known[c * length + j];
                    if y == UNKNOWN {
                        state[k] = rng.bernoulli(probabilities[k]) as u8; // x_{t-1} ~ B(f(x_t, t))
                        continue;
                    }
                    let xt = state[k];
                    let posterior = &table[y as usize][xt as usize];
                    let bit = rng.bernoulli(posterior.q1 as f32) as u8; // x_{t-1} ~ q(x_{t-1} | x_t, x0 = y)
                                                                        // w ← w · p_θ(x_{t-1} | x_t) / q(x_{t-1} | x_t, y), the model's f in f64
                    let (model_one, model_zero) = reverse_probability(parameterisation, table, step.to_data(), xt, logits[k] as f64);
                    let (model, proposal) = if bit == 1 { (model_one, posterior.q1) } else { (model_zero, posterior.q0) };
                    log_weight[row] += ln(model.max(f64::MIN_POSITIVE)) - ln(proposal.max(f64::MIN_POSITIVE));
                    state[k] = bit;
                }
            }
        }
        // t = 0: ψ_0 = 1, so w ← w / ψ_1(x_1); output one particle drawn ∝ w
        for c in 0..completions {
            let group = c * particles..(c + 1) * particles;
            let max = group.clone().map(|row| log_weight[row] - log_twist[row]).fold(f64::NEG_INFINITY, f64::max);
            for (w, row) in weights.iter_mut().zip(group.clone()) {
                *w = exp(log_weight[row] - log_twist[row] - max);
            }
            systematic_ancestors(&weights, rngs[c].uniform_f64(), &mut ancestors[..1]);
            let row = group.start + ancestors[0];
            let target = &mut out[(start + c) * length..(start + c + 1) * length];
            target.copy_from_slice(&state[row * length..(row + 1) * length]);
            for (bit, &y) in target.iter_mut().zip(&known[c * length..(c + 1) * length]) {
                if y != UNKNOWN {
                    *bit = y; // already y (the posterior at t = 1 is a delta); kept exact regardless of rounding
                }
            }
        }
        start += completions;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Architecture, ScheduleKind};
    use crate::evaluate::exact_nll;
    use crate::network::oracle::OracleNetwork;
    use crate::objective::test_network::{small_config as config, LinearNetwork};

    #[test]
    fn systematic_resampling_picks_by_cumulative_weight() {
        let mut ancestors = [0usize; 4];
        systematic_ancestors(&[1.0, 1.0, 1.0, 1.0], 0.5, &mut ancestors);
        assert_eq!(ancestors, [0, 1, 2, 3]);
        // targets (m + 0.5)/4 · 4 = 0.5, 1.5, 2.5, 3.5 against cumulative 0 | 3 | 3 | 4 | 4
        systematic_ancestors(&[3.0, 0.0, 1.0, 0.0], 0.5, &mut ancestors);
        assert_eq!(ancestors, [0, 0, 0, 2]);
        systematic_ancestors(&[0.0, 0.0, 2.0, 0.0], 0.999, &mut ancestors);
        assert_eq!(ancestors, [2, 2, 2, 2]);
        // one draw: u·total
        systematic_ancestors(&[1.0, 2.0, 1.0], 0.3, &mut ancestors[..1]);
        assert_eq!(ancestors[0], 1); // 0.3·4 = 1.2 lies in [1, 3)
        systematic_ancestors(&[1.0, 2.0, 1.0], 0.2, &mut ancestors[..1]);
        assert_eq!(ancestors[0], 0);
    }

    #[test]
    fn modes_by_name() {
        assert_eq!(InpaintMode::from_name(None, None), Ok(InpaintMode::default()));
        assert_eq!(InpaintMode::from_name(Some("smc"), Some(3)), Ok(InpaintMode::Smc { particles: 3 }));
        assert_eq!(InpaintMode::from_name(Some("clamp"), None), Ok(InpaintMode::Clamp));
        assert!(InpaintMode::from_name(Some("clamp"), Some(3)).is_err());
        assert!(InpaintMode::from_name(Some("delta"), None).is_err());
    }

    /// Largest |empirical - exact| over the completions of `pattern`, with the exact conditional
    /// p_θ(x0 | x0_K = y) ∝ p_θ(x0) from the forward algorithm over all 2^L states.
    fn distance_to_exact_conditional(
        network: &mut dyn ReverseNetwork,
        config: &ModelConfig,
        schedule: &Schedule,
        pattern: &[u8],
        n: usize,
        mode: InpaintMode,
    ) -> f64 {
        let length = config.length;
        let states = 1usize << length;
        let all: Vec<u8> = (0..states).flat_map(|x| (0..length).map(move |j| ((x >> j) & 1) as u8)).collect();
        let exact = exact_nll(network, config, schedule, &all, states).unwrap();
        let consistent = |x: usize| (0..length).all(|j| pattern[j] == UNKNOWN || pattern[j] == ((x >> j) & 1) as u8);
        let mass: Vec<f64> = (0..states).map(|x| if consistent(x) { (-exact.nll_bits[x] * std::f64::consts::LN_2).exp() } else { 0.0 }).collect();
        let total: f64 = mass.iter().sum();
        eprintln!("p(pattern) = {total:.4}");
        let out = inpaint(network, config, schedule, 0, n, 5, sampler::FULL_CHAIN, pattern, mode).unwrap();
        let mut counts = vec![0usize; states];
        for row in out.chunks(length) {
            counts[(0..length).map(|j| (row[j] as usize) << j).sum::<usize>()] += 1;
        }
        (0..states).map(|x| (counts[x] as f64 / n as f64 - mass[x] / total).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn smc_completions_follow_the_models_exact_conditional() {
        // a tiny random model (L = 4, T = 5); the exact conditional of p_θ given the known bits is
        // a sum over all 16 states. With n = 20000 draws the sampling error of a probability has
        // sd <= 0.5/sqrt(n) ≈ 0.0035; SMC's bias shrinks like 1/M (measured for the rare pattern,
        // p_θ(x0_K = y) ≈ 0.007: 0.043, 0.014, 0.008 at M = 16, 64, 256). The rare pattern is
        // checked for the x0-parameterisation only: the direct one's implied twist is noisy at
        // high t and needs more particles there (0.06, 0.034, 0.021).
        let (length, timesteps, n) = (4, 5, 20_000);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let (likely, rare) = ([1, UNKNOWN, UNKNOWN, UNKNOWN], [UNKNOWN, 0, UNKNOWN, 1]);
        for (parameterisation, patterns) in [(Parameterisation::X0, vec![likely, rare]), (Parameterisation::Direct, vec![likely])] {
            let config = config(length, timesteps, parameterisation);
            let mut network = LinearNetwork::new(length, timesteps, 3, 1.0);
            for pattern in patterns {
                let smc = distance_to_exact_conditional(&mut network, &config, &schedule, &pattern, n, InpaintMode::Smc { particles: 256 });
                let clamp = distance_to_exact_conditional(&mut network, &config, &schedule, &pattern, n, InpaintMode::Clamp);
                eprintln!("{parameterisation:?} {pattern:?}: max |p̂ - p| with 256 particles {smc:.4}, clamp {clamp:.4}");
                assert!(smc < 0.02, "{parameterisation:?} {pattern:?}: {smc}");
                if pattern == rare {
                    assert!(clamp > 0.1, "clamping is not the conditional: {clamp}");
                    // the check has teeth
                }
            }
        }
    }

    #[test]
    fn strided_inpainting_keeps_the_known_bits_and_t_steps_are_the_full_chain() {
        let (length, timesteps) = (6, 10);
        let x0_config = config(length, timesteps, Parameterisation::X0);
        let direct = config(length, timesteps, Parameterisation::Direct);
        let config = x0_config;
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let mut network = LinearNetwork::new(length, timesteps, 3, 1.0);
        let pattern = [1, UNKNOWN, 0, UNKNOWN, UNKNOWN, 1];
        for mode in [InpaintMode::Smc { particles: 4 }, InpaintMode::Clamp] {
            let full = inpaint(&mut network, &config, &schedule, 0, 40, 2, sampler::FULL_CHAIN, &pattern, mode).unwrap();
            assert_eq!(inpaint(&mut network, &config, &schedule, 0, 40, 2, timesteps, &pattern, mode).unwrap(), full);
            let strided = inpaint(&mut network, &config, &schedule, 0, 40, 2, 3, &pattern, mode).unwrap();
            assert_ne!(strided, full);
            for row in strided.chunks(length) {
                assert!(row.iter().zip(&pattern).all(|(&b, &y)| y == UNKNOWN || b == y));
            }
        }
        assert!(inpaint(&mut network, &direct, &schedule, 0, 1, 2, 3, &pattern, InpaintMode::default()).is_err());
    }

    /// The 5 heartbeats of L = 20, P = 5, and n patterns with `fixed` known bits of a random one.
    fn heartbeats_and_patterns(n: usize, fixed: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
        let (length, period) = (20, 5);
        let data: Vec<u8> = (0..period).flat_map(|k| (0..length).map(move |i| (i % period == k) as u8)).collect();
        let mut rng = Rng::new(seed);
        let mut patterns = vec![UNKNOWN; n * length];
        for row in patterns.chunks_mut(length) {
            let phase = rng.below(period as u32) as usize;
            let mut placed = 0;
            while placed < fixed {
                let j = rng.below(length as u32) as usize;
                if row[j] == UNKNOWN {
                    row[j] = data[phase * length + j];
                    placed += 1;
                }
            }
        }
        (data, patterns)
    }

    /// Fraction of completions that are heartbeats (they agree with their pattern by construction).
    fn valid_fraction(data: &[u8], completions: &[u8], length: usize) -> f64 {
        let valid = completions.chunks(length).filter(|row| data.chunks(length).any(|h| h == *row)).count();
        valid as f64 / (completions.len() / length) as f64
    }

    #[test]
    fn default_mode_completes_heartbeat_patterns_consistently_with_the_oracle() {
        // the oracle kernel (exact per-bit x0-posterior) at T = 100 samples valid heartbeats
        // freely; clamping 2 known bits leaves ~30% of completions invalid (measured 71%
        // valid), the default mode completes nearly all (measured 100%)
        let (length, timesteps, n) = (20, 100, 300);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let (data, patterns) = heartbeats_and_patterns(n, 2, 11);
        let mut oracle = OracleNetwork::new(&schedule, length, &data);
        let config = config(length, timesteps, OracleNetwork::PARAMETERISATION);
        let completions = |oracle: &mut OracleNetwork, mode| inpaint(oracle, &config, &schedule, 0, n, 3, sampler::FULL_CHAIN, &patterns, mode).unwrap();
        let smc = valid_fraction(&data, &completions(&mut oracle, InpaintMode::default()), length);
        let clamp = valid_fraction(&data, &completions(&mut oracle, InpaintMode::Clamp), length);
        eprintln!("oracle, 2 known bits: valid completions {smc:.3} (default), {clamp:.3} (clamp)");
        assert!(smc >= 0.95, "default mode: {smc}");
        assert!(clamp < 0.9, "clamping: {clamp}");
        // the conditional is uniform over the consistent phases: with bits 0 and 1 known to be 0,
        // phases 2, 3 and 4 (100 expected each of 300, sd 8.2)
        let mut pattern = vec![UNKNOWN; length];
        pattern[0] = 0;
        pattern[1] = 0;
        let out = inpaint(&mut oracle, &config, &schedule, 0, n, 4, sampler::FULL_CHAIN, &pattern, InpaintMode::default()).unwrap();
        let mut phases = [0usize; 6];
        for row in out.chunks(length) {
            phases[data.chunks(length).position(|h| h == row).unwrap_or(5)] += 1;
        }
        eprintln!("phases (5 = invalid): {phases:?}");
        assert_eq!(phases[0] + phases[1], 0);
        assert!(phases[2..5].iter().all(|&k| (70..=130).contains(&k)), "{phases:?}");
    }

    #[test]
    fn default_mode_completes_heartbeat_patterns_consistently_with_a_trained_model() {
        use crate::model::Model;
        use crate::optimiser::{LrSchedule, TrainingConfig};
        let (length, timesteps, n, steps, rows) = (20, 50, 300, 1500, 32);
        let (data, patterns) = heartbeats_and_patterns(n, 2, 12);
        let config =
            ModelConfig { hidden: 64, layers: 2, time_embedding: 16, architecture: Architecture::Mlp, ..config(length, timesteps, Parameterisation::X0) };
        let training =
            TrainingConfig { lr: 3e-3, lr_schedule: LrSchedule::Cosine, warmup_steps: 50, total_steps: steps, ema_decay: 0.99, ..Default::default() };
        let mut model = Model::new(config, training, 1).unwrap();
        let mut rng = Rng::new(2);
        for _ in 0..steps {
            let batch: Vec<u8> = (0..rows).flat_map(|_| data.chunks(length).nth(rng.below(5) as usize).unwrap().to_vec()).collect();
            model.train_step(&batch, rows).unwrap();
        }
        let free = valid_fraction(&data, &model.sample(n, 1, 0).unwrap().bits, length);
        let smc = valid_fraction(&data, &model.inpaint(&patterns, n, 3, InpaintMode::default()).unwrap(), length);
        let clamp = valid_fraction(&data, &model.inpaint(&patterns, n, 3, InpaintMode::Clamp).unwrap(), length);
        eprintln!("trained mlp, T = {timesteps}: valid samples {free:.3}; 2 known bits: valid completions {smc:.3} (default), {clamp:.3} (clamp)");
        assert!(free >= 0.95, "the model did not learn the heartbeat: {free}");
        assert!(smc >= 0.9, "default mode: {smc}");
        assert!(clamp < 0.9, "clamping: {clamp}");
    }
}
