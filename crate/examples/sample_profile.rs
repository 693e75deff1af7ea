//! Where sampling time goes, natively: n sequences of the paper network (L = 20, H = 50, 2 hidden
//! layers, T = 2000, direct parameterisation; the bench's sample_b1024 case) through the whole
//! reverse chain, with the rate in sequence-steps/s. Run under `perf record` for the split between
//! the network, the reverse probabilities and the Bernoulli draws.
//!
//!   cargo run --release -p bernoulli-diffusion-core --example sample_profile -- [n] [T]

use bernoulli_diffusion_core::config::{Architecture, ModelConfig, Padding, Parameterisation, ScheduleKind};
use bernoulli_diffusion_core::model::Model;
use bernoulli_diffusion_core::objective::ObjectiveKind;
use bernoulli_diffusion_core::optimiser::{LrSchedule, TrainingConfig};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(1024);
    let timesteps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(2000);
    let config = ModelConfig {
        length: 20,
        timesteps,
        schedule: ScheduleKind::Paper,
        architecture: Architecture::Paper,
        parameterisation: Parameterisation::Direct,
        hidden: 50,
        layers: 2,
        time_embedding: 32,
        kernel: 0,
        shape: None,
        channels: 32,
        levels: 0,
        blocks: 1,
        padding: Padding::Zero,
        position_embedding: None,
        dropout: 0.0,
    };
    // sampling reads only the (initial) weights; the optimiser settings do not matter
    let training = TrainingConfig {
        lr: 1e-3,
        lr_schedule: LrSchedule::Constant,
        warmup_steps: 0,
        total_steps: 1,
        min_lr_ratio: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        clip_norm: 1.0,
        ema_decay: 0.0,
        objective: ObjectiveKind::Full,
    };
    let mut model = Model::new(config, training, 1).unwrap();
    let start = Instant::now();
    let result = model.sample(n, 7, 0).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let ones = result.bits.iter().filter(|&&b| b == 1).count();
    println!("{n} sequences × {timesteps} steps in {seconds:.2} s: {:.2}M sequence-steps/s ({ones} ones drawn)", (n * timesteps) as f64 / seconds / 1e6);
}
