//! The model's configuration, as the TypeScript side sends it (JSON, snake_case keys, every
//! field present: the defaults live in TypeScript's `DEFAULTS` only). Validation of user input
//! happens in TypeScript (`src/config.ts`); `validate` here guards the invariants the numerical
//! code relies on.

use crate::error::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// b_t = 1/(T - t + 1), so c_t = t/T (the paper's schedule for binary data).
    Paper,
    /// DDPM's linear schedule carried over to flip rates: b_t from 0.1/T to 20/T, then b_T = 1
    /// (formulas in schedule.rs).
    Linear,
    /// Nichol & Dhariwal's cosine schedule: 1 - c_t = h(t)/h(0), h(t) = cos²(π/2 · (t/T + s)/(1 + s)).
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Shared MLP L -> H -> H (ReLU), then one linear readout H -> L per time step, sigmoid.
    Paper,
    /// Time-conditioned residual MLP (embedding of t instead of T readouts).
    Mlp,
    /// Cyclic-shift-equivariant network (circular convolutions over positions).
    Circular,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameterisation {
    /// The network's sigmoid output is f(x_t, t) = p(x_{t-1} = 1 | x_t) directly.
    Direct,
    /// The network predicts g = P(x0 = 1 | x_t); f = g·post(x0=1) + (1-g)·post(x0=0).
    X0,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// L: bits per sequence.
    pub length: usize,
    /// T: number of diffusion steps.
    #[serde(rename = "T")]
    pub timesteps: usize,
    pub schedule: ScheduleKind,
    pub architecture: Architecture,
    pub parameterisation: Parameterisation,
    /// H: hidden width (paper, mlp) or channels per position (circular).
    pub hidden: usize,
    /// Number of hidden layers / residual blocks.
    pub layers: usize,
    /// Width of the sinusoidal embedding of t (mlp, circular).
    pub time_embedding: usize,
    /// Circular convolution kernel width (circular); 0 means the full length L.
    pub kernel: usize,
}

impl ModelConfig {
    pub fn validate(&self) -> CoreResult<()> {
        if self.length == 0 || self.length > 4096 {
            return Err(CoreError::User(format!("length must be in 1..=4096, got {}", self.length)));
        }
        if self.timesteps == 0 || self.timesteps > 100_000 {
            return Err(CoreError::User(format!("T must be in 1..=100000, got {}", self.timesteps)));
        }
        if self.hidden == 0 || self.hidden > 4096 {
            return Err(CoreError::User(format!("hidden must be in 1..=4096, got {}", self.hidden)));
        }
        if self.layers == 0 || self.layers > 64 {
            return Err(CoreError::User(format!("layers must be in 1..=64, got {}", self.layers)));
        }
        if self.kernel > self.length {
            return Err(CoreError::User(format!("kernel ({}) must not exceed length ({})", self.kernel, self.length)));
        }
        Ok(())
    }
}
