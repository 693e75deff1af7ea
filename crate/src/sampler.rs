//! The reverse chain (DESIGN.md §1): x_T ~ B(0.5), then x_{t-1} ~ B(f(x_t, t)) for t = T..1,
//! batched (all sequences of a chunk go through the network together at every step), with
//! optional recording of intermediate states and inpainting.
//!
//! Inpainting by clamping (`InpaintMode::Clamp`, paper §2.5, r(x) a delta on the known bits): a
//! pattern over {0, 1, 2 = unknown}; known bits are clamped at x_T and after every reverse step;
//! unknown bits follow the model. The default inpainting mode (twisted SMC) is in inpaint.rs.
//!
//! Randomness: sequence i draws from its own stream `Rng::for_example(seed, SAMPLE_STREAM, i)`
//! (i counted from `first_index`, so a worker drawing sequences a..b gets exactly those of one big call),
//! in this order: for j = 0..L: x_T[j] = bernoulli(0.5); then for t = T..1: for j = 0..L:
//! x_{t-1}[j] = bernoulli(f_j) (f rounded to f32). Every bit is drawn, known or not (known bits
//! are overwritten afterwards), so the result does not depend on how sequences are batched.

use crate::config::ModelConfig;
use crate::error::{CoreError, CoreResult};
use crate::kernel::reverse_probabilities;
use crate::network::ReverseNetwork;
use crate::rng::{Rng, Rng4};
use crate::schedule::Schedule;
use crate::simd::F4;

/// The `step` argument of `Rng::for_example` reserved for sampling streams.
pub const SAMPLE_STREAM: u64 = u64::MAX - 1;
/// Pattern value of an unknown bit.
pub const UNKNOWN: u8 = 2;
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

/// The t values recorded when recording every k steps: t = T, T-k, T-2k, ... and always t = 0.
pub fn frame_times(timesteps: usize, record_every: usize) -> Vec<u32> {
    if record_every == 0 {
        return Vec::new();
    }
    let mut times: Vec<u32> = (0..=timesteps).rev().step_by(record_every).map(|t| t as u32).collect();
    if *times.last().unwrap() != 0 {
        times.push(0);
    }
    times
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

/// Runs the reverse chain for n sequences, numbered first_index.. for their random streams.
/// `pattern` (optional) has L or n·L entries in {0, 1, 2 = unknown}; with L entries it applies to
/// every sequence.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    network: &mut dyn ReverseNetwork,
    config: &ModelConfig,
    schedule: &Schedule,
    first_index: u64,
    n: usize,
    seed: u64,
    record_every: usize,
    pattern: Option<&[u8]>,
) -> CoreResult<SampleResult> {
    let length = config.length;
    let t_max = schedule.timesteps;
    if let Some(p) = pattern {
        if p.len() != length && p.len() != n * length {
            return Err(CoreError::User(format!("pattern must have L = {length} or n·L = {} entries, got {}", n * length, p.len())));
        }
        if let Some(bad) = p.iter().find(|&&v| v > UNKNOWN) {
            return Err(CoreError::User(format!("pattern entries must be 0, 1 or 2 (unknown), got {bad}")));
        }
    }
    let times = frame_times(t_max, record_every);
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
        for t in (1..=t_max).rev() {
            for (x, &b) in input[..cells].iter_mut().zip(&state[..cells]) {
                *x = b as f32;
            }
            t_rows[..rows].fill(t as u32);
            network.forward(&input[..cells], &t_rows[..rows], &mut logits[..cells]);
            let table = schedule.posterior_table(t);
            // f(x_t, t) for every bit first (a loop without the generators' dependency chain)
            reverse_probabilities(config.parameterisation, table, t, &state[..cells], &logits[..cells], &mut probabilities[..cells]);
            draw_bits(&mut rngs, length, &probabilities[..cells], &mut state[..cells]);
            clamp(&mut state[..cells]);
            record(t - 1, &state);
        }
        result.bits[start * length..start * length + cells].copy_from_slice(&state[..cells]);
        start += rows;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_times_include_both_ends() {
        assert_eq!(frame_times(10, 0), Vec::<u32>::new());
        assert_eq!(frame_times(10, 1), (0..=10).rev().collect::<Vec<u32>>());
        assert_eq!(frame_times(10, 4), vec![10, 6, 2, 0]);
        assert_eq!(frame_times(10, 5), vec![10, 5, 0]);
        assert_eq!(frame_times(3, 100), vec![3, 0]);
    }
}
