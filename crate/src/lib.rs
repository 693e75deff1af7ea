//! bernoulli-diffusion-core: Bernoulli (binomial) diffusion models for binary sequences
//! (Sohl-Dickstein et al. 2015), with hand-written gradients. Plain Rust modules, one per
//! concept; `wasm` is the thin wasm-bindgen layer the TypeScript package loads.
//! The math and its symbols are in the repository's docs/DESIGN.md.

// Lints that fight the numeric style (`cargo clippy -- -D warnings` is otherwise clean):
// index loops over several parallel arrays follow the formulas' subscripts,
#![allow(clippy::needless_range_loop)]
// constants keep every digit of their derivation (the f64 they round to is the same),
#![allow(clippy::excessive_precision)]
// and kernels take their arrays and sizes as separate arguments rather than bundled in structs.
#![allow(clippy::too_many_arguments)]

pub mod bernoulli;
pub mod checkpoint;
pub mod config;
pub mod conv;
pub mod elementary;
pub mod error;
pub mod evaluate;
pub mod finite;
pub mod inpaint;
pub mod kernel;
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
