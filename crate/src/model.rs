//! `Model`: configuration + schedule + network + AdamW state + EMA + seed + step (+ the
//! importance-sampling history). Same seed and same calls give bit-identical results.
//!
//! Training step s (0-based, = `step()` before the call) draws example i's noise from
//! `Rng::for_example(seed, s, i)`. A pool of workers can each call `compute_gradient` on a shard
//! (with its example offset and the same s) and one `apply_gradient` with the summed gradients
//! then equals `train_step` up to the order of float summation.

use crate::config::ModelConfig;
use crate::evaluate::{self, BoundEstimate, ExactNll};
use crate::network::{build_network, ParameterGroup, ReverseNetwork};
use crate::objective::{self, GivenResult, ImportanceHistory, ObjectiveKind, Workspace};
use crate::optimiser::{clip_scale, global_norm, update_ema, AdamW, TrainingConfig};
use crate::rng::Rng;
use crate::sampler::{self, SampleResult};
use crate::schedule::Schedule;
use serde::{Deserialize, Serialize};

/// Version of `state_json`'s format and of the tensor naming.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Mean over the batch of the estimated bound, bits per sequence.
    pub loss_bits: f64,
    /// Global norm of the batch-mean gradient before clipping.
    pub grad_norm: f64,
    /// Learning rate used for this step.
    pub lr: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Checkpoint metadata (`state_json`). The seed is a decimal string (u64 does not fit a JS number).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelState {
    pub format_version: u32,
    pub seed: String,
    pub step: u64,
    pub model: ModelConfig,
    pub training: TrainingConfig,
    pub importance: Option<ImportanceHistory>,
}

pub struct Model {
    pub model_config: ModelConfig,
    pub training_config: TrainingConfig,
    pub schedule: Schedule,
    network: Box<dyn ReverseNetwork>,
    layout: Vec<ParameterGroup>,
    optimiser: AdamW,
    /// EMA of the weights (None when ema_decay = 0).
    ema: Option<Vec<f32>>,
    seed: u64,
    step: u64,
    importance: Option<ImportanceHistory>,
    /// (t, term) observations of `compute_gradient` calls not yet folded into `importance`.
    pending_observations: Vec<(u32, f64)>,
    grad: Vec<f32>,
    workspace: Workspace,
    /// Scratch copy of the weights while the EMA weights are swapped in.
    backup: Vec<f32>,
}

/// Weight initialisation stream: `Rng::new(seed ^ INIT_STREAM)`.
const INIT_STREAM: u64 = 0x6E65_7477_6F72_6B21; // "network!"

impl Model {
    pub fn new(model_config: ModelConfig, training_config: TrainingConfig, seed: u64) -> Result<Model, String> {
        model_config.validate()?;
        training_config.validate()?;
        let schedule = Schedule::new(model_config.schedule, model_config.timesteps);
        let network = build_network(&model_config, &mut Rng::new(seed ^ INIT_STREAM));
        let layout = network.layout();
        let count = network.parameters().len();
        let optimiser = AdamW::new(&layout, count);
        let ema = (training_config.ema_decay > 0.0).then(|| network.parameters().to_vec());
        let importance = (training_config.objective == ObjectiveKind::Importance).then(|| ImportanceHistory::new(model_config.timesteps));
        Ok(Model {
            model_config,
            training_config,
            schedule,
            network,
            layout,
            optimiser,
            ema,
            seed,
            step: 0,
            importance,
            pending_observations: Vec::new(),
            grad: vec![0.0; count],
            workspace: Workspace::default(),
            backup: Vec::new(),
        })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of optimiser steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn parameter_count(&self) -> usize {
        self.grad.len()
    }

    pub fn layout(&self) -> &[ParameterGroup] {
        &self.layout
    }

    pub fn parameters(&self) -> &[f32] {
        self.network.parameters()
    }

    pub fn set_parameters(&mut self, values: &[f32]) -> Result<(), String> {
        if values.len() != self.parameter_count() {
            return Err(format!("expected {} parameters, got {}", self.parameter_count(), values.len()));
        }
        self.network.parameters_mut().copy_from_slice(values);
        Ok(())
    }

    pub fn ema_parameters(&self) -> Option<&[f32]> {
        self.ema.as_deref()
    }

    pub fn importance_history(&self) -> Option<&ImportanceHistory> {
        self.importance.as_ref()
    }

    fn check_batch(&self, x0: &[u8], rows: usize) -> Result<(), String> {
        let length = self.model_config.length;
        if rows == 0 || x0.len() != rows * length {
            return Err(format!("the batch must hold rows × L = {rows} × {length} bits, got {}", x0.len()));
        }
        if let Some(bad) = x0.iter().find(|&&b| b > 1) {
            return Err(format!("data bits must be 0 or 1, got {bad}"));
        }
        Ok(())
    }

    /// The SUM over rows of the estimated bound (bits) and the gradient of that sum, for rows that
    /// are examples example_offset.. of optimiser step `step`. Uses the current (not EMA) weights.
    pub fn compute_gradient(&mut self, x0: &[u8], rows: usize, example_offset: u64, step: u64) -> Result<(f64, &[f32]), String> {
        self.check_batch(x0, rows)?;
        self.grad.fill(0.0);
        let loss_sum = objective::estimate_bound(
            self.network.as_mut(),
            &self.model_config,
            &self.schedule,
            self.training_config.objective,
            self.importance.as_ref(),
            x0,
            rows,
            self.seed,
            step,
            example_offset,
            &mut self.workspace,
            &mut self.grad,
        );
        if self.importance.is_some() {
            self.pending_observations.extend_from_slice(&self.workspace.observations);
        }
        Ok((loss_sum, &self.grad))
    }

    /// One optimiser step from gradient sums over `total_rows` examples (and their loss sum):
    /// mean gradient, global-norm clipping, learning rate of this step, AdamW, EMA; step += 1.
    pub fn apply_gradient(&mut self, grad_sum: &[f32], loss_sum_bits: f64, total_rows: usize) -> Result<StepReport, String> {
        if grad_sum.len() != self.grad.len() {
            return Err(format!("expected a gradient of {} values, got {}", self.grad.len(), grad_sum.len()));
        }
        self.grad.copy_from_slice(grad_sum);
        self.apply_own_gradient(loss_sum_bits, total_rows)
    }

    fn apply_own_gradient(&mut self, loss_sum_bits: f64, total_rows: usize) -> Result<StepReport, String> {
        if total_rows == 0 {
            return Err("total_rows must be at least 1".into());
        }
        let mean_scale = 1.0 / total_rows as f64;
        let grad_norm = global_norm(&self.grad) * mean_scale;
        let scale = mean_scale * clip_scale(grad_norm, self.training_config.clip_norm);
        let lr = self.training_config.learning_rate(self.step);
        self.optimiser.update(self.network.parameters_mut(), &self.grad, scale as f32, &self.training_config, lr);
        if let Some(ema) = self.ema.as_mut() {
            update_ema(ema, self.network.parameters(), self.training_config.ema_decay);
        }
        if let Some(history) = self.importance.as_mut() {
            for &(t, term) in &self.pending_observations {
                history.record(t, term);
            }
        }
        self.pending_observations.clear();
        self.step += 1;
        Ok(StepReport { loss_bits: loss_sum_bits * mean_scale, grad_norm, lr })
    }

    /// One training step on a batch (rows × L bits): `compute_gradient` for all rows at the
    /// current step, then `apply_gradient`.
    pub fn train_step(&mut self, x0: &[u8], rows: usize) -> Result<StepReport, String> {
        let step = self.step;
        let (loss_sum, _) = self.compute_gradient(x0, rows, 0, step)?;
        self.apply_own_gradient(loss_sum, rows)
    }

    /// The bound's terms for given (x0, x_t, t) rows and d(sum)/dθ (returned as a new vector).
    pub fn loss_and_gradient_given(&mut self, x0: &[u8], xt: &[u8], t: &[u32]) -> Result<(GivenResult, Vec<f32>), String> {
        let rows = t.len();
        self.check_batch(x0, rows)?;
        self.check_batch(xt, rows)?;
        if let Some(bad) = t.iter().find(|&&v| v == 0 || v as usize > self.model_config.timesteps) {
            return Err(format!("t must be in 1..={}, got {bad}", self.model_config.timesteps));
        }
        let mut grad = vec![0.0f32; self.parameter_count()];
        let result = objective::loss_and_gradient_given(self.network.as_mut(), &self.model_config, &self.schedule, x0, xt, t, &mut grad);
        Ok((result, grad))
    }

    /// Runs `f` with the weights used for sampling and evaluation (the EMA when it is on).
    fn with_eval_weights<R>(&mut self, f: impl FnOnce(&mut dyn ReverseNetwork, &ModelConfig, &Schedule) -> R) -> R {
        if let Some(ema) = &self.ema {
            self.backup.clear();
            self.backup.extend_from_slice(self.network.parameters());
            self.network.parameters_mut().copy_from_slice(ema);
            let result = f(self.network.as_mut(), &self.model_config, &self.schedule);
            self.network.parameters_mut().copy_from_slice(&self.backup);
            result
        } else {
            f(self.network.as_mut(), &self.model_config, &self.schedule)
        }
    }

    /// n sequences from the reverse chain; frames every `record_every` steps (0 = none).
    pub fn sample(&mut self, n: usize, seed: u64, record_every: usize) -> Result<SampleResult, String> {
        self.with_eval_weights(|net, config, schedule| sampler::sample(net, config, schedule, n, seed, record_every, None))
    }

    /// n completions of a pattern (L or n·L entries of 0, 1, 2 = unknown); known bits clamped.
    pub fn inpaint(&mut self, pattern: &[u8], n: usize, seed: u64) -> Result<Vec<u8>, String> {
        self.with_eval_weights(|net, config, schedule| sampler::sample(net, config, schedule, n, seed, 0, Some(pattern))).map(|r| r.bits)
    }

    /// Monte-Carlo bound (full sum over t, `repeats` draws per sequence), bits per sequence.
    pub fn evaluate_bound(&mut self, x0: &[u8], rows: usize, repeats: usize, seed: u64) -> Result<BoundEstimate, String> {
        self.check_batch(x0, rows)?;
        self.with_eval_weights(|net, config, schedule| evaluate::evaluate_bound(net, config, schedule, x0, rows, repeats, seed))
    }

    /// Exact -log2 p(x0) of each sequence (L <= 12) and the total probability of all 2^L.
    pub fn exact_nll(&mut self, x0: &[u8], rows: usize) -> Result<ExactNll, String> {
        self.with_eval_weights(|net, config, schedule| evaluate::exact_nll(net, config, schedule, x0, rows))
    }

    /// Every tensor of the model: weights by layout name, then "optimiser.m.<name>",
    /// "optimiser.v.<name>", and "ema.<name>" when the EMA is on.
    pub fn tensors(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        let sources: [(&str, Option<&[f32]>); 4] = [
            ("", Some(self.network.parameters())),
            ("optimiser.m.", Some(&self.optimiser.m)),
            ("optimiser.v.", Some(&self.optimiser.v)),
            ("ema.", self.ema.as_deref()),
        ];
        for (prefix, values) in sources {
            let Some(values) = values else { continue };
            for g in &self.layout {
                out.push(NamedTensor { name: format!("{prefix}{}", g.name), shape: g.shape.clone(), data: values[g.offset..g.offset + g.len()].to_vec() });
            }
        }
        out
    }

    /// Loads tensors by name (shapes must match). Weights are required; missing optimiser moments
    /// stay as they are; a missing EMA (with the EMA on) is set to the loaded weights.
    pub fn load_tensors(&mut self, tensors: &[NamedTensor]) -> Result<(), String> {
        let find = |name: &str| tensors.iter().find(|t| t.name == name);
        for t in tensors {
            let base = t.name.strip_prefix("optimiser.m.").or_else(|| t.name.strip_prefix("optimiser.v.")).or_else(|| t.name.strip_prefix("ema.")).unwrap_or(&t.name);
            if !self.layout.iter().any(|g| g.name == base) {
                return Err(format!("unknown tensor '{}'", t.name));
            }
        }
        for g in self.layout.clone() {
            let range = g.offset..g.offset + g.len();
            let check = |t: &NamedTensor| -> Result<(), String> {
                if t.shape != g.shape || t.data.len() != g.len() {
                    return Err(format!("tensor '{}' has shape {:?}, expected {:?}", t.name, t.shape, g.shape));
                }
                Ok(())
            };
            let weights = find(&g.name).ok_or_else(|| format!("missing tensor '{}'", g.name))?;
            check(weights)?;
            self.network.parameters_mut()[range.clone()].copy_from_slice(&weights.data);
            if let Some(t) = find(&format!("optimiser.m.{}", g.name)) {
                check(t)?;
                self.optimiser.m[range.clone()].copy_from_slice(&t.data);
            }
            if let Some(t) = find(&format!("optimiser.v.{}", g.name)) {
                check(t)?;
                self.optimiser.v[range.clone()].copy_from_slice(&t.data);
            }
            if let Some(ema) = self.ema.as_mut() {
                let source = match find(&format!("ema.{}", g.name)) {
                    Some(t) => {
                        check(t)?;
                        &t.data
                    }
                    None => &weights.data,
                };
                ema[range].copy_from_slice(source);
            }
        }
        Ok(())
    }

    pub fn state(&self) -> ModelState {
        ModelState {
            format_version: FORMAT_VERSION,
            seed: self.seed.to_string(),
            step: self.step,
            model: self.model_config.clone(),
            training: self.training_config.clone(),
            importance: self.importance.clone(),
        }
    }

    /// Checkpoint metadata as JSON: format version, seed, step, configs, importance history.
    pub fn state_json(&self) -> String {
        serde_json::to_string(&self.state()).expect("the state serialises")
    }

    /// A model from `state_json` (freshly initialised weights: load the tensors next).
    pub fn from_state_json(json: &str) -> Result<Model, String> {
        let state: ModelState = serde_json::from_str(json).map_err(|e| format!("invalid model state: {e}"))?;
        if state.format_version != FORMAT_VERSION {
            return Err(format!("unsupported model state format {} (this build reads {FORMAT_VERSION})", state.format_version));
        }
        let seed: u64 = state.seed.parse().map_err(|_| format!("invalid seed '{}'", state.seed))?;
        let mut model = Model::new(state.model, state.training, seed)?;
        model.step = state.step;
        model.optimiser.updates = state.step;
        if let Some(history) = state.importance {
            if history.timesteps() != model.model_config.timesteps {
                return Err("importance history does not match T".into());
            }
            if model.importance.is_some() {
                model.importance = Some(history);
            }
        }
        Ok(model)
    }
}
