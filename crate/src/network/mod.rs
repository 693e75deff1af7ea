//! Reverse-process networks. Each maps a batch of noisy sequences x_t (rows × L, values 0/1)
//! and their time steps t (1..=T) to logits (rows × L); the objective turns logits into the
//! reverse kernel f(x_t, t) according to the parameterisation.
//!
//! Parameters live in one flat `Vec<f32>` per network, in the order given by `layout()`, so the
//! optimiser, checkpoints and the cross-worker gradient sum all see one contiguous array.

use crate::config::{Architecture, ModelConfig};
use crate::rng::Rng;

pub mod circular;
mod common;
pub mod mlp;
pub mod oracle;
pub mod paper;
pub mod unet;

/// One named parameter tensor inside the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterGroup {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    /// Whether AdamW's decoupled weight decay applies (weights yes; biases, norms, embeddings no).
    pub decay: bool,
}

// a tensor's element count; no tensor is ever empty, so no `is_empty`
#[allow(clippy::len_without_is_empty)]
impl ParameterGroup {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The interface every architecture implements. Networks own their scratch buffers:
/// `forward` keeps the activations that the next `backward` needs.
pub trait ReverseNetwork {
    /// The parameter tensors, in order, tiling `parameters()` exactly.
    fn layout(&self) -> Vec<ParameterGroup>;
    fn parameters(&self) -> &[f32];
    fn parameters_mut(&mut self) -> &mut [f32];
    /// logits[r, i] for rows r with inputs xt[r, ·] (0.0 or 1.0) at time t[r] (1..=T), in
    /// evaluation mode (sampling, evaluation, inpainting): no training-time noise such as dropout.
    fn forward(&mut self, xt: &[f32], t: &[u32], logits: &mut [f32]);
    /// `forward` in training mode: row r draws its training-time noise (the U-Net's dropout masks)
    /// from `Rng::new(noise_keys[r])` alone, so a row's logits never depend on which rows share the
    /// pass and a batch's shards stay bit-identical for any number of workers. Networks without such
    /// noise (the default) run `forward`.
    fn forward_training(&mut self, xt: &[f32], t: &[u32], noise_keys: &[u64], logits: &mut [f32]) {
        debug_assert_eq!(noise_keys.len(), t.len());
        self.forward(xt, t, logits);
    }
    /// Given dLoss/dlogits of the last `forward` or `forward_training` (with the same noise),
    /// ADD dLoss/dθ into `grad` (len = parameters().len()).
    fn backward(&mut self, dlogits: &[f32], grad: &mut [f32]);
}

/// Training-noise stream: `Rng::for_example(seed ^ TRAINING_NOISE_STREAM, step, example)`.
const TRAINING_NOISE_STREAM: u64 = 0x6472_6F70_6F75_7421; // "dropout!"

/// The key of `forward_training`'s noise for example `example` of optimiser step `step` at time
/// t: a function of (seed, step, example, t) only (not of the shard or the rows beside it), and a
/// stream apart from the example's diffusion noise (`Rng::for_example(seed, step, example)`), so
/// turning dropout on or off leaves x_t and t unchanged. Different t (the full sum) get different keys.
pub fn training_noise_key(seed: u64, step: u64, example: u64, t: u32) -> u64 {
    let mut stream = Rng::for_example(seed ^ TRAINING_NOISE_STREAM, step, example);
    let key = ((stream.next_u32() as u64) << 32) | stream.next_u32() as u64;
    key ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Builds the configured architecture with seeded initial weights.
pub fn build_network(config: &ModelConfig, rng: &mut Rng) -> Box<dyn ReverseNetwork> {
    match config.architecture {
        Architecture::Paper => Box::new(paper::PaperNetwork::new(config, rng)),
        Architecture::Mlp => Box::new(mlp::MlpNetwork::new(config, rng)),
        Architecture::Circular => Box::new(circular::CircularNetwork::new(config, rng)),
        Architecture::Unet => Box::new(unet::UnetNetwork::new(config, rng)),
    }
}

#[cfg(test)]
mod tests {
    use super::build_network;
    use super::common::history::check_no_history;
    use super::common::testing::{config, ARCHITECTURES};
    use crate::rng::Rng;

    #[test]
    fn layout_tiles_the_parameters() {
        for architecture in ARCHITECTURES {
            let net = build_network(&config(architecture, 20, 100, 16, 2), &mut Rng::new(0));
            let mut end = 0;
            for g in net.layout() {
                assert_eq!(g.offset, end, "{architecture:?} {}", g.name);
                end += g.len();
            }
            assert_eq!(end, net.parameters().len(), "{architecture:?}");
        }
    }

    #[test]
    fn init_is_deterministic() {
        for architecture in ARCHITECTURES {
            let cfg = config(architecture, 20, 100, 16, 2);
            let a = build_network(&cfg, &mut Rng::new(9));
            let b = build_network(&cfg, &mut Rng::new(9));
            assert_eq!(a.parameters(), b.parameters(), "{architecture:?}");
            assert_ne!(a.parameters(), build_network(&cfg, &mut Rng::new(8)).parameters(), "{architecture:?}");
        }
    }

    #[test]
    fn results_do_not_depend_on_earlier_calls() {
        for architecture in ARCHITECTURES {
            let cfg = config(architecture, 7, 5, 9, 2);
            let mut used = build_network(&cfg, &mut Rng::new(1));
            let mut fresh = build_network(&cfg, &mut Rng::new(1));
            check_no_history(&mut *used, &mut *fresh, 7, 5);
        }
    }
}
