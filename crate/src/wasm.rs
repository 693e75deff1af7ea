//! The thin wasm-bindgen layer: `RawModel` wraps `Model`; typed arrays cross the boundary once
//! per call. Seeds are u64 (BigInt in JavaScript). A `CoreError` is thrown as a JavaScript
//! `Error` whose `name` is "UserError" or "InternalError" and whose `message` is the one-line
//! message (a panic traps instead: a `WebAssembly.RuntimeError`, an internal error too).
//! Results with several parts come back as one Float64Array with a documented layout, or are
//! kept in the RawModel and read with a second call (`last_*`).

use crate::config::ModelConfig;
use crate::error::{json_error, CoreError};
use crate::evaluate::{self, BoundEstimate, TimeSampling};
use crate::inpaint::InpaintMode;
use crate::model::{self, Model};
use crate::optimiser::TrainingConfig;
use serde::Deserialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// JavaScript's `Error` (imported so the thrown error can carry a `name`).
    #[wasm_bindgen(js_name = Error)]
    type JsErrorObject;

    #[wasm_bindgen(constructor, js_class = "Error")]
    fn new(message: &str) -> JsErrorObject;

    #[wasm_bindgen(method, setter = name, js_class = "Error")]
    fn set_name(this: &JsErrorObject, name: &str);
}

/// The JavaScript `Error` thrown for a `CoreError` (name "UserError" / "InternalError").
fn js_error(error: CoreError) -> JsValue {
    let thrown = JsErrorObject::new(error.message());
    thrown.set_name(error.js_name());
    thrown.into()
}

/// [mean, mc_stderr, sequence_stderr, per-sequence bound...] (bits per sequence).
fn bound_layout(estimate: &BoundEstimate) -> Vec<f64> {
    let mut out = vec![estimate.mean, estimate.mc_stderr, estimate.sequence_stderr];
    out.extend_from_slice(&estimate.per_sequence);
    out
}

/// A step report as JavaScript reads it: [loss_bits, grad_norm, lr, finite (1 or 0)].
fn step_report(r: &crate::model::StepReport) -> Vec<f64> {
    vec![r.loss_bits, r.grad_norm, r.lr, if r.finite { 1.0 } else { 0.0 }]
}

#[wasm_bindgen]
pub struct RawModel {
    model: Model,
    last_gradient: Vec<f32>,
    /// Another shard's gradient, copied in by a pool to be added (`addScratchToGradient`).
    scratch: Vec<f32>,
    last_frames: Vec<u8>,
    last_frame_times: Vec<u32>,
}

#[wasm_bindgen]
impl RawModel {
    /// From the model and training configurations (JSON, snake_case) and a seed.
    #[wasm_bindgen(constructor)]
    pub fn new(model_config_json: &str, training_config_json: &str, seed: u64) -> Result<RawModel, JsValue> {
        let model_config: ModelConfig = serde_json::from_str(model_config_json).map_err(|e| js_error(json_error("invalid model config", &e)))?;
        let training_config: TrainingConfig = serde_json::from_str(training_config_json).map_err(|e| js_error(json_error("invalid training config", &e)))?;
        let model = Model::new(model_config, training_config, seed).map_err(js_error)?;
        Ok(RawModel { model, last_gradient: Vec::new(), scratch: Vec::new(), last_frames: Vec::new(), last_frame_times: Vec::new() })
    }

    /// A model from `state_json()` output; load its tensors next.
    #[wasm_bindgen(js_name = fromState)]
    pub fn from_state(state_json: &str) -> Result<RawModel, JsValue> {
        let model = Model::from_state_json(state_json).map_err(js_error)?;
        Ok(RawModel { model, last_gradient: Vec::new(), scratch: Vec::new(), last_frames: Vec::new(), last_frame_times: Vec::new() })
    }

    #[wasm_bindgen(getter)]
    pub fn step(&self) -> u64 {
        self.model.step()
    }

    #[wasm_bindgen(getter, js_name = parameterCount)]
    pub fn parameter_count(&self) -> usize {
        self.model.parameter_count()
    }

    /// One training step: [loss_bits, grad_norm, lr, finite] (see `step_report`).
    #[wasm_bindgen(js_name = trainStep)]
    pub fn train_step(&mut self, x0: &[u8], rows: usize) -> Result<Vec<f64>, JsValue> {
        let r = self.model.train_step(x0, rows).map_err(js_error)?;
        Ok(step_report(&r))
    }

    /// Gradient of the SUM over the shard's rows (examples example_offset.. of step `step`);
    /// returns the loss sum (bits); the gradient is read with `lastGradient()`.
    #[wasm_bindgen(js_name = computeGradient)]
    pub fn compute_gradient(&mut self, x0: &[u8], rows: usize, example_offset: u64, step: u64) -> Result<f64, JsValue> {
        let (loss, grad) = self.model.compute_gradient(x0, rows, example_offset, step).map_err(js_error)?;
        self.last_gradient.clear();
        self.last_gradient.extend_from_slice(grad);
        Ok(loss)
    }

    #[wasm_bindgen(js_name = lastGradient)]
    pub fn last_gradient(&self) -> Vec<f32> {
        self.last_gradient.clone()
    }

    /// `computeGradient` without copying the gradient out: it stays in the model's gradient
    /// buffer, `parameterCount` f32 values at byte offset `gradientPointer()` of `wasmMemory()`.
    #[wasm_bindgen(js_name = computeGradientInPlace)]
    pub fn compute_gradient_in_place(&mut self, x0: &[u8], rows: usize, example_offset: u64, step: u64) -> Result<f64, JsValue> {
        let (loss, _) = self.model.compute_gradient(x0, rows, example_offset, step).map_err(js_error)?;
        Ok(loss)
    }

    /// Consecutive shards of a batch (shardRows[k] rows each, together examples example_offset..
    /// of step `step`): their gradients added in shard order into the gradient buffer
    /// (`Model::compute_gradient_of_shards`); returns their loss sum (bits).
    #[wasm_bindgen(js_name = computeGradientOfShardsInPlace)]
    pub fn compute_gradient_of_shards_in_place(&mut self, x0: &[u8], example_offset: u64, step: u64, shard_rows: &[u32]) -> Result<f64, JsValue> {
        let shard_rows: Vec<usize> = shard_rows.iter().map(|&n| n as usize).collect();
        self.model.compute_gradient_of_shards(x0, example_offset, step, &shard_rows).map_err(js_error)
    }

    /// Byte offset of the model's gradient buffer in `wasmMemory()` (fixed for the model's life;
    /// views on it must be re-created after any call, as the memory may have grown).
    #[wasm_bindgen(js_name = gradientPointer)]
    pub fn gradient_pointer(&mut self) -> usize {
        self.model.gradient_mut().as_mut_ptr() as usize
    }

    /// Byte offset in `wasmMemory()` of a scratch buffer of `parameterCount` f32 values (allocated
    /// by the first call, so take views after it): a pool copies another shard's gradient there
    /// and adds it with `addScratchToGradient`.
    #[wasm_bindgen(js_name = gradientScratchPointer)]
    pub fn gradient_scratch_pointer(&mut self) -> usize {
        let count = self.model.parameter_count();
        if self.scratch.len() != count {
            self.scratch = vec![0.0; count];
        }
        self.scratch.as_mut_ptr() as usize
    }

    /// gradient[i] += scratch[i] for every i (f32 additions, element by element; vectorised).
    #[wasm_bindgen(js_name = addScratchToGradient)]
    pub fn add_scratch_to_gradient(&mut self) -> Result<(), JsValue> {
        let gradient = self.model.gradient_mut();
        if self.scratch.len() != gradient.len() {
            return Err(js_error(CoreError::internal("no gradient scratch buffer: call gradientScratchPointer first")));
        }
        model::add_gradient_in_order(gradient, &self.scratch);
        Ok(())
    }

    /// One optimiser step from the gradient sums written into the gradient buffer:
    /// [loss_bits, grad_norm, lr, finite].
    #[wasm_bindgen(js_name = applyGradientInPlace)]
    pub fn apply_gradient_in_place(&mut self, loss_sum_bits: f64, total_rows: usize) -> Result<Vec<f64>, JsValue> {
        let r = self.model.apply_own_gradient(loss_sum_bits, total_rows).map_err(js_error)?;
        Ok(step_report(&r))
    }

    /// The (t, term) observations pending for the importance history, flat: [t0, term0, t1, ...].
    #[wasm_bindgen(js_name = pendingObservations)]
    pub fn pending_observations(&self) -> Vec<f64> {
        self.model.pending_observations().iter().flat_map(|&(t, term)| [t as f64, term]).collect()
    }

    /// Replaces the pending observations (flat [t, term, ...], as `pendingObservations`).
    #[wasm_bindgen(js_name = setPendingObservations)]
    pub fn set_pending_observations(&mut self, flat: &[f64]) -> Result<(), JsValue> {
        if flat.len() % 2 != 0 {
            return Err(js_error(CoreError::internal("observations come in (t, term) pairs")));
        }
        let observations = flat.chunks_exact(2).map(|p| (p[0] as u32, p[1])).collect();
        self.model.set_pending_observations(observations).map_err(js_error)
    }

    /// One optimiser step from summed gradients: [loss_bits, grad_norm, lr, finite].
    #[wasm_bindgen(js_name = applyGradient)]
    pub fn apply_gradient(&mut self, grad_sum: &[f32], loss_sum_bits: f64, total_rows: usize) -> Result<Vec<f64>, JsValue> {
        let r = self.model.apply_gradient(grad_sum, loss_sum_bits, total_rows).map_err(js_error)?;
        Ok(step_report(&r))
    }

    /// n samples (n × L bits); with record_every > 0 the frames are read with `lastFrames()`
    /// (frame-major, frames × n × L) and `lastFrameTimes()`. steps: network calls of the chain
    /// (undefined or 0: all T; fewer: strided, x0 parameterisation only).
    pub fn sample(&mut self, n: usize, seed: u64, record_every: usize, steps: Option<usize>) -> Result<Vec<u8>, JsValue> {
        self.sample_range(0, n, seed, record_every, steps)
    }

    /// Sequences first..first+n of `sample(first + n, seed, record_every)`, laid out as `sample`'s.
    #[wasm_bindgen(js_name = sampleRange)]
    pub fn sample_range(&mut self, first: u64, n: usize, seed: u64, record_every: usize, steps: Option<usize>) -> Result<Vec<u8>, JsValue> {
        let result = self.model.sample_range(first, n, seed, steps.unwrap_or(0), record_every).map_err(js_error)?;
        self.last_frames = result.frames;
        self.last_frame_times = result.frame_times;
        Ok(result.bits)
    }

    /// Completions first..first+n of `inpaint` (pattern: L entries, or n·L for these rows).
    #[wasm_bindgen(js_name = inpaintRange)]
    pub fn inpaint_range(
        &mut self,
        pattern: &[u8],
        first: u64,
        n: usize,
        seed: u64,
        mode: Option<String>,
        particles: Option<usize>,
        steps: Option<usize>,
    ) -> Result<Vec<u8>, JsValue> {
        let mode = InpaintMode::from_name(mode.as_deref(), particles).map_err(js_error)?;
        self.model.inpaint_range(pattern, first, n, seed, steps.unwrap_or(0), mode).map_err(js_error)
    }

    /// The Monte-Carlo totals behind `evaluateBound` for rows that are sequences first_index..
    /// of the dataset: totals[i·repeats + r] (bits) of the items first_item..first_item+items
    /// (all of the rows' items when absent). strata: 0 for the full sum over t, else K strata of t
    /// (`evaluate::TimeSampling`).
    #[wasm_bindgen(js_name = boundTotals)]
    #[allow(clippy::too_many_arguments)]
    pub fn bound_totals(
        &mut self,
        x0: &[u8],
        rows: usize,
        repeats: usize,
        strata: usize,
        seed: u64,
        first_index: u64,
        first_item: Option<usize>,
        items: Option<usize>,
    ) -> Result<Vec<f64>, JsValue> {
        let first_item = first_item.unwrap_or(0);
        let items = items.unwrap_or((rows * repeats).saturating_sub(first_item));
        self.model
            .bound_totals(x0, rows, repeats, TimeSampling::from_strata(strata), seed, first_index, first_item..first_item.saturating_add(items))
            .map_err(js_error)
    }

    #[wasm_bindgen(js_name = lastFrames)]
    pub fn last_frames(&self) -> Vec<u8> {
        self.last_frames.clone()
    }

    #[wasm_bindgen(js_name = lastFrameTimes)]
    pub fn last_frame_times(&self) -> Vec<u32> {
        self.last_frame_times.clone()
    }

    /// n completions of `pattern` (L or n·L entries: 0, 1, 2 = unknown). mode: "smc" (default;
    /// `particles` per completion, default 8) or "clamp" (the paper's §2.5), see inpaint.rs.
    pub fn inpaint(
        &mut self,
        pattern: &[u8],
        n: usize,
        seed: u64,
        mode: Option<String>,
        particles: Option<usize>,
        steps: Option<usize>,
    ) -> Result<Vec<u8>, JsValue> {
        self.inpaint_range(pattern, 0, n, seed, mode, particles, steps)
    }

    /// [mean, mc_stderr, sequence_stderr, per-sequence bound...] (bits per sequence). strata: 0
    /// for the full sum over t, else K strata of t (`evaluate::TimeSampling`).
    #[wasm_bindgen(js_name = evaluateBound)]
    pub fn evaluate_bound(&mut self, x0: &[u8], rows: usize, repeats: usize, strata: usize, seed: u64) -> Result<Vec<f64>, JsValue> {
        let estimate = self.model.evaluate_bound(x0, rows, repeats, TimeSampling::from_strata(strata), seed).map_err(js_error)?;
        Ok(bound_layout(&estimate))
    }

    /// [total probability mass of all 2^L sequences, -log2 p(x0) of each row...] (L <= 12).
    #[wasm_bindgen(js_name = exactNll)]
    pub fn exact_nll(&mut self, x0: &[u8], rows: usize) -> Result<Vec<f64>, JsValue> {
        let e = self.model.exact_nll(x0, rows).map_err(js_error)?;
        let mut out = vec![e.total_mass];
        out.extend_from_slice(&e.nll_bits);
        Ok(out)
    }

    /// The reverse kernel f(x_t, t) = p(x_{t-1,i} = 1 | x_t) of every bit of the given rows
    /// (xt: rows × L bits, t: one step per row), with the sampling (EMA) weights: rows × L values.
    #[wasm_bindgen(js_name = reverseProbabilities)]
    pub fn reverse_probabilities(&mut self, xt: &[u8], t: &[u32]) -> Result<Vec<f32>, JsValue> {
        self.model.reverse_probabilities(xt, t).map_err(js_error)
    }

    /// The weights used for sampling and evaluation (the EMA when it is on), flat in layout order.
    #[wasm_bindgen(js_name = inferenceParameters)]
    pub fn inference_parameters(&self) -> Vec<f32> {
        self.model.inference_parameters().to_vec()
    }

    /// Terms of given rows (x0, x_t, t): the per-row loss in bits; d(sum)/dθ via `lastGradient()`.
    #[wasm_bindgen(js_name = lossAndGradientGiven)]
    pub fn loss_and_gradient_given(&mut self, x0: &[u8], xt: &[u8], t: &[u32]) -> Result<Vec<f64>, JsValue> {
        let (result, grad) = self.model.loss_and_gradient_given(x0, xt, t).map_err(js_error)?;
        self.last_gradient = grad;
        Ok(result.row_loss_bits)
    }

    /// The current (not EMA) weights, flat in layout order.
    pub fn parameters(&self) -> Vec<f32> {
        self.model.parameters().to_vec()
    }

    #[wasm_bindgen(js_name = setParameters)]
    pub fn set_parameters(&mut self, values: &[f32]) -> Result<(), JsValue> {
        self.model.set_parameters(values).map_err(js_error)
    }

    /// The parameter layout: JSON [{name, shape, offset, decay}].
    #[wasm_bindgen(js_name = layoutJson)]
    pub fn layout_json(&self) -> String {
        let entries: Vec<serde_json::Value> =
            self.model.layout().iter().map(|g| serde_json::json!({ "name": g.name, "shape": g.shape, "offset": g.offset, "decay": g.decay })).collect();
        serde_json::Value::Array(entries).to_string()
    }

    /// Every tensor (weights, optimiser moments, EMA; names and order of `Model::tensors`, see
    /// checkpoint.rs) with its shape and the byte address of its
    /// values in `wasmMemory()`: JSON [{name, shape, pointer}]. A checkpoint is written from views
    /// on the model's own storage, and loaded into it (after `checkTensorDirectory`), without
    /// copies in the wasm memory. Views are valid until the next call into the core.
    #[wasm_bindgen(js_name = tensorPointers)]
    pub fn tensor_pointers(&mut self) -> String {
        let shapes: Vec<Vec<usize>> = self.model.tensor_views().iter().map(|(_, shape, _)| shape.to_vec()).collect();
        let entries: Vec<serde_json::Value> = self
            .model
            .tensor_addresses()
            .into_iter()
            .zip(shapes)
            .map(|((name, pointer), shape)| serde_json::json!({ "name": name, "shape": shape, "pointer": pointer }))
            .collect();
        serde_json::Value::Array(entries).to_string()
    }

    /// Checks a checkpoint's tensor directory (JSON [{name, shape}]): known names, matching
    /// shapes, every weight tensor present (`Model::check_tensor_directory`).
    #[wasm_bindgen(js_name = checkTensorDirectory)]
    pub fn check_tensor_directory(&self, directory_json: &str) -> Result<(), JsValue> {
        #[derive(Deserialize)]
        struct Entry {
            name: String,
            shape: Vec<usize>,
        }
        let entries: Vec<Entry> = serde_json::from_str(directory_json).map_err(|e| js_error(json_error("invalid tensor directory", &e)))?;
        let entries: Vec<(String, Vec<usize>)> = entries.into_iter().map(|e| (e.name, e.shape)).collect();
        self.model.check_tensor_directory(&entries).map_err(js_error)
    }

    /// After tensors were written in place (`tensorPointers`): refuses non-finite values and
    /// negative second moments, naming the tensor.
    #[wasm_bindgen(js_name = checkFiniteState)]
    pub fn check_finite_state(&self) -> Result<(), JsValue> {
        self.model.check_finite_state().map_err(js_error)
    }

    /// Checkpoint metadata: format version, seed (string), step, configs, importance history.
    #[wasm_bindgen(js_name = stateJson)]
    pub fn state_json(&self) -> String {
        self.model.state_json()
    }
}

/// `evaluate::summarise` of totals[i·repeats + r] (e.g. the `boundTotals` of all replicas):
/// [mean, mc_stderr, sequence_stderr, per-sequence bound...], the layout of `evaluateBound`.
#[wasm_bindgen(js_name = summariseBound)]
pub fn summarise_bound(totals: &[f64], rows: usize, repeats: usize) -> Result<Vec<f64>, JsValue> {
    if totals.len() != rows * repeats {
        return Err(js_error(CoreError::Internal(format!("expected rows × repeats = {rows} × {repeats} totals, got {}", totals.len()))));
    }
    Ok(bound_layout(&evaluate::summarise(totals, rows, repeats)))
}

/// The most shards a training batch is cut into (`model::GRADIENT_SHARDS`).
#[wasm_bindgen(js_name = gradientShards)]
pub fn gradient_shards() -> usize {
    model::GRADIENT_SHARDS
}

/// The rows of each shard of a training batch of `rows` examples (`model::gradient_shard_rows`):
/// the split whose gradients every step adds in shard order, whatever the number of workers.
#[wasm_bindgen(js_name = gradientShardRows)]
pub fn gradient_shard_rows(rows: usize) -> Vec<u32> {
    model::gradient_shard_rows(rows).into_iter().map(|n| n as u32).collect()
}

/// The module's linear memory (a `WebAssembly.Memory`), for views on `RawModel.gradientPointer()`.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// The peak probe: `crate::linalg::peak_multiply_add` (f32x4 multiply-adds on registers only);
/// it performs `peakFlops(iterations)` floating-point operations. Time it from JavaScript.
#[wasm_bindgen(js_name = peakKernel)]
pub fn peak_kernel(iterations: u32, x: f32) -> f32 {
    crate::linalg::peak_multiply_add(iterations, x)
}

/// Floating-point operations of `peakKernel(iterations, ·)`.
#[wasm_bindgen(js_name = peakFlops)]
pub fn peak_flops(iterations: u32) -> f64 {
    iterations as f64 * crate::linalg::PEAK_FLOPS_PER_ITERATION as f64
}
