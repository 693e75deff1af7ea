//! bernoulli-diffusion-core: Bernoulli (binomial) diffusion models for binary sequences
//! (Sohl-Dickstein et al. 2015), with hand-written gradients. Plain Rust modules, one per
//! concept; `wasm` is the thin wasm-bindgen layer the TypeScript package loads.
//! The math and its symbols are in the repository's docs/DESIGN.md.

pub mod bernoulli;
pub mod config;
pub mod conv;
pub mod elementary;
pub mod evaluate;
pub mod inpaint;
pub mod linalg;
pub mod model;
pub mod network;
pub mod objective;
pub mod optimiser;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod simd;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
