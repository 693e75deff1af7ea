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
    /// Time-conditioned residual convolutional U-Net over the data's shape (1-D or 2-D).
    Unet,
}

/// How the U-Net's convolutions treat positions outside the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Outside positions read 0.
    #[default]
    Zero,
    /// Positions wrap around (the network is then equivariant to cyclic shifts; see unet.rs).
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
    /// The data's shape: [L] or [H, W] (row-major, H·W = L); absent means [L].
    pub shape: Option<Vec<usize>>,
    /// U-Net: channels per position at the top level (C).
    pub channels: usize,
    /// U-Net: channels double per level down to this cap, C_j = min(C·2^j, M); 0 (the default,
    /// and every config written before the key existed): C at every level.
    #[serde(default)]
    pub max_channels: usize,
    /// U-Net: resolution levels; 0 chooses from the shape (`network::unet::default_levels`).
    pub levels: usize,
    /// U-Net: residual blocks per level on the way down (and on the way up).
    pub blocks: usize,
    /// U-Net: zero or circular padding.
    pub padding: Padding,
    /// U-Net: learned position embedding; absent means on for zero padding, off for circular
    /// (where it would break the shift equivariance).
    pub position_embedding: Option<bool>,
    /// U-Net: dropout probability p in every residual block during training (0: none); sampling
    /// and evaluation never drop (inverted dropout: kept values are scaled by 1/(1-p) in training).
    pub dropout: f64,
}

#[cfg(test)]
impl Default for ModelConfig {
    /// A small valid configuration (tests start from it with `..ModelConfig::default()`).
    fn default() -> Self {
        Self {
            length: 16,
            timesteps: 100,
            schedule: ScheduleKind::Paper,
            architecture: Architecture::Mlp,
            parameterisation: Parameterisation::X0,
            hidden: 64,
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
        if let Some(shape) = &self.shape {
            if shape.is_empty() || shape.len() > 2 || shape.contains(&0) {
                return Err(CoreError::User(format!("shape must be [L] or [H, W] with sides >= 1, got {shape:?}")));
            }
            if shape.iter().product::<usize>() != self.length {
                return Err(CoreError::User(format!("shape {shape:?} has {} positions but length is {}", shape.iter().product::<usize>(), self.length)));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(CoreError::User(format!("dropout must be in [0, 1), got {}", self.dropout)));
        }
        if self.dropout > 0.0 && self.architecture != Architecture::Unet {
            return Err(CoreError::User(format!("dropout is implemented by the unet only (architecture {:?}), got {}", self.architecture, self.dropout)));
        }
        if self.architecture == Architecture::Unet {
            if self.channels == 0 || self.channels > 1024 {
                return Err(CoreError::User(format!("channels must be in 1..=1024, got {}", self.channels)));
            }
            if self.max_channels != 0 && (self.max_channels < self.channels || self.max_channels > 1024) {
                return Err(CoreError::User(format!(
                    "max_channels must be 0 (channels at every level) or in channels..=1024 (channels = {}), got {}",
                    self.channels, self.max_channels
                )));
            }
            if self.levels > 12 {
                return Err(CoreError::User(format!("levels must be in 0..=12 (0: chosen from the shape), got {}", self.levels)));
            }
            if self.blocks == 0 || self.blocks > 16 {
                return Err(CoreError::User(format!("blocks must be in 1..=16, got {}", self.blocks)));
            }
            if self.time_embedding < 2 {
                return Err(CoreError::User(format!("time_embedding must be >= 2 for unet, got {}", self.time_embedding)));
            }
        }
        Ok(())
    }

    /// The data's shape as [H, W] (a 1-D shape [L] is [1, L]).
    pub fn grid(&self) -> [usize; 2] {
        match self.shape.as_deref() {
            Some([h, w]) => [*h, *w],
            _ => [1, self.length],
        }
    }
}
