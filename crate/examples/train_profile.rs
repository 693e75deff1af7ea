//! Where the default model's training step goes, natively: `steps` steps of the default mlp
//! (L = 20, H = 96, 2 blocks, T = 2000, batch 256, importance objective) on heartbeat rows,
//! timed per phase (shard gradients, optimiser). Run under `perf record` for the kernels.
//!
//!   H=128 cargo run --release -p bernoulli-diffusion-core --example train_profile -- [steps] [batch]   (H: hidden width, default 96)

mod common;

use bernoulli_diffusion_core::config::{Architecture, Parameterisation};
use bernoulli_diffusion_core::model::{gradient_shard_rows, Model};
use bernoulli_diffusion_core::objective::ObjectiveKind;
use bernoulli_diffusion_core::rng::Rng;
use std::time::Instant;

const L: usize = 20;
const P: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: u64 = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(500);
    let rows: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(256);
    let hidden = std::env::var("H").map(|h| h.parse().unwrap()).unwrap_or(96);
    let config = common::sequence_config(L, 2000, Architecture::Mlp, Parameterisation::X0, hidden);
    let training = common::training_config(2e-3, steps, ObjectiveKind::Importance);
    let mut model = Model::new(config, training, 1).unwrap();
    let mut rng = Rng::new(5);
    let (mut gradient_seconds, mut apply_seconds) = (0.0, 0.0);
    let shards = gradient_shard_rows(rows);
    for step in 0..steps {
        let batch: Vec<u8> = (0..rows)
            .flat_map(|_| {
                let phase = rng.below(P as u32) as usize;
                (0..L).map(move |i| u8::from(i % P == phase))
            })
            .collect();
        let start = Instant::now();
        let loss = model.compute_gradient_of_shards(&batch, 0, step, &shards).unwrap();
        let middle = Instant::now();
        model.apply_own_gradient(loss, rows).unwrap();
        gradient_seconds += (middle - start).as_secs_f64();
        apply_seconds += middle.elapsed().as_secs_f64();
    }
    let per = |s: f64| 1e3 * s / steps as f64;
    println!(
        "{steps} steps of {rows} rows ({} shards): gradient {:.3} ms/step, optimiser {:.3} ms/step, {:.1} steps/s",
        shards.len(),
        per(gradient_seconds),
        per(apply_seconds),
        steps as f64 / (gradient_seconds + apply_seconds)
    );
}
