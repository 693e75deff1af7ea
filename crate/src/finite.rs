//! Guards on a model's state: every value finite (a diverged step or a tampered checkpoint is
//! caught here, instead of being trained on, saved, or reported as a bound of 0), and state read
//! from a checkpoint consistent with the model it belongs to.

use crate::objective::{ImportanceHistory, IMPORTANCE_BINS, IMPORTANCE_HISTORY};

/// True when every value is finite. x - x is 0 for a finite x and NaN for ±∞ and NaN, so a sum of
/// such differences is exactly 0 when all are finite and NaN otherwise: one pass without branches
/// (eight independent sums, so it vectorises), cheap beside a training step.
#[allow(clippy::eq_op)] // x - x is the point: 0 for finite x, NaN otherwise
pub fn all_finite(values: &[f32]) -> bool {
    let mut sums = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += x - x;
        }
    }
    for &x in chunks.remainder() {
        sums[0] += x - x;
    }
    sums.iter().sum::<f32>() == 0.0
}

/// Checks tensors (name, shape, values) as a checkpoint holds them: every value finite, and every
/// second moment ("optimiser.v.*", a running mean of g²) non-negative (a negative one makes the
/// update's square root NaN). The error names the first bad tensor.
pub fn check_tensors<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [f32])>) -> Result<(), String> {
    for (name, values) in tensors {
        if !all_finite(values) {
            let bad = values.iter().find(|v| !v.is_finite()).copied().unwrap_or(f32::NAN);
            return Err(format!("tensor '{name}' holds a non-finite value ({bad}): the checkpoint is from a diverged run or damaged"));
        }
        if name.starts_with("optimiser.v.") {
            if let Some(bad) = values.iter().find(|&&v| v < 0.0) {
                return Err(format!("tensor '{name}' holds a negative second moment ({bad}): the checkpoint is damaged"));
            }
        }
    }
    Ok(())
}

/// Checks an importance history read from a checkpoint against the model's T: its bins, ring
/// buffers and counts have the sizes `ImportanceHistory::new(T)` gives, its positions and counts
/// lie inside the buffers, and its values are finite (they become sampling probabilities).
pub fn check_importance_history(history: &ImportanceHistory, timesteps: usize) -> Result<(), String> {
    let bins = IMPORTANCE_BINS.min(timesteps);
    if history.timesteps != timesteps {
        return Err(format!("the importance state is for T = {}, the model has T = {timesteps}", history.timesteps));
    }
    if history.counts.len() != bins || history.next.len() != bins {
        return Err(format!(
            "the importance state has {} counts and {} positions, expected {bins} of each for T = {timesteps}",
            history.counts.len(),
            history.next.len()
        ));
    }
    if history.values.len() != bins * IMPORTANCE_HISTORY {
        return Err(format!(
            "the importance state holds {} values, expected {} ({bins} bins × {IMPORTANCE_HISTORY})",
            history.values.len(),
            bins * IMPORTANCE_HISTORY
        ));
    }
    if let Some(bad) = history.counts.iter().chain(&history.next).find(|&&c| c as usize > IMPORTANCE_HISTORY) {
        return Err(format!("the importance state has a count or position of {bad}, above the history length {IMPORTANCE_HISTORY}"));
    }
    if let Some(k) = history.next.iter().position(|&n| n as usize == IMPORTANCE_HISTORY) {
        return Err(format!("the importance state's position of bin {k} is {IMPORTANCE_HISTORY}, past the end of its history"));
    }
    if let Some(bad) = history.values.iter().find(|v| !v.is_finite()) {
        return Err(format!("the importance state holds a non-finite value ({bad})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_one_nan_or_infinity_anywhere() {
        for n in [0usize, 1, 7, 8, 9, 64, 1001] {
            let values: Vec<f32> = (0..n).map(|i| (i as f32 - 500.0) * 1e30).collect();
            assert!(all_finite(&values), "{n}");
            for position in [0, n / 2, n.saturating_sub(1)] {
                if n == 0 {
                    continue;
                }
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut broken = values.clone();
                    broken[position] = bad;
                    assert!(!all_finite(&broken), "{n} values, {bad} at {position}");
                }
            }
        }
        // the largest finite values do not overflow the check (x - x is 0, never x + x)
        assert!(all_finite(&[f32::MAX, -f32::MAX, f32::MIN_POSITIVE]));
    }

    #[test]
    fn check_tensors_names_the_first_bad_tensor() {
        let good = [1.0f32, -2.0];
        let nan = [1.0f32, f32::NAN];
        let negative = [0.5f32, -1e-3];
        assert!(check_tensors([("w", &good[..]), ("optimiser.v.w", &good[..1])]).is_ok());
        let error = check_tensors([("w", &good[..]), ("ema.w", &nan[..])]).unwrap_err();
        assert!(error.starts_with("tensor 'ema.w' holds a non-finite value (NaN)"), "{error}");
        // a negative first moment is fine, a negative second moment is not
        assert!(check_tensors([("optimiser.m.w", &negative[..])]).is_ok());
        let error = check_tensors([("optimiser.v.w", &negative[..])]).unwrap_err();
        assert!(error.contains("'optimiser.v.w' holds a negative second moment"), "{error}");
    }

    #[test]
    fn importance_histories_of_the_wrong_size_or_with_bad_values_are_refused() {
        let mut history = ImportanceHistory::new(30);
        for t in 1..=30 {
            history.record(t, 0.5);
        }
        assert!(check_importance_history(&history, 30).is_ok());
        assert!(check_importance_history(&ImportanceHistory::new(200), 200).is_ok());
        let refused = |h: &ImportanceHistory, timesteps: usize, expected: &str| {
            let error = check_importance_history(h, timesteps).unwrap_err();
            assert!(error.contains(expected), "{error}");
        };
        refused(&history, 31, "is for T = 30");
        let mut short = history.clone();
        short.values.pop();
        refused(&short, 30, "holds 7679 values, expected 7680");
        let mut fewer = history.clone();
        fewer.counts.pop();
        refused(&fewer, 30, "has 29 counts and 30 positions");
        let mut past = history.clone();
        past.next[3] = IMPORTANCE_HISTORY as u32;
        refused(&past, 30, "position of bin 3");
        let mut large = history.clone();
        large.counts[0] = 100_000;
        refused(&large, 30, "count or position of 100000");
        let mut nan = history.clone();
        nan.values[17] = f64::NAN;
        refused(&nan, 30, "non-finite value (NaN)");
    }

    // ---- the guards in use: a diverging model, and checkpoints with broken state ----

    use crate::config::{Architecture, ModelConfig, Parameterisation, ScheduleKind};
    use crate::model::Model;
    use crate::objective::ObjectiveKind;
    use crate::optimiser::TrainingConfig;

    fn small_model(training: TrainingConfig) -> Model {
        let config = ModelConfig {
            length: 6,
            timesteps: 10,
            schedule: ScheduleKind::Paper,
            architecture: Architecture::Mlp,
            parameterisation: Parameterisation::X0,
            hidden: 8,
            layers: 1,
            time_embedding: 4,
            kernel: 0,
            ..ModelConfig::default()
        };
        Model::new(config, training, 3).unwrap()
    }

    fn heartbeat_batch() -> Vec<u8> {
        (0..8).flat_map(|r| (0..6).map(move |i| (i % 3 == r % 3) as u8)).collect()
    }

    #[test]
    fn a_step_reports_whether_the_state_is_still_finite() {
        // lr 10 with weight decay 10 (both in the documented ranges): θ ← θ(1 - lr·λ) - … grows
        // by ~99× per step until it overflows f32 (issue 16); a sane run stays finite.
        let batch = heartbeat_batch();
        let mut sane = small_model(TrainingConfig { ema_decay: 0.9, ..Default::default() });
        for _ in 0..30 {
            assert!(sane.train_step(&batch, 8).unwrap().finite);
        }
        assert!(sane.check_finite_state().is_ok());
        let mut diverging = small_model(TrainingConfig { lr: 10.0, weight_decay: 10.0, ema_decay: 0.9, ..Default::default() });
        let mut first_bad = None;
        for s in 1..=60 {
            let report = diverging.train_step(&batch, 8).unwrap();
            if !report.finite {
                first_bad = Some(s);
                break;
            }
        }
        let first_bad = first_bad.expect("lr 10 with weight decay 10 did not diverge in 60 steps");
        assert!(first_bad > 1, "diverged at step {first_bad}");
        assert!(!diverging.state_is_finite());
        assert!(diverging.check_finite_state().unwrap_err().message().contains("holds a non-finite value"));
    }

    #[test]
    fn loading_refuses_non_finite_tensors_and_names_them() {
        let mut model = small_model(TrainingConfig { ema_decay: 0.9, objective: ObjectiveKind::Importance, ..Default::default() });
        model.train_step(&heartbeat_batch(), 8).unwrap();
        let tensors = model.tensors();
        let state = model.state_json();
        for (index, bad) in [(0, f32::NAN), (tensors.len() / 2, f32::INFINITY), (tensors.len() - 1, f32::NEG_INFINITY)] {
            let mut broken = tensors.clone();
            broken[index].data[0] = bad;
            let mut restored = Model::from_state_json(&state).unwrap();
            let error = restored.load_tensors(&broken).unwrap_err();
            assert!(error.message().starts_with(&format!("tensor '{}' holds a non-finite value", broken[index].name)), "{error}");
        }
        let mut restored = Model::from_state_json(&state).unwrap();
        assert!(restored.load_tensors(&tensors).is_ok());
    }

    #[test]
    fn a_tampered_importance_state_is_refused_at_load() {
        let mut model = small_model(TrainingConfig { objective: ObjectiveKind::Importance, ..Default::default() });
        model.train_step(&heartbeat_batch(), 8).unwrap();
        let state = model.state_json();
        assert!(Model::from_state_json(&state).is_ok());
        let mut parsed: serde_json::Value = serde_json::from_str(&state).unwrap();
        parsed["importance"]["next"][0] = serde_json::json!(100_000);
        let error = Model::from_state_json(&parsed.to_string()).err().expect("a position past the history was accepted");
        assert!(error.message().contains("count or position of 100000"), "{error}");
        let mut parsed: serde_json::Value = serde_json::from_str(&state).unwrap();
        parsed["importance"]["values"].as_array_mut().unwrap().truncate(3);
        assert!(Model::from_state_json(&parsed.to_string()).err().unwrap().message().contains("holds 3 values"));
        // an importance state in a model that does not sample by importance
        let mut parsed: serde_json::Value = serde_json::from_str(&state).unwrap();
        parsed["training"]["objective"] = serde_json::json!("sampled");
        assert_eq!(Model::from_state_json(&parsed.to_string()).err().unwrap().message(), "the state holds an importance history but the objective is sampled");
    }
}
