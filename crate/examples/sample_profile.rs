//! Where sampling time goes, natively: n sequences of the paper network (L = 20, H = 50, 2 hidden
//! layers, T = 2000, direct parameterisation; the bench's sample_b1024 case) through the whole
//! reverse chain, with the rate in sequence-steps/s. Run under `perf record` for the split between
//! the network, the reverse probabilities and the Bernoulli draws.
//!
//!   cargo run --release -p bernoulli-diffusion-core --example sample_profile -- [n] [T]

mod common;

use bernoulli_diffusion_core::config::{Architecture, Parameterisation};
use bernoulli_diffusion_core::model::Model;
use bernoulli_diffusion_core::objective::ObjectiveKind;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(1024);
    let timesteps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(2000);
    let config = common::sequence_config(20, timesteps, Architecture::Paper, Parameterisation::Direct, 50);
    // sampling reads only the (initial) weights; the optimiser settings do not matter
    let training = common::training_config(1e-3, 1000, ObjectiveKind::Full);
    let mut model = Model::new(config, training, 1).unwrap();
    let start = Instant::now();
    let result = model.sample(n, 7, 0).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let ones = result.bits.iter().filter(|&&b| b == 1).count();
    println!("{n} sequences × {timesteps} steps in {seconds:.2} s: {:.2}M sequence-steps/s ({ones} ones drawn)", (n * timesteps) as f64 / seconds / 1e6);
}
