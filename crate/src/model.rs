//! `Model`: configuration + schedule + network + AdamW state + EMA + seed + step (+ the
//! importance-sampling history). Same seed and same calls give bit-identical results.
//!
//! Training step s (0-based, = `step()` before the call) draws example i's noise from
//! `Rng::for_example(seed, s, i)`. The batch's gradient is the sum, in shard order, of the
//! gradients of a fixed split of the batch into shards (`gradient_shard_rows`), each computed from
//! zero: a pool of workers that computes the shards anywhere (`compute_gradient` with the shard's
//! example offset and the same s) and adds them in the same order (`add_gradient_in_order`) gets
//! the bits of `train_step`, whatever the number of workers.

use crate::config::ModelConfig;
use crate::error::{CoreError, CoreResult};
use crate::evaluate::{self, BoundEstimate, ExactNll, TimeSampling};
use crate::finite;
use crate::inpaint::{self, InpaintMode};
use crate::kernel;
use crate::network::{build_network, ParameterGroup, ReverseNetwork};
use crate::objective::{self, GivenResult, ImportanceHistory, ObjectiveKind, Workspace};
use crate::optimiser::{clip_scale, global_norm, update_ema, AdamW, TrainingConfig};
use crate::rng::Rng;
use crate::sampler::{self, SampleResult, FULL_CHAIN};
use crate::schedule::Schedule;
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Mean over the batch of the estimated bound, bits per sequence.
    pub loss_bits: f64,
    /// Global norm of the batch-mean gradient before clipping.
    pub grad_norm: f64,
    /// Learning rate used for this step.
    pub lr: f64,
    /// The weights, optimiser moments and EMA are all finite after the step (false: the run
    /// diverged; the model must not be trained on or saved).
    pub finite: bool,
}

pub struct Model {
    pub model_config: ModelConfig,
    pub training_config: TrainingConfig,
    pub schedule: Schedule,
    // crate-visible for checkpoint.rs, which names, saves and loads these
    pub(crate) network: Box<dyn ReverseNetwork>,
    pub(crate) layout: Vec<ParameterGroup>,
    pub(crate) optimiser: AdamW,
    /// EMA of the weights (None when ema_decay = 0).
    pub(crate) ema: Option<Vec<f32>>,
    pub(crate) seed: u64,
    pub(crate) step: u64,
    pub(crate) importance: Option<ImportanceHistory>,
    /// (t, term) observations of `compute_gradient` calls not yet folded into `importance`.
    pending_observations: Vec<(u32, f64)>,
    grad: Vec<f32>,
    /// One shard's gradient while `compute_gradient_of_shards` adds it to `grad` (empty until then).
    shard_grad: Vec<f32>,
    workspace: Workspace,
    /// Scratch copy of the weights while the EMA weights are swapped in.
    backup: Vec<f32>,
}

/// Shards per training batch (fewer when the batch has fewer rows): a constant, so the f32
/// additions that form a batch's gradient are the same whatever the number of workers. Eight lets
/// up to eight workers share a step; a pool holds one gradient buffer per shard (8 × parameters f32).
pub const GRADIENT_SHARDS: usize = 8;

/// The rows of each shard of a batch of `rows` examples: min(GRADIENT_SHARDS, rows) contiguous
/// shards whose sizes differ by at most one, larger first (shard k starts after shards 0..k).
pub fn gradient_shard_rows(rows: usize) -> Vec<usize> {
    let shards = GRADIENT_SHARDS.min(rows);
    (0..shards).map(|k| rows / shards + usize::from(k < rows % shards)).collect()
}

/// sum[i] += part[i] for every i, one f32 addition each (rounded to f32): the one way shard
/// gradients are added, here and in every pool replica (its wasm `addScratchToGradient` and the
/// JavaScript `sumShards` make the same roundings).
pub fn add_gradient_in_order(sum: &mut [f32], part: &[f32]) {
    assert_eq!(sum.len(), part.len(), "gradients of different sizes");
    for (s, &p) in sum.iter_mut().zip(part) {
        *s += p;
    }
}

/// Weight initialisation stream: `Rng::new(seed ^ INIT_STREAM)`.
const INIT_STREAM: u64 = 0x6E65_7477_6F72_6B21; // "network!"

impl Model {
    pub fn new(model_config: ModelConfig, training_config: TrainingConfig, seed: u64) -> CoreResult<Model> {
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
            shard_grad: Vec::new(),
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

    pub fn set_parameters(&mut self, values: &[f32]) -> CoreResult<()> {
        if values.len() != self.parameter_count() {
            return Err(CoreError::Internal(format!("expected {} parameters, got {}", self.parameter_count(), values.len())));
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

    /// True when the weights, the optimiser moments and the EMA hold only finite values.
    pub fn state_is_finite(&self) -> bool {
        finite::all_finite(self.network.parameters())
            && finite::all_finite(&self.optimiser.m)
            && finite::all_finite(&self.optimiser.v)
            && self.ema.as_deref().is_none_or(finite::all_finite)
    }

    /// Checks loaded tensors (see `finite::check_tensors`); the error names the first bad tensor.
    pub fn check_finite_state(&self) -> CoreResult<()> {
        finite::check_tensors(self.tensor_views().iter().map(|(name, _, values)| (name.as_str(), *values))).map_err(CoreError::User)
    }

    fn check_batch(&self, x0: &[u8], rows: usize) -> CoreResult<()> {
        let length = self.model_config.length;
        if rows == 0 || x0.len() != rows * length {
            return Err(CoreError::User(format!("the batch must hold rows × L = {rows} × {length} bits, got {}", x0.len())));
        }
        if let Some(bad) = x0.iter().find(|&&b| b > 1) {
            return Err(CoreError::User(format!("data bits must be 0 or 1, got {bad}")));
        }
        Ok(())
    }

    /// The SUM over rows of the estimated bound (bits) and the gradient of that sum, computed from
    /// zero, for rows that are examples example_offset.. of optimiser step `step` (one shard).
    /// Uses the current (not EMA) weights.
    pub fn compute_gradient(&mut self, x0: &[u8], rows: usize, example_offset: u64, step: u64) -> CoreResult<(f64, &[f32])> {
        self.check_batch(x0, rows)?;
        self.grad.fill(0.0);
        let loss_sum = self.shard_gradient(x0, rows, example_offset, step, false);
        Ok((loss_sum, &self.grad))
    }

    /// One shard's loss sum, its gradient from zero in `grad` (or in `shard_grad`), and its
    /// importance observations appended to the pending ones (row order).
    fn shard_gradient(&mut self, x0: &[u8], rows: usize, example_offset: u64, step: u64, into_shard_buffer: bool) -> f64 {
        let grad = if into_shard_buffer { &mut self.shard_grad } else { &mut self.grad };
        grad.fill(0.0);
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
            grad,
        );
        if self.importance.is_some() {
            self.pending_observations.extend_from_slice(&self.workspace.observations);
        }
        loss_sum
    }

    /// Consecutive shards of a batch (shard k holds shard_rows[k] rows; together examples
    /// example_offset.. of step `step`): each shard's gradient from zero, added in shard order
    /// into the gradient buffer (g_0 + g_1, then + g_2, ...: `add_gradient_in_order`), and their
    /// loss sums added in the same order (f64). Returns the loss sum; the gradient sum stays in the
    /// gradient buffer (`gradient_mut`). The pool's first replica calls this on its shards; the
    /// others' shards are added after it in the same order, so the result is the batch's.
    pub fn compute_gradient_of_shards(&mut self, x0: &[u8], example_offset: u64, step: u64, shard_rows: &[usize]) -> CoreResult<f64> {
        let rows: usize = shard_rows.iter().sum();
        if shard_rows.is_empty() || shard_rows.contains(&0) {
            return Err(CoreError::Internal(format!("shards must hold at least one row each, got {shard_rows:?}")));
        }
        self.check_batch(x0, rows)?;
        let length = self.model_config.length;
        if shard_rows.len() > 1 && self.shard_grad.len() != self.grad.len() {
            self.shard_grad = vec![0.0; self.grad.len()];
        }
        let mut loss_sum = 0.0;
        let mut first_row = 0;
        for (k, &count) in shard_rows.iter().enumerate() {
            let shard = &x0[first_row * length..(first_row + count) * length];
            // Σ_shards: ((g_0 + g_1) + g_2) + ..., each g_k from zero
            loss_sum += self.shard_gradient(shard, count, example_offset + first_row as u64, step, k > 0);
            if k > 0 {
                add_gradient_in_order(&mut self.grad, &self.shard_grad);
            }
            first_row += count;
        }
        Ok(loss_sum)
    }

    /// One optimiser step from gradient sums over `total_rows` examples (and their loss sum):
    /// mean gradient, global-norm clipping, learning rate of this step, AdamW, EMA; step += 1.
    pub fn apply_gradient(&mut self, grad_sum: &[f32], loss_sum_bits: f64, total_rows: usize) -> CoreResult<StepReport> {
        if grad_sum.len() != self.grad.len() {
            return Err(CoreError::Internal(format!("expected a gradient of {} values, got {}", self.grad.len(), grad_sum.len())));
        }
        self.grad.copy_from_slice(grad_sum);
        self.apply_own_gradient(loss_sum_bits, total_rows)
    }

    /// The gradient buffer: after `compute_gradient` it holds the shard's gradient sum; a pool
    /// overwrites it with the sum over all shards and calls `apply_own_gradient` (no copies).
    pub fn gradient_mut(&mut self) -> &mut [f32] {
        &mut self.grad
    }

    /// (t, term) of every row of the `compute_gradient` calls since the last optimiser step
    /// (importance objective only; empty otherwise), in row order.
    pub fn pending_observations(&self) -> &[(u32, f64)] {
        &self.pending_observations
    }

    /// Replaces the pending observations (a pool hands every replica those of all shards, in
    /// shard order, so all replicas keep the importance history of one worker).
    pub fn set_pending_observations(&mut self, observations: Vec<(u32, f64)>) -> CoreResult<()> {
        if let Some(&(t, _)) = observations.iter().find(|&&(t, _)| t == 0 || t as usize > self.model_config.timesteps) {
            return Err(CoreError::Internal(format!("observation t must be in 1..={}, got {t}", self.model_config.timesteps)));
        }
        if self.importance.is_some() {
            self.pending_observations = observations;
        }
        Ok(())
    }

    /// One optimiser step from the gradient sums in the gradient buffer (see `gradient_mut`).
    pub fn apply_own_gradient(&mut self, loss_sum_bits: f64, total_rows: usize) -> CoreResult<StepReport> {
        if total_rows == 0 {
            return Err(CoreError::internal("total_rows must be at least 1"));
        }
        let mean_scale = 1.0 / total_rows as f64;
        let grad_norm = global_norm(&self.grad) * mean_scale;
        let scale = mean_scale * clip_scale(grad_norm, self.training_config.clip_norm);
        let lr = self.training_config.learning_rate(self.step);
        self.optimiser.update(self.network.parameters_mut(), &self.grad, scale as f32, &self.training_config, lr);
        if let Some(ema) = self.ema.as_mut() {
            update_ema(ema, self.network.parameters(), self.training_config.ema_decay_at(self.step + 1));
        }
        if let Some(history) = self.importance.as_mut() {
            for &(t, term) in &self.pending_observations {
                history.record(t, term);
            }
        }
        self.pending_observations.clear();
        self.step += 1;
        let finite = self.state_is_finite();
        Ok(StepReport { loss_bits: loss_sum_bits * mean_scale, grad_norm, lr, finite })
    }

    /// One training step on a batch (rows × L bits): the gradient of the batch's fixed shards
    /// (`gradient_shard_rows`) added in shard order at the current step, then the optimiser step.
    pub fn train_step(&mut self, x0: &[u8], rows: usize) -> CoreResult<StepReport> {
        let step = self.step;
        self.check_batch(x0, rows)?; // before the shards are cut (no rows, or a ragged batch)
        let loss_sum = self.compute_gradient_of_shards(x0, 0, step, &gradient_shard_rows(rows))?;
        self.apply_own_gradient(loss_sum, rows)
    }

    /// The bound's terms for given (x0, x_t, t) rows and d(sum)/dθ (returned as a new vector).
    pub fn loss_and_gradient_given(&mut self, x0: &[u8], xt: &[u8], t: &[u32]) -> CoreResult<(GivenResult, Vec<f32>)> {
        let rows = t.len();
        self.check_batch(x0, rows)?;
        self.check_batch(xt, rows)?;
        if let Some(bad) = t.iter().find(|&&v| v == 0 || v as usize > self.model_config.timesteps) {
            return Err(CoreError::User(format!("t must be in 1..={}, got {bad}", self.model_config.timesteps)));
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
    pub fn sample(&mut self, n: usize, seed: u64, record_every: usize) -> CoreResult<SampleResult> {
        self.sample_range(0, n, seed, FULL_CHAIN, record_every)
    }

    /// Sequences first..first+n of `sample(first + n, seed, record_every)` (for a pool of workers),
    /// from a chain of `steps` network calls (`FULL_CHAIN` = 0: all T; fewer: strided, see sampler.rs).
    pub fn sample_range(&mut self, first: u64, n: usize, seed: u64, steps: usize, record_every: usize) -> CoreResult<SampleResult> {
        self.with_eval_weights(|net, config, schedule| sampler::sample(net, config, schedule, first, n, seed, steps, record_every, None))
    }

    /// n completions of a pattern (L or n·L entries of 0, 1, 2 = unknown); known bits never
    /// change. `InpaintMode::default()` (twisted SMC) samples the model's conditional,
    /// `InpaintMode::Clamp` is the paper's clamping (see inpaint.rs).
    pub fn inpaint(&mut self, pattern: &[u8], n: usize, seed: u64, mode: InpaintMode) -> CoreResult<Vec<u8>> {
        self.inpaint_range(pattern, 0, n, seed, FULL_CHAIN, mode)
    }

    /// Completions first..first+n of `inpaint` (pattern: L entries, or n·L for these n rows), from
    /// a chain of `steps` network calls (`FULL_CHAIN`: all T).
    pub fn inpaint_range(&mut self, pattern: &[u8], first: u64, n: usize, seed: u64, steps: usize, mode: InpaintMode) -> CoreResult<Vec<u8>> {
        self.with_eval_weights(|net, config, schedule| inpaint::inpaint(net, config, schedule, first, n, seed, steps, pattern, mode))
    }

    /// Monte-Carlo bound (full sum over t, `repeats` draws per sequence), bits per sequence.
    pub fn evaluate_bound(&mut self, x0: &[u8], rows: usize, repeats: usize, sampling: TimeSampling, seed: u64) -> CoreResult<BoundEstimate> {
        self.check_batch(x0, rows)?;
        self.with_eval_weights(|net, config, schedule| evaluate::evaluate_bound(net, config, schedule, x0, rows, repeats, sampling, seed))
    }

    /// The totals behind `evaluate_bound` (totals[i·R + r], bits) for rows that are sequences
    /// first_index.. of the dataset, only the items i·R + r in `items`; `evaluate::summarise` of
    /// all rows' totals gives the estimate.
    #[allow(clippy::too_many_arguments)]
    pub fn bound_totals(
        &mut self,
        x0: &[u8],
        rows: usize,
        repeats: usize,
        sampling: TimeSampling,
        seed: u64,
        first_index: u64,
        items: Range<usize>,
    ) -> CoreResult<Vec<f64>> {
        self.check_batch(x0, rows)?;
        self.with_eval_weights(|net, config, schedule| evaluate::bound_totals(net, config, schedule, x0, rows, repeats, sampling, seed, first_index, items))
    }

    /// Exact -log2 p(x0) of each sequence (L <= 12) and the total probability of all 2^L.
    pub fn exact_nll(&mut self, x0: &[u8], rows: usize) -> CoreResult<ExactNll> {
        self.with_eval_weights(|net, config, schedule| evaluate::exact_nll(net, config, schedule, x0, rows))
    }

    /// The reverse kernel f(x_t, t) = p(x_{t-1,i} = 1 | x_t) of every bit of the given rows
    /// (xt: rows × L bits, t: one step in 1..=T per row), with the weights used for sampling (the
    /// EMA when it is on): exactly the probabilities the reverse chain draws from (f32).
    pub fn reverse_probabilities(&mut self, xt: &[u8], t: &[u32]) -> CoreResult<Vec<f32>> {
        let rows = t.len();
        self.check_batch(xt, rows)?;
        if let Some(bad) = t.iter().find(|&&v| v == 0 || v as usize > self.model_config.timesteps) {
            return Err(CoreError::User(format!("t must be in 1..={}, got {bad}", self.model_config.timesteps)));
        }
        let length = self.model_config.length;
        self.with_eval_weights(|net, config, schedule| {
            let input: Vec<f32> = xt.iter().map(|&bit| bit as f32).collect();
            let mut logits = vec![0.0f32; rows * length];
            net.forward(&input, t, &mut logits);
            let mut probabilities = vec![0.0f32; rows * length];
            for (r, &tr) in t.iter().enumerate() {
                let span = r * length..(r + 1) * length;
                let table = schedule.posterior_table(tr as usize);
                kernel::reverse_probabilities(config.parameterisation, table, tr == 1, &xt[span.clone()], &logits[span.clone()], &mut probabilities[span]);
            }
            Ok(probabilities)
        })
    }

    /// The weights used for sampling and evaluation: the EMA when it is on, else the weights.
    pub fn inference_parameters(&self) -> &[f32] {
        self.ema.as_deref().unwrap_or(self.network.parameters())
    }
}

/// Small configurations, data and a training loop for the tests of `Model` and of its checkpoints.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::config::{Architecture, Parameterisation, ScheduleKind};

    pub(crate) fn model_config(architecture: Architecture, parameterisation: Parameterisation, length: usize, timesteps: usize) -> ModelConfig {
        ModelConfig {
            length,
            timesteps,
            schedule: ScheduleKind::Paper,
            architecture,
            parameterisation,
            hidden: 16,
            layers: 2,
            time_embedding: 8,
            kernel: 0,
            ..ModelConfig::default()
        }
    }

    pub(crate) fn heartbeat(length: usize, period: usize) -> Vec<u8> {
        (0..period).flat_map(|k| (0..length).map(move |i| (i % period == k) as u8)).collect()
    }

    /// A batch of `rows` sequences drawn (by `step`) from the dataset.
    pub(crate) fn batch(data: &[u8], length: usize, rows: usize, step: u64) -> Vec<u8> {
        let count = data.len() / length;
        let mut rng = Rng::new(1000 + step);
        (0..rows)
            .flat_map(|_| {
                let k = rng.below(count as u32) as usize;
                data[k * length..(k + 1) * length].to_vec()
            })
            .collect()
    }

    pub(crate) fn train(model: &mut Model, data: &[u8], steps: u64, rows: usize) -> StepReport {
        let length = model.model_config.length;
        let mut last = None;
        for s in 0..steps {
            last = Some(model.train_step(&batch(data, length, rows, s), rows).unwrap());
        }
        last.unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{batch, heartbeat, model_config, train};
    use super::*;
    use crate::config::{Architecture, Parameterisation, ScheduleKind};

    #[test]
    fn tiny_trained_models_have_normalised_exact_probabilities_below_their_bound() {
        let (length, timesteps) = (6, 20);
        let data = heartbeat(length, 3);
        for (architecture, parameterisation, objective) in [
            (Architecture::Mlp, Parameterisation::X0, ObjectiveKind::Sampled),
            (Architecture::Paper, Parameterisation::Direct, ObjectiveKind::Full),
            (Architecture::Circular, Parameterisation::X0, ObjectiveKind::Importance),
        ] {
            let training = TrainingConfig { lr: 3e-3, objective, ema_decay: 0.0, ..Default::default() };
            let mut model = Model::new(model_config(architecture, parameterisation, length, timesteps), training, 7).unwrap();
            let first = model.evaluate_bound(&data, 3, 50, TimeSampling::Full, 1).unwrap().mean;
            train(&mut model, &data, 300, 16);
            let exact = model.exact_nll(&data, 3).unwrap();
            assert!((exact.total_mass - 1.0).abs() < 1e-6, "{architecture:?}: mass {}", exact.total_mass);
            let exact_mean = exact.nll_bits.iter().sum::<f64>() / 3.0;
            let bound = model.evaluate_bound(&data, 3, 200, TimeSampling::Full, 2).unwrap();
            eprintln!(
                "{architecture:?}/{parameterisation:?}/{objective:?}: bound {first:.3} -> {:.3} ± {:.3}, exact NLL {exact_mean:.3}",
                bound.mean, bound.mc_stderr
            );
            assert!(bound.mean >= exact_mean - 3.0 * bound.mc_stderr, "{architecture:?}: bound {} ± {} < exact {exact_mean}", bound.mean, bound.mc_stderr);
            assert!(exact_mean >= 3f64.log2() - 1e-9);
            assert!(bound.mean < first, "{architecture:?}: training did not lower the bound ({first} -> {})", bound.mean);
        }
    }

    #[test]
    fn model_gradients_match_central_differences_for_every_architecture_and_estimator() {
        // compute_gradient composes the objective with the real networks; with a fixed step the
        // estimate is a deterministic function of the weights (f32 networks: loose tolerance)
        let (length, timesteps, rows) = (6, 10, 5);
        let data = heartbeat(length, 3);
        let x0 = batch(&data, length, rows, 0);
        for (architecture, parameterisation) in [
            (Architecture::Paper, Parameterisation::Direct),
            (Architecture::Mlp, Parameterisation::X0),
            (Architecture::Circular, Parameterisation::X0),
            (Architecture::Mlp, Parameterisation::Direct),
        ] {
            for objective in [ObjectiveKind::Full, ObjectiveKind::Sampled] {
                let training = TrainingConfig { objective, ..Default::default() };
                let mut model = Model::new(model_config(architecture, parameterisation, length, timesteps), training, 21).unwrap();
                let grad = model.compute_gradient(&x0, rows, 0, 3).unwrap().1.to_vec();
                let base = model.parameters().to_vec();
                let mut rng = Rng::new(5);
                let mut checked = 0;
                let mut kinks = 0;
                for _ in 0..2000 {
                    let i = rng.below(base.len() as u32) as usize;
                    if grad[i].abs() < 3e-3 {
                        continue;
                    }
                    let h = 1e-3f32;
                    let mut loss_at = |value: f32| {
                        let mut p = base.clone();
                        p[i] = value;
                        model.set_parameters(&p).unwrap();
                        model.compute_gradient(&x0, rows, 0, 3).unwrap().0
                    };
                    let (up, mid, down) = (loss_at(base[i] + h), loss_at(base[i]), loss_at(base[i] - h));
                    let (right, left) = ((up - mid) / h as f64, (mid - down) / h as f64);
                    if (right - left).abs() > 0.1 * right.abs().max(left.abs()) + 1e-3 {
                        kinks += 1;
                        continue; // a ReLU kink lies within ±h: the loss is not differentiable there
                    }
                    let numeric = (up - down) / (2.0 * h as f64);
                    let analytic = grad[i] as f64;
                    assert!(
                        (numeric - analytic).abs() <= 0.02 * analytic.abs() + 1e-3,
                        "{architecture:?}/{parameterisation:?}/{objective:?} parameter {i}: {numeric} vs {analytic}"
                    );
                    checked += 1;
                    if checked == 12 {
                        break;
                    }
                }
                assert!(checked >= 6, "{architecture:?}/{objective:?}: only {checked} parameters checked ({kinks} skipped at kinks)");
            }
        }
    }

    #[test]
    fn same_seed_gives_identical_results_and_different_seeds_differ() {
        let (length, timesteps) = (8, 12);
        let data = heartbeat(length, 4);
        let config = model_config(Architecture::Mlp, Parameterisation::X0, length, timesteps);
        let training = TrainingConfig { ema_decay: 0.9, objective: ObjectiveKind::Importance, ..Default::default() };
        let run = |seed: u64| {
            let mut model = Model::new(config.clone(), training.clone(), seed).unwrap();
            let report = train(&mut model, &data, 20, 8);
            let samples = model.sample(16, 5, 3).unwrap();
            (model.parameters().to_vec(), report, samples)
        };
        let (a, ra, sa) = run(1);
        let (b, rb, sb) = run(1);
        assert_eq!(a, b);
        assert_eq!(ra, rb);
        assert_eq!(sa, sb);
        let (c, _, _) = run(2);
        assert_ne!(a, c);
        // a different sampling seed gives different samples from the same model
        let mut model = Model::new(config, training, 1).unwrap();
        assert_ne!(model.sample(16, 5, 0).unwrap().bits, model.sample(16, 6, 0).unwrap().bits);
    }

    #[test]
    fn samples_do_not_depend_on_how_many_are_drawn_together_and_frames_end_at_the_samples() {
        let mut model = Model::new(model_config(Architecture::Paper, Parameterisation::Direct, 5, 9), TrainingConfig::default(), 3).unwrap();
        let all = model.sample(1500, 11, 4).unwrap(); // more than one chunk
        let few = model.sample(3, 11, 0).unwrap();
        assert_eq!(&all.bits[..15], &few.bits[..]);
        assert_eq!(all.frame_times, vec![9, 5, 1, 0]);
        let last = 3 * 1500 * 5;
        assert_eq!(&all.frames[last..], &all.bits[..]);
        assert!(all.bits.iter().all(|&b| b <= 1));
    }

    #[test]
    fn inpainting_never_changes_a_known_bit() {
        let (length, timesteps) = (10, 15);
        let data = heartbeat(length, 5);
        for (architecture, parameterisation) in [(Architecture::Mlp, Parameterisation::X0), (Architecture::Paper, Parameterisation::Direct)] {
            let mut model = Model::new(model_config(architecture, parameterisation, length, timesteps), TrainingConfig::default(), 4).unwrap();
            train(&mut model, &data, 30, 8);
            for mode in [InpaintMode::Clamp, InpaintMode::default(), InpaintMode::Smc { particles: 1 }, InpaintMode::Smc { particles: 3 }] {
                let pattern = [1, 2, 2, 0, 2, 1, 2, 2, 2, 0];
                let out = model.inpaint(&pattern, 200, 9, mode).unwrap();
                for row in out.chunks(length) {
                    for j in 0..length {
                        if pattern[j] != 2 {
                            assert_eq!(row[j], pattern[j], "{mode:?}");
                        }
                    }
                }
                // the unknown bits do vary
                assert!(out.chunks(length).any(|r| r[1] == 1) && out.chunks(length).any(|r| r[1] == 0), "{mode:?}");
                // a pattern per row
                let per_row: Vec<u8> = (0..4 * length).map(|k| if k % 3 == 0 { (k % 2) as u8 } else { 2 }).collect();
                let out = model.inpaint(&per_row, 4, 9, mode).unwrap();
                for k in 0..4 * length {
                    if per_row[k] != 2 {
                        assert_eq!(out[k], per_row[k], "{mode:?}");
                    }
                }
                assert!(model.inpaint(&[3; 10], 1, 0, mode).is_err());
                assert!(model.inpaint(&[2; 7], 1, 0, mode).is_err());
            }
            assert!(model.inpaint(&[2; 10], 1, 0, InpaintMode::Smc { particles: 0 }).is_err());
        }
    }

    #[test]
    fn batches_split_into_at_most_eight_near_equal_shards_larger_first() {
        assert_eq!(gradient_shard_rows(256), vec![32; 8]);
        assert_eq!(gradient_shard_rows(9), vec![2, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(gradient_shard_rows(19), vec![3, 3, 3, 2, 2, 2, 2, 2]);
        assert_eq!(gradient_shard_rows(3), vec![1, 1, 1]);
        assert_eq!(gradient_shard_rows(0), Vec::<usize>::new());
        for rows in 1..100 {
            let shards = gradient_shard_rows(rows);
            assert_eq!(shards.iter().sum::<usize>(), rows);
            assert_eq!(shards.len(), rows.min(GRADIENT_SHARDS));
            assert!(shards.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1), "{shards:?}");
        }
    }

    #[test]
    fn a_step_adds_the_shard_gradients_from_zero_in_shard_order() {
        let (length, timesteps, rows) = (6, 10, 19);
        let data = heartbeat(length, 3);
        let x0 = batch(&data, length, rows, 0);
        // the mlp, and the U-Net with dropout (each example's masks from its own training-noise stream)
        let unet_dropout = ModelConfig { channels: 4, dropout: 0.3, ..model_config(Architecture::Unet, Parameterisation::X0, length, timesteps) };
        let configs = [model_config(Architecture::Mlp, Parameterisation::X0, length, timesteps), unet_dropout];
        for (objective, config) in
            [ObjectiveKind::Full, ObjectiveKind::Sampled, ObjectiveKind::Importance].into_iter().flat_map(|o| configs.iter().map(move |c| (o, c.clone())))
        {
            let training = TrainingConfig { objective, clip_norm: 0.5, ema_decay: 0.5, ..Default::default() };
            let mut whole = Model::new(config.clone(), training.clone(), 5).unwrap();
            let mut by_hand = Model::new(config, training, 5).unwrap();
            // every shard's gradient from zero, then ((g_0 + g_1) + g_2) + ... one f32 rounding each
            let mut shards = Vec::new();
            let mut first = 0;
            for count in gradient_shard_rows(rows) {
                let (loss, grad) = by_hand.compute_gradient(&x0[first * length..(first + count) * length], count, first as u64, 0).unwrap();
                shards.push((loss, grad.to_vec()));
                first += count;
            }
            let mut in_order = shards[0].1.clone();
            let mut loss_sum = shards[0].0;
            for (loss, grad) in &shards[1..] {
                for (s, g) in in_order.iter_mut().zip(grad) {
                    *s += *g;
                }
                loss_sum += loss;
            }
            // the order matters at f32 precision (so this test tells the orders apart)
            let mut reversed = shards.last().unwrap().1.clone();
            for (_, grad) in shards.iter().rev().skip(1) {
                add_gradient_in_order(&mut reversed, grad);
            }
            assert_ne!(reversed, in_order, "{objective:?}");

            assert_eq!(whole.compute_gradient_of_shards(&x0, 0, 0, &gradient_shard_rows(rows)).unwrap(), loss_sum);
            assert_eq!(whole.gradient_mut(), &in_order[..]);
            whole.set_pending_observations(Vec::new()).unwrap();
            let mut stepped = Model::new(whole.model_config.clone(), whole.training_config.clone(), 5).unwrap();
            let report = stepped.train_step(&x0, rows).unwrap();
            let by_hand_report = by_hand.apply_gradient(&in_order, loss_sum, rows).unwrap();
            assert_eq!(report, by_hand_report);
            assert_eq!(stepped.parameters(), by_hand.parameters());
            assert_eq!(stepped.ema_parameters(), by_hand.ema_parameters());
            assert_eq!(stepped.importance_history(), by_hand.importance_history());
        }
    }

    #[test]
    fn ranges_of_samples_inpaintings_and_bound_totals_equal_one_big_call() {
        let (length, timesteps) = (6, 9);
        let data = heartbeat(length, 3);
        let mut model = Model::new(model_config(Architecture::Paper, Parameterisation::Direct, length, timesteps), TrainingConfig::default(), 3).unwrap();
        let all = model.sample(7, 11, 4).unwrap();
        let a = model.sample_range(0, 3, 11, FULL_CHAIN, 4).unwrap();
        let b = model.sample_range(3, 4, 11, FULL_CHAIN, 4).unwrap();
        assert_eq!([a.bits.clone(), b.bits.clone()].concat(), all.bits);
        assert_eq!(a.frame_times, all.frame_times);
        for f in 0..all.frame_times.len() {
            let joined = [&a.frames[f * 3 * length..(f + 1) * 3 * length], &b.frames[f * 4 * length..(f + 1) * 4 * length]].concat();
            assert_eq!(joined, &all.frames[f * 7 * length..(f + 1) * 7 * length]);
        }
        let pattern = [1, 2, 2, 0, 2, 2];
        for mode in [InpaintMode::Clamp, InpaintMode::default()] {
            let whole = model.inpaint(&pattern, 5, 2, mode).unwrap();
            assert_eq!(
                [model.inpaint_range(&pattern, 0, 2, 2, FULL_CHAIN, mode).unwrap(), model.inpaint_range(&pattern, 2, 3, 2, FULL_CHAIN, mode).unwrap()].concat(),
                whole
            );
        }
        let estimate = model.evaluate_bound(&data, 3, 4, TimeSampling::Full, 5).unwrap();
        let first = model.bound_totals(&data[..length], 1, 4, TimeSampling::Full, 5, 0, 0..4).unwrap();
        let rest = model.bound_totals(&data[length..], 2, 4, TimeSampling::Full, 5, 1, 0..8).unwrap();
        assert_eq!(evaluate::summarise(&[first.clone(), rest.clone()].concat(), 3, 4), estimate);
        // split by (sequence, repeat) items, cutting through sequences: items 0..5 of all rows,
        // then items 1..7 of the last two rows (items 5..11 overall), then item 11
        let by_items = [
            model.bound_totals(&data, 3, 4, TimeSampling::Full, 5, 0, 0..5).unwrap(),
            model.bound_totals(&data[length..], 2, 4, TimeSampling::Full, 5, 1, 1..7).unwrap(),
            model.bound_totals(&data[2 * length..], 1, 4, TimeSampling::Full, 5, 2, 3..4).unwrap(),
        ]
        .concat();
        assert_eq!(by_items, [first, rest].concat());
        assert!(model.bound_totals(&data, 3, 4, TimeSampling::Full, 5, 0, 5..5).unwrap().is_empty());
    }

    /// A pool's step done by hand: the batch's shards spread contiguously over `replicas` models
    /// (larger shares first); the first adds its shards in order (`compute_gradient_of_shards`),
    /// the others compute each of theirs from zero; every replica adds them all in shard order and
    /// takes the optimiser step with the observations of all shards, in shard order.
    fn pooled_step(replicas: &mut [Model], x0: &[u8], rows: usize) {
        let length = replicas[0].model_config.length;
        let step = replicas[0].step();
        let shard_rows = gradient_shard_rows(rows);
        let starts: Vec<usize> = shard_rows.iter().scan(0, |at, &n| Some(std::mem::replace(at, *at + n))).collect();
        let (n, count) = (shard_rows.len(), replicas.len());
        // replica r's shards: n shards cut into `count` contiguous ranges, larger first
        let per_replica = |r: usize| {
            let first = r * (n / count) + r.min(n % count);
            first..first + n / count + usize::from(r < n % count)
        };
        let mut parts: Vec<Vec<f32>> = Vec::new();
        let mut loss_sum = 0.0;
        let mut observations = Vec::new();
        for (r, replica) in replicas.iter_mut().enumerate() {
            let mine = per_replica(r);
            if mine.is_empty() {
                continue;
            }
            let rows_of = |k: usize| &x0[starts[k] * length..(starts[k] + shard_rows[k]) * length];
            if r == 0 {
                let end = starts[mine.end - 1] + shard_rows[mine.end - 1];
                loss_sum += replica.compute_gradient_of_shards(&x0[..end * length], 0, step, &shard_rows[mine]).unwrap();
                parts.push(replica.gradient_mut().to_vec());
            } else {
                for k in mine {
                    let (loss, grad) = replica.compute_gradient(rows_of(k), shard_rows[k], starts[k] as u64, step).unwrap();
                    loss_sum += loss;
                    parts.push(grad.to_vec());
                }
            }
            observations.extend_from_slice(replica.pending_observations());
        }
        let mut sum = parts[0].clone();
        for part in &parts[1..] {
            add_gradient_in_order(&mut sum, part);
        }
        for replica in replicas.iter_mut() {
            replica.set_pending_observations(observations.clone()).unwrap();
            replica.gradient_mut().copy_from_slice(&sum);
            replica.apply_own_gradient(loss_sum, rows).unwrap();
        }
    }

    #[test]
    fn any_number_of_replicas_trains_the_bits_of_one_model() {
        let (length, timesteps) = (6, 5);
        let data = heartbeat(length, 3);
        for objective in [ObjectiveKind::Importance, ObjectiveKind::Full] {
            let training = TrainingConfig { objective, ema_decay: 0.9, ..Default::default() };
            let config = model_config(Architecture::Mlp, Parameterisation::X0, length, timesteps);
            let mut whole = Model::new(config.clone(), training.clone(), 5).unwrap();
            let mut pools: Vec<Vec<Model>> =
                [2, 3, 10].iter().map(|&n| (0..n).map(|_| Model::new(config.clone(), training.clone(), 5).unwrap()).collect()).collect();
            for s in 0..12 {
                // 19 rows: shards of 3 and 2 rows; 5 rows: fewer shards than the 10-replica pool
                let rows = if s % 3 == 2 { 5 } else { 19 };
                let x0 = batch(&data, length, rows, s);
                whole.train_step(&x0, rows).unwrap();
                for pool in pools.iter_mut() {
                    pooled_step(pool, &x0, rows);
                }
            }
            if objective == ObjectiveKind::Importance {
                assert!(whole.importance_history().unwrap().is_ready());
            }
            for pool in &pools {
                for replica in pool {
                    assert_eq!(replica.parameters(), whole.parameters(), "{objective:?}, {} replicas", pool.len());
                    assert_eq!(replica.ema_parameters(), whole.ema_parameters());
                    assert_eq!(replica.optimiser.m, whole.optimiser.m);
                    assert_eq!(replica.importance_history(), whole.importance_history());
                }
            }
        }
        let mut model = Model::new(model_config(Architecture::Mlp, Parameterisation::X0, length, timesteps), TrainingConfig::default(), 5).unwrap();
        assert!(model.set_pending_observations(vec![(0, 1.0)]).is_err());
        assert!(matches!(model.compute_gradient_of_shards(&data[..2 * length], 0, 0, &[2, 0]), Err(CoreError::Internal(_))));
        assert!(matches!(model.compute_gradient_of_shards(&data[..2 * length], 0, 0, &[1, 2]), Err(CoreError::User(_))));
    }

    #[test]
    fn ema_weights_are_used_for_sampling() {
        let (length, timesteps) = (6, 8);
        let data = heartbeat(length, 3);
        let training = TrainingConfig { ema_decay: 0.99, lr: 1e-2, ..Default::default() };
        let mut model = Model::new(model_config(Architecture::Mlp, Parameterisation::X0, length, timesteps), training, 3).unwrap();
        train(&mut model, &data, 10, 8);
        let ema = model.ema_parameters().unwrap().to_vec();
        assert_ne!(ema, model.parameters());
        let with_ema = model.sample(50, 2, 0).unwrap();
        let current = model.parameters().to_vec();
        // a model whose weights ARE the EMA, without EMA, samples the same
        let mut plain = Model::new(model.model_config.clone(), TrainingConfig::default(), 3).unwrap();
        plain.set_parameters(&ema).unwrap();
        assert_eq!(plain.sample(50, 2, 0).unwrap(), with_ema);
        assert_eq!(model.parameters(), &current[..]); // restored after sampling
    }

    #[test]
    fn errors_are_user_errors_for_bad_input_and_internal_for_broken_invariants() {
        let config = model_config(Architecture::Mlp, Parameterisation::X0, 4, 5);
        let mut model = Model::new(config.clone(), TrainingConfig::default(), 1).unwrap();
        let user = |e: CoreError| assert!(e.is_user(), "expected a user error: {e:?}");
        let internal = |e: CoreError| assert!(!e.is_user(), "expected an internal error: {e:?}");
        // bad config values, data, patterns, options: the user's
        user(Model::new(ModelConfig { hidden: 0, ..config.clone() }, TrainingConfig::default(), 1).err().unwrap());
        user(Model::new(config.clone(), TrainingConfig { beta2: 1.0, ..Default::default() }, 1).err().unwrap());
        user(model.train_step(&[0, 1, 0], 1).unwrap_err());
        user(model.evaluate_bound(&[0, 1, 0, 7], 1, 2, TimeSampling::Full, 0).unwrap_err());
        user(model.bound_totals(&[0, 1, 0, 1], 1, 0, TimeSampling::Stratified(3), 0, 0, 0..0).unwrap_err());
        user(model.inpaint(&[3, 2, 2, 2], 1, 0, InpaintMode::Clamp).unwrap_err());
        user(model.inpaint(&[2; 4], 1, 0, InpaintMode::Smc { particles: 0 }).unwrap_err());
        user(InpaintMode::from_name(Some("dream"), None).unwrap_err());
        user(model.loss_and_gradient_given(&[0; 4], &[0; 4], &[6]).unwrap_err());
        let mut long = Model::new(model_config(Architecture::Mlp, Parameterisation::X0, 13, 5), TrainingConfig::default(), 1).unwrap();
        user(long.exact_nll(&[0; 13], 1).unwrap_err());
        // values only the program hands over (a pool's gradients, observations, row counts): a bug
        internal(model.apply_gradient(&[0.0; 3], 0.0, 1).unwrap_err());
        internal(model.apply_own_gradient(0.0, 0).unwrap_err());
        internal(model.set_pending_observations(vec![(6, 1.0)]).unwrap_err());
        internal(model.set_parameters(&[0.0; 2]).unwrap_err());
        internal(model.bound_totals(&[0, 1, 0, 1], 1, 2, TimeSampling::Full, 0, 0, 1..3).unwrap_err());
    }

    #[test]
    fn reverse_probabilities_of_an_untrained_mlp_are_the_uniform_prior_posterior() {
        // A fresh mlp (output.weight = 0, biases 0) predicts g = P(x0 = 1 | x_t bit) =
        // sigmoid(λ_t·s) exactly as for x0 ~ B(1/2); then f = Σ_{x0} P(x0 | x_t) q(x_{t-1} = 1 | x_t, x0)
        // = P(x_{t-1} = 1 | x_t) with x_{t-1} ~ B(1/2): 1 - b_t/2 when x_t = 1, b_t/2 when x_t = 0.
        for schedule in [ScheduleKind::Paper, ScheduleKind::Cosine] {
            let mut config = model_config(Architecture::Mlp, Parameterisation::X0, 5, 9);
            config.schedule = schedule;
            let mut model = Model::new(config, TrainingConfig::default(), 2).unwrap();
            let xt = [1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1];
            let t = [1, 5, 9];
            let f = model.reverse_probabilities(&xt, &t).unwrap();
            for r in 0..3 {
                let b = model.schedule.b(t[r] as usize);
                for i in 0..5 {
                    let want = if xt[r * 5 + i] == 1 { 1.0 - b / 2.0 } else { b / 2.0 };
                    assert!((f[r * 5 + i] as f64 - want).abs() < 2e-6, "{schedule:?} t = {}: {} vs {want}", t[r], f[r * 5 + i]);
                }
            }
        }
    }

    #[test]
    fn reverse_probabilities_use_the_ema_weights_and_match_the_f64_kernel() {
        let (length, timesteps) = (6, 8);
        let data = heartbeat(length, 3);
        for (architecture, parameterisation) in
            [(Architecture::Paper, Parameterisation::Direct), (Architecture::Mlp, Parameterisation::X0), (Architecture::Circular, Parameterisation::X0)]
        {
            let training = TrainingConfig { ema_decay: 0.9, lr: 1e-2, ..Default::default() };
            let mut model = Model::new(model_config(architecture, parameterisation, length, timesteps), training, 3).unwrap();
            train(&mut model, &data, 10, 8);
            assert_eq!(model.inference_parameters(), model.ema_parameters().unwrap());
            let xt: Vec<u8> = (0..4 * length).map(|k| ((k * 7) % 3 == 0) as u8).collect();
            let t = [1, 3, 8, 3];
            let f = model.reverse_probabilities(&xt, &t).unwrap();
            // the same from a model whose weights ARE the EMA (no EMA of its own)
            let mut plain = Model::new(model.model_config.clone(), TrainingConfig::default(), 3).unwrap();
            plain.set_parameters(model.ema_parameters().unwrap()).unwrap();
            assert_eq!(plain.inference_parameters(), model.ema_parameters().unwrap());
            assert_eq!(plain.reverse_probabilities(&xt, &t).unwrap(), f);
            // and each value is the f64 kernel of the network's logit
            let input: Vec<f32> = xt.iter().map(|&b| b as f32).collect();
            let mut logits = vec![0.0f32; 4 * length];
            plain.network.forward(&input, &t, &mut logits);
            for r in 0..4 {
                let table = plain.schedule.posterior_table(t[r] as usize);
                for i in 0..length {
                    let k = r * length + i;
                    let (f1, _) = kernel::reverse_probability(parameterisation, table, t[r] == 1, xt[k], logits[k] as f64);
                    assert!((f[k] as f64 - f1).abs() < 1e-6, "{architecture:?}: {} vs {f1}", f[k]);
                }
            }
        }
        let mut model = Model::new(model_config(Architecture::Mlp, Parameterisation::X0, 4, 5), TrainingConfig::default(), 1).unwrap();
        assert!(model.reverse_probabilities(&[0, 1, 0, 1], &[0]).is_err());
        assert!(model.reverse_probabilities(&[0, 1, 0, 1], &[6]).is_err());
        assert!(model.reverse_probabilities(&[0, 1, 0], &[1]).is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut model = Model::new(model_config(Architecture::Mlp, Parameterisation::X0, 4, 5), TrainingConfig::default(), 1).unwrap();
        assert!(model.train_step(&[0, 1, 0], 1).is_err());
        assert!(model.train_step(&[0, 1, 0, 2], 1).is_err());
        assert!(model.exact_nll(&[0, 1, 0, 1], 1).is_ok());
        let mut long = Model::new(model_config(Architecture::Mlp, Parameterisation::X0, 13, 5), TrainingConfig::default(), 1).unwrap();
        assert!(long.exact_nll(&[0; 13], 1).is_err());
        assert!(Model::new(model_config(Architecture::Mlp, Parameterisation::X0, 0, 5), TrainingConfig::default(), 1).is_err());
        assert!(model.apply_gradient(&[0.0; 3], 0.0, 1).is_err());
    }
}
