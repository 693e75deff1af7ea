//! The reverse chain (DESIGN.md §1): x_T ~ B(0.5), then x_{t-1} ~ B(f(x_t, t)) for t = T..1,
//! batched (all sequences of a chunk go through the network together at every step), with
//! optional recording of intermediate states and inpainting.
//!
//! Inpainting by clamping (`InpaintMode::Clamp`, paper §2.5, r(x) a delta on the known bits): a
//! pattern over {0, 1, 2 = unknown}; known bits are clamped at x_T and after every reverse step;
//! unknown bits follow the model. The default inpainting mode (twisted SMC) is in inpaint.rs.
//!
//! Fewer steps (`steps` = K < T, x0 parameterisation only): the chain jumps t_k -> t_{k-1} with
//! t_k = floor(k·T/K), drawing x_s ~ B(g·q(x_s=1 | x_t, x0=1) + (1-g)·q(x_s=1 | x_t, x0=0))
//! (`Schedule::reverse_steps`); K network calls instead of T, at some cost in quality.
//!
//! Randomness: sequence i draws from its own stream `Rng::for_example(seed, SAMPLE_STREAM, i)`
//! (i counted from `first_index`, so a worker drawing sequences a..b gets exactly those of one big call),
//! in this order: for j = 0..L: x_T[j] = bernoulli(0.5); then for each step t -> s of the
//! chain (t = T..1 for the full one): for j = 0..L: x_s[j] = bernoulli(f_j) (f rounded to f32). Every bit is drawn, known or not (known bits
//! are overwritten afterwards), so the result does not depend on how sequences are batched.

use crate::config::{ModelConfig, Parameterisation};
use crate::error::{CoreError, CoreResult};
use crate::kernel::reverse_probabilities;
use crate::network::ReverseNetwork;
use crate::rng::{Rng, Rng4};
use crate::schedule::{ReverseStep, Schedule};
use crate::simd::F4;

/// The `step` argument of `Rng::for_example` reserved for sampling streams.
pub const SAMPLE_STREAM: u64 = u64::MAX - 1;
/// Pattern value of an unknown bit.
pub const UNKNOWN: u8 = 2;
/// `steps` of a chain that makes every one of the T steps.
pub const FULL_CHAIN: usize = 0;
/// Sequences per network call.
const CHUNK_ROWS: usize = 1024;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleResult {
    /// x_0 of every sequence, n × L.
    pub bits: Vec<u8>,
    /// Recorded states, frame-major: frames[f][i][j] at frames[(f·n + i)·L + j].
    pub frames: Vec<u8>,
    /// The t of each frame (T first, 0 last).
    pub frame_times: Vec<u32>,
}

/// The t values recorded when recording every k steps of a chain visiting `visits` (T first, 0
/// last): every k-th visited t from T, and always t = 0. The full chain gives T, T-k, T-2k, ..., 0.
pub fn frame_times(visits: &[usize], record_every: usize) -> Vec<u32> {
    if record_every == 0 || visits.is_empty() {
        return Vec::new();
    }
    let mut times: Vec<u32> = visits.iter().step_by(record_every).map(|&t| t as u32).collect();
    if *times.last().unwrap() != 0 {
        times.push(0);
    }
    times
}

/// The t values a reverse chain visits: T, then the s of every step (0 last).
pub fn chain_visits(chain: &[ReverseStep]) -> Vec<usize> {
    chain.first().map(|first| first.t).into_iter().chain(chain.iter().map(|step| step.s)).collect()
}

/// The reverse chain of `steps` network calls (0: all T), refused for the direct
/// parameterisation (its network predicts x_{t-1} itself, so it cannot jump).
pub fn reverse_chain(config: &ModelConfig, schedule: &Schedule, steps: usize) -> CoreResult<Vec<ReverseStep>> {
    let strided = steps != 0 && steps < schedule.timesteps;
    if strided && config.parameterisation == Parameterisation::Direct {
        return Err(CoreError::User(format!(
            "sampling in {steps} of T = {} steps needs the x0 parameterisation (a direct model predicts x_(t-1) itself)",
            schedule.timesteps
        )));
    }
    Ok(schedule.reverse_steps(steps))
}

/// x_{t-1} ~ B(f(x_t, t)): bit j of row r is rngs[r].bernoulli(probabilities[r·L + j]), bits of a
/// row in order j = 0..L. Four rows draw at once (`Rng4`, the same numbers as one by one).
fn draw_bits(rngs: &mut [Rng], length: usize, probabilities: &[f32], state: &mut [u8]) {
    let rows = rngs.len();
    let mut r = 0;
    while r + 4 <= rows {
        let mut lanes = Rng4::load(&rngs[r..r + 4]);
        let at = |i: usize, j: usize| (r + i) * length + j;
        for j in 0..length {
            let f = F4::new([probabilities[at(0, j)], probabilities[at(1, j)], probabilities[at(2, j)], probabilities[at(3, j)]]);
            let bits = lanes.bernoulli(f).to_bits();
            for (i, &bit) in bits.iter().enumerate() {
                state[at(i, j)] = bit;
            }
        }
        lanes.store(&mut rngs[r..r + 4]);
        r += 4;
    }
    for (r, rng) in rngs.iter_mut().enumerate().skip(r) {
        let span = r * length..(r + 1) * length;
        for (x, &f) in state[span.clone()].iter_mut().zip(&probabilities[span]) {
            *x = rng.bernoulli(f) as u8;
        }
    }
}

/// Runs the reverse chain (`steps` network calls, 0: all T) for n sequences, numbered
/// first_index.. for their random streams. `pattern` (optional) has L or n·L entries in {0, 1, 2 = unknown}; with L entries it applies to
/// every sequence.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    first_index: u64,
    n: usize,
    seed: u64,
    steps: usize,
    record_every: usize,
    pattern: Option<&[u8]>,
) -> CoreResult<SampleResult> {
    let length = config.length;
    let chain = reverse_chain(config, schedule, steps)?;
    let t_max = schedule.timesteps;
    if let Some(p) = pattern {
        if p.len() != length && p.len() != n * length {
            return Err(CoreError::User(format!("pattern must have L = {length} or n·L = {} entries, got {}", n * length, p.len())));
        }
        if let Some(bad) = p.iter().find(|&&v| v > UNKNOWN) {
            return Err(CoreError::User(format!("pattern entries must be 0, 1 or 2 (unknown), got {bad}")));
        }
    }
    let times = frame_times(&chain_visits(&chain), record_every);
    let frame_index = |t: usize| times.iter().position(|&ft| ft as usize == t);
    let mut result = SampleResult { bits: vec![0; n * length], frames: vec![0; times.len() * n * length], frame_times: times.clone() };

    let chunk = CHUNK_ROWS.min(n.max(1));
    let mut state = vec![0u8; chunk * length];
    let mut input = vec![0.0f32; chunk * length];
    let mut logits = vec![0.0f32; chunk * length];
    let mut probabilities = vec![0.0f32; chunk * length];
    let mut t_rows = vec![0u32; chunk];
    let mut rngs: Vec<Rng> = Vec::with_capacity(chunk);
    let mut start = 0;
    while start < n {
        let rows = chunk.min(n - start);
        let cells = rows * length;
        rngs.clear();
        rngs.extend((start..start + rows).map(|i| Rng::for_example(seed, SAMPLE_STREAM, first_index + i as u64)));
        // pattern entry of bit j of chunk row r
        let known = |r: usize, j: usize| -> Option<u8> {
            let p = pattern?;
            let v = if p.len() == length { p[j] } else { p[(start + r) * length + j] };
            (v != UNKNOWN).then_some(v)
        };
        let clamp = |state: &mut [u8]| {
            if pattern.is_some() {
                for r in 0..rows {
                    for j in 0..length {
                        if let Some(v) = known(r, j) {
                            state[r * length + j] = v;
                        }
                    }
                }
            }
        };
        // x_T ~ B(0.5)
        for r in 0..rows {
            for j in 0..length {
                state[r * length + j] = rngs[r].bernoulli(0.5) as u8;
            }
        }
        clamp(&mut state[..cells]);
        let mut record = |t: usize, state: &[u8]| {
            if let Some(f) = frame_index(t) {
                let offset = (f * n + start) * length;
                result.frames[offset..offset + cells].copy_from_slice(&state[..cells]);
            }
        };
        record(t_max, &state);
        for step in &chain {
            for (x, &b) in input[..cells].iter_mut().zip(&state[..cells]) {
                *x = b as f32;
            }
            t_rows[..rows].fill(step.t as u32);
            network.forward(&input[..cells], &t_rows[..rows], &mut logits[..cells]);
            // p(x_s = 1 | x_t) for every bit first (a loop without the generators' dependency chain)
            reverse_probabilities(config.parameterisation, &step.table, step.to_data(), &state[..cells], &logits[..cells], &mut probabilities[..cells]);
            draw_bits(&mut rngs, length, &probabilities[..cells], &mut state[..cells]);
            clamp(&mut state[..cells]);
            record(step.s, &state);
        }
        result.bits[start * length..start * length + cells].copy_from_slice(&state[..cells]);
        start += rows;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Architecture, ScheduleKind};
    use crate::evaluate::exact_nll;
    use crate::kernel::reverse_probability;
    use crate::objective::test_network::LinearNetwork;

    fn config(length: usize, timesteps: usize, parameterisation: Parameterisation) -> ModelConfig {
        ModelConfig { length, timesteps, schedule: ScheduleKind::Paper, architecture: Architecture::Mlp, parameterisation, ..ModelConfig::default() }
    }

    /// The exact law of x_0 under a chain, by enumeration: x_T uniform, then
    /// p(x_s | x_t) = prod_j f_j^{x_s,j} (1 - f_j)^{1 - x_s,j} with f_j = g_j·q(1 | x_t,j, 1) + (1-g_j)·q(1 | x_t,j, 0).
    fn exact_law(network: &mut dyn ReverseNetwork, length: usize, chain: &[ReverseStep]) -> Vec<f64> {
        let states = 1usize << length;
        let bits = |x: usize| (0..length).map(move |j| ((x >> j) & 1) as u8);
        let mut law = vec![1.0 / states as f64; states];
        for step in chain {
            let mut next = vec![0.0f64; states];
            for (xt, &mass) in law.iter().enumerate() {
                let input: Vec<f32> = bits(xt).map(|b| b as f32).collect();
                let mut logits = vec![0.0f32; length];
                network.forward(&input, &[step.t as u32], &mut logits);
                let f: Vec<f64> =
                    bits(xt).zip(&logits).map(|(b, &z)| reverse_probability(Parameterisation::X0, &step.table, step.to_data(), b, z as f64).0).collect();
                for (xs, target) in next.iter_mut().enumerate() {
                    *target += mass * bits(xs).zip(&f).map(|(b, &p)| if b == 1 { p } else { 1.0 - p }).product::<f64>();
                }
            }
            law = next;
        }
        law
    }

    #[test]
    fn a_chain_of_t_steps_is_the_full_chain_bit_for_bit() {
        let (length, timesteps) = (5, 9);
        let config = config(length, timesteps, Parameterisation::X0);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let mut network = LinearNetwork::new(length, timesteps, 3, 1.0);
        let full = sample(&mut network, &config, &schedule, 0, 50, 7, FULL_CHAIN, 2, None).unwrap();
        for steps in [timesteps, timesteps + 5] {
            assert_eq!(sample(&mut network, &config, &schedule, 0, 50, 7, steps, 2, None).unwrap(), full);
        }
        assert_ne!(sample(&mut network, &config, &schedule, 0, 50, 7, 4, 0, None).unwrap().bits, full.bits);
    }

    #[test]
    fn strided_samples_follow_the_strided_chains_exact_law() {
        // L = 3, T = 12, a random linear model: the enumerated law of the full chain is the
        // forward algorithm's p_θ(x0) (checks the enumeration), and 20,000 samples of the 3-step
        // and 1-step chains match their own enumerated laws (sd of a probability <= 0.0036).
        let (length, timesteps, n) = (3, 12, 20_000);
        let config = config(length, timesteps, Parameterisation::X0);
        let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
        let mut network = LinearNetwork::new(length, timesteps, 3, 1.0);
        let states = 1usize << length;
        let all: Vec<u8> = (0..states).flat_map(|x| (0..length).map(move |j| ((x >> j) & 1) as u8)).collect();
        let exact = exact_nll(&mut network, &config, &schedule, &all, states).unwrap();
        let full = exact_law(&mut network, length, &schedule.reverse_steps(FULL_CHAIN));
        for x in 0..states {
            assert!((full[x] - (-exact.nll_bits[x] * std::f64::consts::LN_2).exp()).abs() < 1e-9, "x={x}");
        }
        let mut laws = Vec::new();
        for steps in [3, 1] {
            let law = exact_law(&mut network, length, &schedule.reverse_steps(steps));
            let drawn = sample(&mut network, &config, &schedule, 0, n, 3, steps, 0, None).unwrap().bits;
            let mut counts = vec![0usize; states];
            for row in drawn.chunks(length) {
                counts[(0..length).map(|j| (row[j] as usize) << j).sum::<usize>()] += 1;
            }
            let distance = (0..states).map(|x| (counts[x] as f64 / n as f64 - law[x]).abs()).fold(0.0, f64::max);
            assert!(distance < 0.015, "steps {steps}: max |p̂ - p| = {distance}");
            laws.push(law);
        }
        // the check has teeth: the strided laws differ from the full chain's
        let gap = |law: &[f64]| (0..states).map(|x| (law[x] - full[x]).abs()).fold(0.0, f64::max);
        assert!(gap(&laws[1]) > 0.03, "1 step vs full: {}", gap(&laws[1]));
    }

    #[test]
    fn the_direct_parameterisation_refuses_a_strided_chain() {
        let config = config(4, 10, Parameterisation::Direct);
        let schedule = Schedule::new(ScheduleKind::Paper, 10);
        let mut network = LinearNetwork::new(4, 10, 3, 1.0);
        assert!(matches!(sample(&mut network, &config, &schedule, 0, 2, 1, 5, 0, None), Err(CoreError::User(_))));
        assert!(sample(&mut network, &config, &schedule, 0, 2, 1, 10, 0, None).is_ok());
    }

    #[test]
    fn frame_times_include_both_ends() {
        let full = |t_max: usize| chain_visits(&Schedule::new(crate::config::ScheduleKind::Paper, t_max).reverse_steps(0));
        assert_eq!(frame_times(&full(10), 0), Vec::<u32>::new());
        assert_eq!(frame_times(&full(10), 1), (0..=10).rev().collect::<Vec<u32>>());
        assert_eq!(frame_times(&full(10), 4), vec![10, 6, 2, 0]);
        assert_eq!(frame_times(&full(10), 5), vec![10, 5, 0]);
        assert_eq!(frame_times(&full(3), 100), vec![3, 0]);
        // a strided chain of 4 steps on T = 10 visits 10, 7, 5, 2, 0
        let strided = chain_visits(&Schedule::new(crate::config::ScheduleKind::Paper, 10).reverse_steps(4));
        assert_eq!(strided, vec![10, 7, 5, 2, 0]);
        assert_eq!(frame_times(&strided, 3), vec![10, 2, 0]);
    }
}
