//! Inpainting on the heartbeat (L = 20, P = 5): the fraction of completions that are valid
//! heartbeats (they agree with the known bits by construction), for 1, 2 and 3 known bits taken
//! from a random heartbeat at random positions, 400 completions each; and the phases drawn for
//! the pattern "bits 0 and 1 are 0" (phases 2, 3, 4 equally likely; column 5 = invalid).
//! Models: the oracle kernel and an mlp (x0-parameterisation) trained here, or the paper's
//! architecture (direct parameterisation) with `paper` as the third argument.
//!
//!   cargo run --release -p bernoulli-diffusion-core --example inpaint_compare -- [T] [train_steps] [mlp|paper]
//!
//! Modes: the crate's `InpaintMode`s (Clamp; Smc with M particles, M = 1 being "known bits follow
//! the forward posterior q(x_{t-1} | x_t, y)") and two alternatives tried and rejected, written
//! out here: `Replace` (known bits of x_{t-1} drawn afresh from q(x_{t-1} | y) =
//! B(y(1 - c_{t-1}) + c_{t-1}/2) at every step) and `Repaint(u)` (Lugmayr et al. 2022: each step
//! done u times, going back by x_t ~ q(x_t | x_{t-1}) in between; known bits from the posterior).

mod common;

use bernoulli_diffusion_core::config::{Architecture, ModelConfig, Parameterisation, ScheduleKind};
use bernoulli_diffusion_core::evaluate::TimeSampling;
use bernoulli_diffusion_core::inpaint::{inpaint, InpaintMode};
use bernoulli_diffusion_core::kernel::reverse_probabilities;
use bernoulli_diffusion_core::model::Model;
use bernoulli_diffusion_core::network::oracle::OracleNetwork;
use bernoulli_diffusion_core::network::{build_network, ReverseNetwork};
use bernoulli_diffusion_core::objective::ObjectiveKind;
use bernoulli_diffusion_core::rng::Rng;
use bernoulli_diffusion_core::sampler::UNKNOWN;
use bernoulli_diffusion_core::schedule::Schedule;

const L: usize = 20;
const P: usize = 5;

fn heartbeats() -> Vec<u8> {
    (0..P).flat_map(|k| (0..L).map(move |i| (i % P == k) as u8)).collect()
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Crate(InpaintMode),
    Replace,
    Repaint(usize),
}

/// The two rejected alternatives (one pattern row per completion).
fn alternative(net: &mut dyn ReverseNetwork, config: &ModelConfig, schedule: &Schedule, patterns: &[u8], seed: u64, method: Method) -> Vec<u8> {
    let n = patterns.len() / L;
    let mut rngs: Vec<Rng> = (0..n).map(|i| Rng::for_example(seed, 77, i as u64)).collect();
    let c_last = schedule.c(schedule.timesteps);
    let mut state: Vec<u8> = (0..n * L)
        .map(|k| {
            let y = patterns[k];
            let p = if y == UNKNOWN { 0.5 } else { y as f64 * (1.0 - c_last) + c_last / 2.0 };
            rngs[k / L].bernoulli(p as f32) as u8
        })
        .collect();
    let (mut input, mut logits, mut f) = (vec![0.0f32; n * L], vec![0.0f32; n * L], vec![0.0f32; n * L]);
    for t in (1..=schedule.timesteps).rev() {
        let repeats = match method {
            Method::Repaint(u) if t > 1 => u,
            _ => 1,
        };
        let table = schedule.posterior_table(t);
        let c_prev = schedule.c(t - 1);
        for repeat in 0..repeats {
            for (x, &b) in input.iter_mut().zip(&state) {
                *x = b as f32;
            }
            net.forward(&input, &vec![t as u32; n], &mut logits);
            reverse_probabilities(config.parameterisation, table, t == 1, &state, &logits, &mut f);
            for k in 0..n * L {
                let p = match (patterns[k], method) {
                    (UNKNOWN, _) => f[k] as f64,
                    (y, Method::Replace) => y as f64 * (1.0 - c_prev) + c_prev / 2.0, // q(x_{t-1} | y)
                    (y, _) => table[y as usize][state[k] as usize].q1,                // q(x_{t-1} | x_t, y)
                };
                state[k] = rngs[k / L].bernoulli(p as f32) as u8;
            }
            if repeat + 1 < repeats {
                let b = schedule.b(t);
                for k in 0..n * L {
                    let p = state[k] as f64 * (1.0 - b) + b / 2.0; // x_t ~ q(x_t | x_{t-1})
                    state[k] = rngs[k / L].bernoulli(p as f32) as u8;
                }
            }
        }
    }
    state
}

fn complete(net: &mut dyn ReverseNetwork, config: &ModelConfig, schedule: &Schedule, patterns: &[u8], seed: u64, method: Method) -> Vec<u8> {
    match method {
        Method::Crate(mode) => inpaint(net, config, schedule, 0, patterns.len() / L, seed, 0, patterns, mode).unwrap(),
        _ => alternative(net, config, schedule, patterns, seed, method),
    }
}

/// n patterns with `fixed` known bits of a random heartbeat.
fn patterns(n: usize, fixed: usize, seed: u64) -> Vec<u8> {
    let data = heartbeats();
    let mut rng = Rng::new(seed);
    let mut out = vec![UNKNOWN; n * L];
    for row in out.chunks_mut(L) {
        let phase = rng.below(P as u32) as usize;
        let mut placed = 0;
        while placed < fixed {
            let j = rng.below(L as u32) as usize;
            if row[j] == UNKNOWN {
                row[j] = data[phase * L + j];
                placed += 1;
            }
        }
    }
    out
}

fn phase(row: &[u8]) -> usize {
    heartbeats().chunks(L).position(|h| h == row).unwrap_or(P)
}

fn report(name: &str, net: &mut dyn ReverseNetwork, config: &ModelConfig, schedule: &Schedule, n: usize) {
    let methods = [
        Method::Crate(InpaintMode::Clamp),
        Method::Replace,
        Method::Repaint(5),
        Method::Crate(InpaintMode::Smc { particles: 1 }),
        Method::Crate(InpaintMode::Smc { particles: 2 }),
        Method::Crate(InpaintMode::Smc { particles: 4 }),
        Method::Crate(InpaintMode::Smc { particles: 8 }),
        Method::Crate(InpaintMode::Smc { particles: 16 }),
    ];
    let free = complete(net, config, schedule, &vec![UNKNOWN; n * L], 1, Method::Crate(InpaintMode::Clamp));
    println!("{name}: valid free samples {}/{n}", free.chunks(L).filter(|r| phase(r) < P).count());
    println!("  {:<28} | 1 known bit | 2 known bits | 3 known bits | phases, bits 0,1 = 0 | seconds", "mode");
    for method in methods {
        let start = std::time::Instant::now();
        let name = match method {
            Method::Crate(InpaintMode::Smc { particles }) => format!("smc, {particles} particles"),
            Method::Crate(InpaintMode::Clamp) => "clamp (paper §2.5)".into(),
            Method::Replace => "replace from q(x_t-1 | y)".into(),
            Method::Repaint(u) => format!("repaint, {u} repeats"),
        };
        let mut line = format!("  {name:<28}");
        for fixed in 1..=3 {
            let pats = patterns(n, fixed, 100 + fixed as u64);
            let out = complete(net, config, schedule, &pats, 7 + fixed as u64, method);
            for (k, (&b, &y)) in out.iter().zip(&pats).enumerate() {
                assert!(y == UNKNOWN || y == b, "{method:?} changed known bit {k}");
            }
            let valid = out.chunks(L).filter(|r| phase(r) < P).count();
            line += &format!(" | {:>10.1}%", 100.0 * valid as f64 / n as f64);
        }
        let mut pattern = [UNKNOWN; L];
        pattern[0] = 0;
        pattern[1] = 0;
        let mut counts = [0usize; P + 1];
        for row in complete(net, config, schedule, &pattern.repeat(n), 3, method).chunks(L) {
            counts[phase(row)] += 1;
        }
        println!("{line} | {counts:?} | {:.1}", start.elapsed().as_secs_f64());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let timesteps: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(100);
    let steps: u64 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(3000);
    let paper = args.get(3).map(|s| s == "paper").unwrap_or(false);
    let n = 400;
    let schedule = Schedule::new(ScheduleKind::Paper, timesteps);
    let data = heartbeats();

    let (architecture, parameterisation, hidden, lr) =
        if paper { (Architecture::Paper, Parameterisation::Direct, 50, 1e-2) } else { (Architecture::Mlp, Parameterisation::X0, 128, 2e-3) };
    let config = common::sequence_config(L, timesteps, architecture, parameterisation, hidden);
    if !paper {
        let mut oracle = OracleNetwork::new(&schedule, L, &data);
        report(&format!("oracle kernel, T = {timesteps}"), &mut oracle, &config, &schedule, n);
    }
    let training = common::training_config(lr, steps, ObjectiveKind::Sampled);
    let mut model = Model::new(config.clone(), training, 1).unwrap();
    let rows = 64;
    let mut rng = Rng::new(5);
    for _ in 0..steps {
        let batch: Vec<u8> = (0..rows).flat_map(|_| data.chunks(L).nth(rng.below(P as u32) as usize).unwrap().to_vec()).collect();
        model.train_step(&batch, rows).unwrap();
    }
    let bound = model.evaluate_bound(&data, P, 20, TimeSampling::Full, 3).unwrap();
    let mut net = build_network(&config, &mut Rng::new(0));
    net.parameters_mut().copy_from_slice(model.ema_parameters().unwrap());
    let name = format!("{architecture:?} ({parameterisation:?}), T = {timesteps}, {steps} steps, bound {:.3} ± {:.3} bits", bound.mean, bound.mc_stderr);
    report(&name, net.as_mut(), &config, &schedule, n);
}
