//! Configs shared by the examples (the library has no Default for them on purpose: production
//! configs come whole from TypeScript).

use bernoulli_diffusion_core::config::{Architecture, ModelConfig, Padding, Parameterisation, ScheduleKind};
use bernoulli_diffusion_core::objective::ObjectiveKind;
use bernoulli_diffusion_core::optimiser::{LrSchedule, TrainingConfig};

/// A 1-D model on the paper schedule: `architecture` with `hidden` units in 2 layers, time embedding 32.
pub fn sequence_config(length: usize, timesteps: usize, architecture: Architecture, parameterisation: Parameterisation, hidden: usize) -> ModelConfig {
    ModelConfig {
        length,
        timesteps,
        schedule: ScheduleKind::Paper,
        architecture,
        parameterisation,
        hidden,
        layers: 2,
        time_embedding: 32,
        kernel: 0,
        shape: None,
        channels: 32,
        max_channels: 0,
        levels: 0,
        blocks: 1,
        padding: Padding::Zero,
        position_embedding: None,
        dropout: 0.0,
    }
}

/// AdamW at `lr` with a cosine decay over `total_steps` (100 warm-up steps), clipping 1, EMA 0.995.
pub fn training_config(lr: f64, total_steps: u64, objective: ObjectiveKind) -> TrainingConfig {
    TrainingConfig {
        lr,
        lr_schedule: LrSchedule::Cosine,
        warmup_steps: 100,
        total_steps,
        min_lr_ratio: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        clip_norm: 1.0,
        ema_decay: 0.995,
        objective,
    }
}
