//! Training settings and the parameter update: AdamW (decoupled weight decay on the groups
//! marked `decay` in the network's layout), global-norm gradient clipping, learning-rate
//! schedules, and an exponential moving average (EMA) of the weights.

use crate::elementary::{cos, powi};
use crate::error::{CoreError, CoreResult};
use crate::network::ParameterGroup;
use crate::objective::ObjectiveKind;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// lr after the warm-up.
    Constant,
    /// After the warm-up, cosine decay from lr to lr·min_lr_ratio at total_steps.
    Cosine,
}

/// The training settings the core needs (JSON from TypeScript, snake_case). Every field is
/// required: the defaults live in TypeScript's `DEFAULTS` only, so none can drift here (a missing
/// field is a user error naming it; old checkpoint states are completed in checkpoint.rs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub lr: f64,
    pub lr_schedule: LrSchedule,
    /// Linear warm-up from lr/warmup_steps to lr over the first warmup_steps steps (0 = none).
    pub warmup_steps: u64,
    /// Length of the run (the cosine schedule reaches its floor here).
    pub total_steps: u64,
    /// Floor of the cosine schedule, as a fraction of lr.
    pub min_lr_ratio: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay λ (θ ← θ - lr·λ·θ on weight groups only).
    pub weight_decay: f64,
    /// Global-norm clipping threshold (0 = off).
    pub clip_norm: f64,
    /// EMA decay of the weights (0 = off); sampling and evaluation use the EMA when on.
    pub ema_decay: f64,
    pub objective: ObjectiveKind,
}

/// A baseline for unit tests only (not compiled into the library: production configs come whole
/// from TypeScript).
#[cfg(test)]
impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            lr: 1e-3,
            lr_schedule: LrSchedule::Constant,
            warmup_steps: 0,
            total_steps: 0,
            min_lr_ratio: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: 1.0,
            ema_decay: 0.0,
            objective: ObjectiveKind::Sampled,
        }
    }
}

impl TrainingConfig {
    pub fn validate(&self) -> CoreResult<()> {
        let finite_nonnegative = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(CoreError::User(format!("{name} must be a finite number >= 0, got {v}")))
            }
        };
        finite_nonnegative("lr", self.lr)?;
        finite_nonnegative("weight_decay", self.weight_decay)?;
        finite_nonnegative("clip_norm", self.clip_norm)?;
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(CoreError::User(format!("eps must be > 0, got {}", self.eps)));
        }
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2), ("ema_decay", self.ema_decay)] {
            if !(0.0..1.0).contains(&v) {
                return Err(CoreError::User(format!("{name} must be in [0, 1), got {v}")));
            }
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(CoreError::User(format!("min_lr_ratio must be in [0, 1], got {}", self.min_lr_ratio)));
        }
        if self.lr_schedule == LrSchedule::Cosine && self.total_steps <= self.warmup_steps {
            return Err(CoreError::User(format!("the cosine schedule needs total_steps ({}) > warmup_steps ({})", self.total_steps, self.warmup_steps)));
        }
        Ok(())
    }

    /// The learning rate of optimiser step `step` (0-based: the step that makes update step+1).
    /// Warm-up: lr·(step+1)/warmup_steps for step < warmup_steps. Then constant: lr; cosine:
    /// floor + (lr - floor)·(1 + cos(π·s))/2, s = (step - warmup)/(total - warmup) clamped to
    /// [0, 1], floor = lr·min_lr_ratio.
    pub fn learning_rate(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                let floor = self.lr * self.min_lr_ratio;
                floor + (self.lr - floor) * 0.5 * (1.0 + cos(std::f64::consts::PI * progress))
            }
        }
    }
}

impl TrainingConfig {
    /// The EMA decay of update k (1-based): min(ema_decay, (1 + k)/(10 + k)). Early on the average
    /// forgets fast, so it never keeps the initial weights: with a fixed decay d they would still
    /// weigh d^k in it (0.999^1500 = 0.22 after 1500 steps).
    pub fn ema_decay_at(&self, k: u64) -> f64 {
        self.ema_decay.min((1 + k) as f64 / (10 + k) as f64)
    }
}

/// sqrt(sum g²), accumulated in f64: four running sums over the elements i ≡ 0, 1, 2, 3 (mod 4),
/// added as (s0 + s1) + (s2 + s3) (independent sums, so the additions overlap in the pipeline
/// instead of waiting on each other; the order is fixed, so the result is the same everywhere).
pub fn global_norm(grad: &[f32]) -> f64 {
    let mut sums = [0.0f64; 4];
    let mut quads = grad.chunks_exact(4);
    for quad in &mut quads {
        for (s, &g) in sums.iter_mut().zip(quad) {
            *s += (g as f64) * (g as f64);
        }
    }
    for (s, &g) in sums.iter_mut().zip(quads.remainder()) {
        *s += (g as f64) * (g as f64);
    }
    ((sums[0] + sums[1]) + (sums[2] + sums[3])).sqrt()
}

/// AdamW moments and where weight decay applies.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Consecutive ranges [start, end) of the parameters, all of them in order, with a decay factor
    /// of 1.0 where weight decay applies (groups with decay = true) and 0.0 elsewhere.
    decay_spans: Vec<(usize, usize, f32)>,
    /// Number of updates made (the t of the bias corrections).
    pub updates: u64,
}

impl AdamW {
    pub fn new(layout: &[ParameterGroup], parameter_count: usize) -> Self {
        let mut decays = vec![false; parameter_count];
        for group in layout {
            decays[group.offset..group.offset + group.len()].fill(group.decay);
        }
        let mut decay_spans: Vec<(usize, usize, f32)> = Vec::new();
        for (i, &decay) in decays.iter().enumerate() {
            let factor = if decay { 1.0 } else { 0.0 };
            match decay_spans.last_mut() {
                Some(span) if span.2 == factor => span.1 = i + 1,
                _ => decay_spans.push((i, i + 1, factor)),
            }
        }
        AdamW { m: vec![0.0; parameter_count], v: vec![0.0; parameter_count], decay_spans, updates: 0 }
    }

    /// One update with gradient `grad` (already averaged over the batch), multiplied by
    /// `grad_scale` first (the clipping factor). Per parameter:
    ///   m ← β1 m + (1-β1) g;  v ← β2 v + (1-β2) g²  (each flushed to 0 below 1.2e-38, see
    ///   `flush_subnormal`);  m̂ = m/(1-β1^k);  v̂ = v/(1-β2^k)
    ///   θ ← θ - lr·( m̂/(√v̂ + ε) + λ·θ [decay groups only] )
    pub fn update(&mut self, parameters: &mut [f32], grad: &[f32], grad_scale: f32, config: &TrainingConfig, lr: f64) {
        assert_eq!(parameters.len(), grad.len());
        self.updates += 1;
        let correction1 = 1.0 / (1.0 - powi(config.beta1, self.updates));
        let correction2 = 1.0 / (1.0 - powi(config.beta2, self.updates));
        let (beta1, beta2) = (config.beta1 as f32, config.beta2 as f32);
        let (c1, c2) = (correction1 as f32, correction2 as f32);
        let (lr, eps, decay) = (lr as f32, config.eps as f32, config.weight_decay as f32);
        // per span of equal decay, zipped slices without indexing: the loop has no bounds checks
        // and vectorises (the same operations per element, so the same results)
        for &(start, end, mask) in &self.decay_spans {
            let moments = self.m[start..end].iter_mut().zip(self.v[start..end].iter_mut());
            for ((theta, &g), (m, v)) in parameters[start..end].iter_mut().zip(&grad[start..end]).zip(moments) {
                let g = g * grad_scale;
                *m = flush_subnormal(beta1 * *m + (1.0 - beta1) * g);
                *v = flush_subnormal(beta2 * *v + (1.0 - beta2) * g * g);
                let step = (*m * c1) / ((*v * c2).sqrt() + eps) + decay * mask * *theta;
                *theta -= lr * step;
            }
        }
    }
}

/// x, or 0 when |x| is below the smallest normal f32 (1.2e-38). A moment whose gradient stays 0
/// decays geometrically and would spend ~150 steps as a subnormal number on its way to 0, and
/// arithmetic on subnormals is ~100 times slower on x86 (natively and in wasm alike: neither
/// flushes them); such a moment is far below anything the update can notice.
#[inline(always)]
fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// ema ← d·ema + (1 - d)·θ.
pub fn update_ema(ema: &mut [f32], parameters: &[f32], decay: f64) {
    let (d, keep) = (decay as f32, (1.0 - decay) as f32);
    for (e, &p) in ema.iter_mut().zip(parameters) {
        *e = d * *e + keep * p;
    }
}

/// The clipping factor min(1, clip_norm/‖g‖) (1 when clip_norm = 0 or the norm is 0).
pub fn clip_scale(norm: f64, clip_norm: f64) -> f64 {
    if clip_norm > 0.0 && norm > clip_norm {
        clip_norm / norm
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, offset: usize, len: usize, decay: bool) -> ParameterGroup {
        ParameterGroup { name: name.into(), shape: vec![len], offset, decay }
    }

    #[test]
    fn config_parses_snake_case_requires_every_field_and_rejects_unknown_fields() {
        let json = r#"{"lr": 0.01, "lr_schedule": "cosine", "warmup_steps": 0, "total_steps": 100, "min_lr_ratio": 0.1, "beta1": 0.9,
            "beta2": 0.999, "eps": 1e-8, "weight_decay": 0, "clip_norm": 1, "ema_decay": 0, "objective": "full"}"#;
        let c: TrainingConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.lr, 0.01);
        assert_eq!(c.lr_schedule, LrSchedule::Cosine);
        assert_eq!(c.objective, ObjectiveKind::Full);
        assert_eq!(c.beta2, 0.999);
        assert!(c.validate().is_ok());
        // no field has a default of its own: each missing one is named
        let full: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        assert_eq!(full.len(), 12);
        for field in full.keys() {
            let mut partial = full.clone();
            partial.remove(field);
            let error = serde_json::from_value::<TrainingConfig>(serde_json::Value::Object(partial)).unwrap_err();
            assert_eq!(error.to_string(), format!("missing field `{field}`"));
        }
        assert!(serde_json::from_str::<TrainingConfig>(&json.replace(r#""lr": 0.01"#, r#""learning_rate": 0.01"#)).is_err());
        let bad = TrainingConfig { lr_schedule: LrSchedule::Cosine, total_steps: 0, ..Default::default() };
        assert!(bad.validate().is_err());
        assert!(TrainingConfig { beta1: 1.0, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn learning_rate_schedules() {
        let c = TrainingConfig { lr: 1.0, warmup_steps: 4, total_steps: 14, min_lr_ratio: 0.1, lr_schedule: LrSchedule::Cosine, ..Default::default() };
        assert_eq!(c.learning_rate(0), 0.25);
        assert_eq!(c.learning_rate(3), 1.0);
        assert_eq!(c.learning_rate(4), 1.0);
        assert!((c.learning_rate(9) - (0.1 + 0.9 * 0.5)).abs() < 1e-15); // halfway: floor + (lr-floor)/2
        assert!((c.learning_rate(14) - 0.1).abs() < 1e-15);
        assert!((c.learning_rate(1000) - 0.1).abs() < 1e-15);
        for s in 4..14 {
            assert!(c.learning_rate(s + 1) <= c.learning_rate(s));
        }
        let constant = TrainingConfig { lr: 0.5, ..Default::default() };
        assert_eq!(constant.learning_rate(0), 0.5);
        assert_eq!(constant.learning_rate(12345), 0.5);
    }

    #[test]
    fn adamw_first_step_moves_each_parameter_by_lr_and_decays_only_weights() {
        // first step: m̂ = g, v̂ = g², so the Adam step is lr·g/(|g| + ε) ≈ lr·sign(g)
        let layout = [group("w", 0, 2, true), group("b", 2, 2, false)];
        let mut adam = AdamW::new(&layout, 4);
        let config = TrainingConfig { weight_decay: 0.5, eps: 1e-8, ..Default::default() };
        let mut p = vec![1.0f32, 1.0, 1.0, 1.0];
        adam.update(&mut p, &[0.3, -2.0, 0.3, -2.0], 1.0, &config, 0.1);
        let expected = [1.0 - 0.1 * (1.0 + 0.5), 1.0 - 0.1 * (-1.0 + 0.5), 1.0 - 0.1, 1.0 + 0.1];
        for i in 0..4 {
            assert!((p[i] as f64 - expected[i]).abs() < 1e-6, "{i}: {} vs {}", p[i], expected[i]);
        }
        assert_eq!(adam.updates, 1);
    }

    #[test]
    fn moments_of_a_parameter_without_gradient_reach_zero_instead_of_subnormal_values() {
        let layout = [group("w", 0, 2, true)];
        let mut adam = AdamW::new(&layout, 2);
        let config = TrainingConfig::default();
        let mut p = vec![0.5f32, 0.5];
        adam.update(&mut p, &[0.3, 0.3], 1.0, &config, 0.01);
        for _ in 0..2000 {
            adam.update(&mut p, &[0.0, 0.3], 1.0, &config, 0.01);
            assert!(adam.m[0] == 0.0 || adam.m[0].abs() >= f32::MIN_POSITIVE, "subnormal m {}", adam.m[0]);
            assert!(adam.v[0] == 0.0 || adam.v[0].abs() >= f32::MIN_POSITIVE, "subnormal v {}", adam.v[0]);
        }
        assert_eq!(adam.m[0], 0.0);
        assert!(adam.m[1] > 0.29 && adam.v[1] > 0.05);
    }

    #[test]
    fn adamw_matches_a_scalar_f64_reference_over_many_steps() {
        let layout = [group("w", 0, 1, true)];
        let mut adam = AdamW::new(&layout, 1);
        let config = TrainingConfig { weight_decay: 0.01, beta1: 0.8, beta2: 0.99, ..Default::default() };
        let mut p = [2.0f32];
        let (mut theta, mut m, mut v) = (2.0f64, 0.0f64, 0.0f64);
        for k in 1..=50 {
            let g = (theta - 0.5) * 2.0; // gradient of (θ - 0.5)²
            adam.update(&mut p, &[g as f32], 1.0, &config, 0.05);
            m = 0.8 * m + 0.2 * g;
            v = 0.99 * v + 0.01 * g * g;
            let (mh, vh) = (m / (1.0 - 0.8f64.powi(k)), v / (1.0 - 0.99f64.powi(k)));
            theta -= 0.05 * (mh / (vh.sqrt() + 1e-8) + 0.01 * theta);
            assert!((p[0] as f64 - theta).abs() < 1e-4, "step {k}: {} vs {theta}", p[0]);
        }
    }

    #[test]
    fn clipping_and_ema() {
        assert_eq!(global_norm(&[3.0, 4.0]), 5.0);
        assert_eq!(clip_scale(5.0, 1.0), 0.2);
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert_eq!(clip_scale(5.0, 0.0), 1.0);
        let mut ema = vec![1.0f32, 0.0];
        update_ema(&mut ema, &[0.0, 1.0], 0.75);
        assert_eq!(ema, vec![0.75, 0.25]);
    }

    #[test]
    fn ema_warms_up_and_forgets_the_initial_weights() {
        let config = TrainingConfig { ema_decay: 0.999, ..Default::default() };
        assert_eq!(config.ema_decay_at(1), 2.0 / 11.0); // (1 + k)/(10 + k)
        assert_eq!(config.ema_decay_at(100), 101.0 / 110.0);
        assert!(config.ema_decay_at(8989) < 0.999);
        assert_eq!(config.ema_decay_at(8991), 0.999); // (1 + k)/(10 + k) > 0.999 from k = 8991 on
        assert_eq!(config.ema_decay_at(1_000_000), 0.999);
        // The weight the EMA still gives the initial weights after k updates is the product of the
        // decays: with the warm-up prod_{j<=k} (1+j)/(10+j) = 10!·(k+1)!/(k+10)! = prod_{j=2..10} j/(k+j),
        // below 1e-20 after 1500 updates; with the fixed decay it would be 0.999^1500 = 0.22.
        let mut ema = [1.0f32]; // initial weight 1, every later weight 0
        let mut initial_share = 1.0f64;
        for k in 1..=1500 {
            update_ema(&mut ema, &[0.0], config.ema_decay_at(k));
            initial_share *= config.ema_decay_at(k);
        }
        let closed_form: f64 = (2..=10).map(|j| j as f64 / (1500 + j) as f64).product();
        assert!((initial_share / closed_form - 1.0).abs() < 1e-9, "{initial_share} vs {closed_form}");
        assert!((ema[0] as f64) < 1e-20);
        assert!((0.999f64.powi(1500) - 0.2223).abs() < 1e-3);
    }
}
