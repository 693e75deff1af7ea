//! The checkpoint format, core side: the names of a model's tensors, its state (`state_json`:
//! format version, seed, step, both configurations, importance history), the checks a checkpoint's
//! tensor directory must pass, loading tensors, and the one rule that completes older states.
//!
//! Tensor names: the weights by their layout name (`ParameterGroup::name`), then the AdamW moments
//! "optimiser.m.<name>" and "optimiser.v.<name>", then "ema.<name>" when the EMA is on. A
//! checkpoint must hold every weight tensor; missing moments stay at their current values, a
//! missing EMA starts at the loaded weights. (The file container, safetensors with the state in
//! its metadata, is written and read by the TypeScript side, src/checkpoint.ts.)

use crate::config::ModelConfig;
use crate::error::{json_error, CoreError, CoreResult};
use crate::finite;
use crate::model::Model;
use crate::objective::ImportanceHistory;
use crate::optimiser::TrainingConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of `state_json`'s format and of the tensor naming.
pub const FORMAT_VERSION: u32 = 1;

/// Name prefix of the AdamW first moments.
pub const OPTIMISER_M_PREFIX: &str = "optimiser.m.";
/// Name prefix of the AdamW second moments.
pub const OPTIMISER_V_PREFIX: &str = "optimiser.v.";
/// Name prefix of the EMA of the weights.
pub const EMA_PREFIX: &str = "ema.";

/// The layout name a tensor name refers to (the name without its prefix, if any).
pub fn base_name(name: &str) -> &str {
    name.strip_prefix(OPTIMISER_M_PREFIX).or_else(|| name.strip_prefix(OPTIMISER_V_PREFIX)).or_else(|| name.strip_prefix(EMA_PREFIX)).unwrap_or(name)
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

/// What a format-1 reader filled in for fields missing from a state (its serde defaults: the
/// model's time_embedding and kernel, every training field; states written before the U-Net lack its
/// keys, and states written before dropout lack `dropout`, which mean the same as these values). This build writes every field, but
/// a format-1 state that relied on those defaults keeps loading exactly as it did.
const FORMAT_1_DEFAULTS: &str = r#"{
    "model": { "time_embedding": 32, "kernel": 0, "shape": null, "channels": 32, "levels": 0, "blocks": 1, "padding": "zero",
               "position_embedding": null, "dropout": 0.0 },
    "training": { "lr": 0.001, "lr_schedule": "constant", "warmup_steps": 0, "total_steps": 0, "min_lr_ratio": 0.1, "beta1": 0.9,
                  "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "clip_norm": 1.0, "ema_decay": 0.0, "objective": "sampled" }
}"#;

/// A state JSON parsed and completed by the rule of its format version (the one place old states
/// are handled): an unsupported version or a malformed state is a user error.
pub fn parse_state(json: &str) -> CoreResult<ModelState> {
    let mut value: Value = serde_json::from_str(json).map_err(|e| json_error("invalid model state", &e))?;
    let version = match value.get("format_version") {
        None => return Err(CoreError::user("invalid model state: missing field `format_version`")),
        Some(v) => v.as_u64().ok_or_else(|| CoreError::User(format!("invalid model state: format_version must be a whole number, got {v}")))?,
    };
    if version != 1 {
        return Err(CoreError::User(format!("unsupported model state format {version} (this build reads {FORMAT_VERSION})")));
    }
    let defaults: Value = serde_json::from_str(FORMAT_1_DEFAULTS).expect("the format-1 defaults parse");
    for section in ["model", "training"] {
        if let (Some(Value::Object(fields)), Value::Object(fills)) = (value.get_mut(section), &defaults[section]) {
            for (key, fill) in fills {
                fields.entry(key.clone()).or_insert_with(|| fill.clone());
            }
        }
    }
    serde_json::from_value(value).map_err(|e| json_error("invalid model state", &e))
}

impl Model {
    /// (name prefix, values) of each kind of tensor, in checkpoint order (no EMA when it is off).
    fn tensor_sources(&self) -> [(&'static str, Option<&[f32]>); 4] {
        [
            ("", Some(self.network.parameters())),
            (OPTIMISER_M_PREFIX, Some(&self.optimiser.m)),
            (OPTIMISER_V_PREFIX, Some(&self.optimiser.v)),
            (EMA_PREFIX, self.ema.as_deref()),
        ]
    }

    /// Every tensor of the model: weights by layout name, then "optimiser.m.<name>",
    /// "optimiser.v.<name>", and "ema.<name>" when the EMA is on.
    pub fn tensors(&self) -> Vec<NamedTensor> {
        self.tensor_views().into_iter().map(|(name, shape, values)| NamedTensor { name, shape: shape.to_vec(), data: values.to_vec() }).collect()
    }

    /// Every tensor of `tensors()` (same names, shapes and order) as a view on the model's own
    /// storage, for writing a checkpoint without copying: (name, shape, values).
    pub fn tensor_views(&self) -> Vec<(String, &[usize], &[f32])> {
        let mut out = Vec::new();
        for (prefix, values) in self.tensor_sources() {
            let Some(values) = values else { continue };
            for g in &self.layout {
                out.push((format!("{prefix}{}", g.name), &g.shape[..], &values[g.offset..g.offset + g.len()]));
            }
        }
        out
    }

    /// Start of each tensor of `tensor_views()` in memory (same order), for loading a checkpoint
    /// in place: a caller checks the checkpoint with `check_tensor_directory`, then writes each
    /// tensor's values at its address (see `load_tensors` for what a missing tensor means).
    pub fn tensor_addresses(&mut self) -> Vec<(String, usize)> {
        let views = self.tensor_views();
        views.into_iter().map(|(name, _, values)| (name, values.as_ptr() as usize)).collect()
    }

    /// The checks of `load_tensors` on names and shapes only: every name is a known tensor,
    /// every shape matches, and every weight tensor is present.
    pub fn check_tensor_directory(&self, entries: &[(String, Vec<usize>)]) -> CoreResult<()> {
        for (name, shape) in entries {
            let base = base_name(name);
            let group = self.layout.iter().find(|g| g.name == base).ok_or_else(|| CoreError::User(format!("unknown tensor '{name}'")))?;
            if *shape != group.shape {
                return Err(CoreError::User(format!("tensor '{name}' has shape {shape:?}, expected {:?}", group.shape)));
            }
        }
        for g in &self.layout {
            if !entries.iter().any(|(name, _)| *name == g.name) {
                return Err(CoreError::User(format!("missing tensor '{}'", g.name)));
            }
        }
        Ok(())
    }

    /// Loads tensors by name (shapes must match). Weights are required; missing optimiser moments
    /// stay as they are; a missing EMA (with the EMA on) is set to the loaded weights.
    pub fn load_tensors(&mut self, tensors: &[NamedTensor]) -> CoreResult<()> {
        let find = |name: &str| tensors.iter().find(|t| t.name == name);
        for t in tensors {
            if !self.layout.iter().any(|g| g.name == base_name(&t.name)) {
                return Err(CoreError::User(format!("unknown tensor '{}'", t.name)));
            }
        }
        for g in self.layout.clone() {
            let range = g.offset..g.offset + g.len();
            let check = |t: &NamedTensor| -> CoreResult<()> {
                if t.shape != g.shape || t.data.len() != g.len() {
                    return Err(CoreError::User(format!("tensor '{}' has shape {:?}, expected {:?}", t.name, t.shape, g.shape)));
                }
                Ok(())
            };
            let weights = find(&g.name).ok_or_else(|| CoreError::User(format!("missing tensor '{}'", g.name)))?;
            check(weights)?;
            self.network.parameters_mut()[range.clone()].copy_from_slice(&weights.data);
            if let Some(t) = find(&format!("{OPTIMISER_M_PREFIX}{}", g.name)) {
                check(t)?;
                self.optimiser.m[range.clone()].copy_from_slice(&t.data);
            }
            if let Some(t) = find(&format!("{OPTIMISER_V_PREFIX}{}", g.name)) {
                check(t)?;
                self.optimiser.v[range.clone()].copy_from_slice(&t.data);
            }
            if let Some(ema) = self.ema.as_mut() {
                let source = match find(&format!("{EMA_PREFIX}{}", g.name)) {
                    Some(t) => {
                        check(t)?;
                        &t.data
                    }
                    None => &weights.data,
                };
                ema[range].copy_from_slice(source);
            }
        }
        self.check_finite_state()
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

    /// A model from `state_json` (freshly initialised weights: load the tensors next). A state of
    /// an older build is completed by `parse_state`'s rule.
    pub fn from_state_json(json: &str) -> CoreResult<Model> {
        let state = parse_state(json)?;
        let seed: u64 = state.seed.parse().map_err(|_| CoreError::User(format!("invalid seed '{}'", state.seed)))?;
        let mut model = Model::new(state.model, state.training, seed)?;
        model.step = state.step;
        model.optimiser.updates = state.step;
        if let Some(history) = state.importance {
            if history.timesteps() != model.model_config.timesteps {
                return Err(CoreError::user("importance history does not match T"));
            }
            if model.importance.is_none() {
                return Err(CoreError::User(
                    format!("the state holds an importance history but the objective is {:?}", model.training_config.objective).to_lowercase(),
                ));
            }
            finite::check_importance_history(&history, model.model_config.timesteps).map_err(CoreError::User)?;
            model.importance = Some(history);
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Architecture, Parameterisation};
    use crate::model::testing::{batch, heartbeat, model_config, train};
    use crate::objective::ObjectiveKind;
    use crate::optimiser::LrSchedule;

    #[test]
    fn tensors_load_in_place_through_their_addresses() {
        let (length, timesteps) = (6, 8);
        let data = heartbeat(length, 3);
        let training = TrainingConfig { ema_decay: 0.8, ..Default::default() };
        let mut model = Model::new(model_config(Architecture::Paper, Parameterisation::Direct, length, timesteps), training, 12).unwrap();
        train(&mut model, &data, 5, 8);
        let tensors = model.tensors();
        let views = model.tensor_views();
        assert_eq!(views.len(), tensors.len());
        for ((name, shape, values), t) in views.iter().zip(&tensors) {
            assert_eq!((name, *shape, *values), (&t.name, &t.shape[..], &t.data[..]));
        }
        let directory: Vec<(String, Vec<usize>)> = tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
        let mut restored = Model::from_state_json(&model.state_json()).unwrap();
        restored.check_tensor_directory(&directory).unwrap();
        for ((name, address), t) in restored.tensor_addresses().into_iter().zip(&tensors) {
            assert_eq!(name, t.name);
            // SAFETY: the address is the start of this tensor's storage in `restored`, t.data.len() values long.
            unsafe { std::ptr::copy_nonoverlapping(t.data.as_ptr(), address as *mut f32, t.data.len()) };
        }
        assert_eq!(restored.tensors(), tensors);
        // the same refusals as load_tensors
        let mut bad = directory.clone();
        bad[0].0 = "nonsense".into();
        assert_eq!(restored.check_tensor_directory(&bad), Err(CoreError::user("unknown tensor 'nonsense'")));
        let mut bad = directory.clone();
        bad[1].1.push(1);
        assert!(restored.check_tensor_directory(&bad).unwrap_err().message().contains("has shape"));
        let only_moments: Vec<_> = directory.iter().filter(|(n, _)| n.starts_with("optimiser.")).cloned().collect();
        assert!(restored.check_tensor_directory(&only_moments).unwrap_err().message().starts_with("missing tensor"));
    }

    #[test]
    fn checkpoint_round_trip_continues_identically() {
        let (length, timesteps) = (6, 8);
        let data = heartbeat(length, 3);
        let training = TrainingConfig {
            ema_decay: 0.8,
            objective: ObjectiveKind::Importance,
            lr_schedule: LrSchedule::Cosine,
            warmup_steps: 2,
            total_steps: 40,
            weight_decay: 0.01,
            ..Default::default()
        };
        let mut model = Model::new(model_config(Architecture::Mlp, Parameterisation::X0, length, timesteps), training, 12).unwrap();
        train(&mut model, &data, 15, 8);
        let state = model.state_json();
        let tensors = model.tensors();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        let first = &model.layout()[0].name;
        assert!(
            names.contains(&first.as_str()) && names.contains(&format!("optimiser.m.{first}").as_str()) && names.contains(&format!("ema.{first}").as_str())
        );
        assert_eq!(tensors.len(), 4 * model.layout().len());
        let mut restored = Model::from_state_json(&state).unwrap();
        restored.load_tensors(&tensors).unwrap();
        assert_eq!(restored.step(), 15);
        assert_eq!(restored.tensors(), tensors);
        for s in 15..20 {
            let x0 = batch(&data, length, 8, s);
            assert_eq!(model.train_step(&x0, 8).unwrap(), restored.train_step(&x0, 8).unwrap());
        }
        assert_eq!(model.parameters(), restored.parameters());
        assert_eq!(model.sample(5, 1, 0).unwrap(), restored.sample(5, 1, 0).unwrap());
        // errors: unknown names, wrong shapes, missing weights
        let mut bad = tensors.clone();
        bad[0].name = "nonsense".into();
        assert!(restored.load_tensors(&bad).is_err());
        let mut bad = tensors.clone();
        bad[0].shape.push(1);
        assert!(restored.load_tensors(&bad).is_err());
        assert!(Model::from_state_json(&state.replace("\"format_version\":1", "\"format_version\":99")).is_err());
    }

    /// A format-1 state as this build writes it, with its JSON object for editing.
    fn written_state() -> (Model, Value) {
        let training = TrainingConfig {
            ema_decay: 0.5,
            objective: ObjectiveKind::Importance,
            lr_schedule: LrSchedule::Cosine,
            total_steps: 30,
            min_lr_ratio: 0.25,
            ..Default::default()
        };
        let model = Model::new(model_config(Architecture::Circular, Parameterisation::X0, 6, 7), training, 3).unwrap();
        let value = serde_json::from_str(&model.state_json()).unwrap();
        (model, value)
    }

    #[test]
    fn format_1_states_without_the_fields_older_readers_defaulted_load_with_those_defaults() {
        let (model, written) = written_state();
        // every field is written, so a state round-trips unchanged
        assert_eq!(parse_state(&written.to_string()).unwrap(), model.state());
        // the fills are exactly what format-1 readers used (the old serde defaults: the unit-test
        // baseline TrainingConfig, time_embedding 32, kernel 0)
        let mut bare = written.clone();
        bare["model"].as_object_mut().unwrap().retain(|k, _| k != "time_embedding" && k != "kernel");
        bare["training"] = serde_json::json!({});
        bare["importance"] = Value::Null; // the filled-in objective (sampled) keeps no importance history
        let completed = Model::from_state_json(&bare.to_string()).unwrap();
        assert_eq!(completed.training_config, TrainingConfig::default());
        assert_eq!((completed.model_config.time_embedding, completed.model_config.kernel), (32, 0));
        assert_eq!(completed.model_config.hidden, model.model_config.hidden);
        // a field present is never overwritten by a fill
        let mut partial = written.clone();
        partial["training"].as_object_mut().unwrap().remove("min_lr_ratio");
        let loaded = parse_state(&partial.to_string()).unwrap();
        assert_eq!(loaded.training, TrainingConfig { min_lr_ratio: 0.1, ..model.training_config.clone() });
        assert_eq!(loaded.model, model.model_config);
        // fields format 1 always required stay required, and are named
        let mut no_length = written.clone();
        no_length["model"].as_object_mut().unwrap().remove("length");
        assert_eq!(Model::from_state_json(&no_length.to_string()).err(), Some(CoreError::user("invalid model state: missing field `length`")));
        let mut no_step = written.clone();
        no_step.as_object_mut().unwrap().remove("step");
        assert_eq!(parse_state(&no_step.to_string()).err(), Some(CoreError::user("invalid model state: missing field `step`")));
    }

    #[test]
    fn bad_states_are_user_errors() {
        let (_, written) = written_state();
        let with = |key: &str, value: Value| {
            let mut state = written.clone();
            state[key] = value;
            Model::from_state_json(&state.to_string()).err().unwrap()
        };
        assert_eq!(with("format_version", 2.into()), CoreError::user("unsupported model state format 2 (this build reads 1)"));
        assert_eq!(with("format_version", "1".into()), CoreError::user("invalid model state: format_version must be a whole number, got \"1\""));
        assert_eq!(with("seed", "x".into()), CoreError::user("invalid seed 'x'"));
        assert!(with("extra", 1.into()).message().starts_with("invalid model state: unknown field `extra`"));
        let mut bad_config = written.clone();
        bad_config["model"]["hidden"] = 0.into();
        assert_eq!(Model::from_state_json(&bad_config.to_string()).err(), Some(CoreError::user("hidden must be in 1..=4096, got 0")));
        let mut other_t = written.clone();
        other_t["model"]["T"] = 9.into();
        assert_eq!(Model::from_state_json(&other_t.to_string()).err(), Some(CoreError::user("importance history does not match T")));
        assert!(Model::from_state_json("{").err().unwrap().is_user());
        assert_eq!(Model::from_state_json("{}").err(), Some(CoreError::user("invalid model state: missing field `format_version`")));
    }

    #[test]
    fn tensor_names_carry_their_kind_as_a_prefix() {
        assert_eq!(base_name("optimiser.m.blocks.0.w"), "blocks.0.w");
        assert_eq!(base_name("optimiser.v.w"), "w");
        assert_eq!(base_name("ema.w"), "w");
        assert_eq!(base_name("w"), "w");
        assert_eq!(base_name("optimiser.w"), "optimiser.w");
    }
}
