//! The native build and the wasm build (pkg/, run under node by tests/native-vs-wasm.mjs) compute
//! the same bits: training steps, a shard's gradient, the weights after them, samples with their
//! frames, inpaintings, the bound and its summary from totals (`summariseBound`), the checkpoint
//! state, and the errors thrown at the boundary (their JavaScript name and message).
//! pkg/ must be built from the current sources: `./scripts/setup.sh` (scripts/test.sh runs it).

use bernoulli_diffusion_core::config::ModelConfig;
use bernoulli_diffusion_core::error::{json_error, CoreError};
use bernoulli_diffusion_core::evaluate::{self, TimeSampling};
use bernoulli_diffusion_core::inpaint::InpaintMode;
use bernoulli_diffusion_core::model::Model;
use bernoulli_diffusion_core::optimiser::TrainingConfig;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Newest modification time of the files under `path` (a file or a directory).
fn newest(path: &Path) -> SystemTime {
    let metadata = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if !metadata.is_dir() {
        return metadata.modified().unwrap();
    }
    std::fs::read_dir(path).unwrap().map(|entry| newest(&entry.unwrap().path())).max().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Fails with one line unless pkg/ holds a wasm build at least as new as the sources it is built from.
fn check_pkg_is_current(root: &Path) {
    let wasm = root.join("pkg/bernoulli_diffusion_core_bg.wasm");
    let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok().filter(|_| root.join("pkg/bernoulli_diffusion_core.js").exists());
    let sources = ["crate/src", "crate/Cargo.toml", "Cargo.toml", "Cargo.lock"].iter().map(|p| newest(&root.join(p))).max().unwrap();
    match built {
        None => panic!("pkg/ has no wasm build: run ./scripts/setup.sh"),
        Some(time) if time < sources => panic!("pkg/ is older than the crate sources: run ./scripts/setup.sh"),
        Some(_) => {}
    }
}

fn hex64(values: &[f64]) -> Vec<String> {
    values.iter().map(|v| format!("{:016x}", v.to_bits())).collect()
}

fn hex32(values: &[f32]) -> Vec<String> {
    values.iter().map(|v| format!("{:08x}", v.to_bits())).collect()
}

fn text(bits: &[u8]) -> String {
    bits.iter().map(|b| char::from(b'0' + b)).collect()
}

fn bits(text: &str) -> Vec<u8> {
    text.bytes().map(|c| c - b'0').collect()
}

/// All phases of the heartbeat: bit i of phase k is 1 when i mod P = k.
fn heartbeat(length: usize, period: usize) -> Vec<u8> {
    (0..period).flat_map(|k| (0..length).map(move |i| (i % period == k) as u8)).collect()
}

/// Network calls of the strided chains compared (`sample_range`, `inpaint_range`).
const STRIDED_STEPS: usize = 3;

/// A scenario, as both builds read it.
fn scenario(model: Value, training: Value, seed: u64, steps: usize, rows: usize) -> Value {
    let length = model["length"].as_u64().unwrap() as usize;
    let period = 3;
    let data = heartbeat(length, period);
    // batch of step s: rows of the heartbeat in a step-dependent order
    let batch = |s: usize, rows: usize| text(&(0..rows).flat_map(|r| data[((r * 7 + s) % period) * length..][..length].to_vec()).collect::<Vec<u8>>());
    let mut pattern = vec![2u8; length];
    pattern[0] = 1;
    pattern[length - 1] = 0;
    json!({
        "model": model, "training": training, "seed": seed,
        "batches": (0..steps).map(|s| batch(s, rows)).collect::<Vec<_>>(),
        "shard": batch(steps, 5), "shard_offset": 3,
        "samples": 7, "sample_seed": 11, "record_every": 3,
        "pattern": text(&pattern), "inpaint_modes": [["clamp", null], ["smc", 3]],
        "data": text(&data), "repeats": 4, "bound_seed": 5, "strata": 3,
    })
}

fn scenarios() -> Vec<Value> {
    let training = |objective: &str, ema_decay: f64, lr_schedule: &str| {
        json!({ "lr": 0.01, "lr_schedule": lr_schedule, "warmup_steps": 2, "total_steps": 20, "min_lr_ratio": 0.1, "beta1": 0.9,
                "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01, "clip_norm": 1.0, "ema_decay": ema_decay, "objective": objective })
    };
    let model = |architecture: &str, parameterisation: &str, schedule: &str, timesteps: usize| {
        json!({ "length": 8, "T": timesteps, "schedule": schedule, "architecture": architecture, "parameterisation": parameterisation,
                "hidden": 16, "layers": 2, "time_embedding": 8, "kernel": 0, "shape": null, "channels": 8, "levels": 0, "blocks": 1,
                "padding": "zero", "position_embedding": null, "dropout": 0.0 })
    };
    let with_dropout = |mut model: Value, p: f64| {
        model["dropout"] = json!(p);
        model
    };
    vec![
        // the default architecture with the importance objective (6 bins of t fill within the steps), EMA, cosine lr
        scenario(model("mlp", "x0", "paper", 6), training("importance", 0.9, "cosine"), 3, 12, 16),
        // the paper's network, direct kernel (the f32 terms), full sum over t
        scenario(model("paper", "direct", "cosine", 9), training("full", 0.0, "constant"), 4, 6, 5),
        // circular convolutions, sampled t
        scenario(model("circular", "x0", "linear", 7), training("sampled", 0.5, "cosine"), 5, 8, 9),
        // the U-Net (im2col convolutions), sampled t
        scenario(model("unet", "x0", "paper", 7), training("sampled", 0.5, "constant"), 6, 6, 8),
        // the U-Net with dropout (masks from the per-example training-noise stream), full sum over t
        scenario(with_dropout(model("unet", "x0", "paper", 5), 0.25), training("full", 0.5, "constant"), 7, 6, 6),
    ]
}

fn error_value(error: CoreError) -> Value {
    json!({ "name": error.js_name(), "message": error.message() })
}

/// What tests/native-vs-wasm.mjs computes, natively.
fn native(s: &Value) -> Value {
    let model_config: ModelConfig = serde_json::from_value(s["model"].clone()).unwrap();
    let training_config: TrainingConfig = serde_json::from_value(s["training"].clone()).unwrap();
    let length = model_config.length;
    let mut model = Model::new(model_config.clone(), training_config, s["seed"].as_u64().unwrap()).unwrap();
    let reports: Vec<Vec<String>> = s["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|batch| {
            let batch = bits(batch.as_str().unwrap());
            let r = model.train_step(&batch, batch.len() / length).unwrap();
            hex64(&[r.loss_bits, r.grad_norm, r.lr, if r.finite { 1.0 } else { 0.0 }])
        })
        .collect();
    let shard = bits(s["shard"].as_str().unwrap());
    let step = model.step();
    let (loss_sum, gradient) = model.compute_gradient(&shard, shard.len() / length, s["shard_offset"].as_u64().unwrap(), step).unwrap();
    let gradient = hex32(gradient);
    let (n, sample_seed) = (s["samples"].as_u64().unwrap() as usize, s["sample_seed"].as_u64().unwrap());
    let sampled = model.sample(n, sample_seed, s["record_every"].as_u64().unwrap() as usize).unwrap();
    let pattern = bits(s["pattern"].as_str().unwrap());
    let inpainted: Vec<String> = s["inpaint_modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mode = InpaintMode::from_name(m[0].as_str(), m[1].as_u64().map(|p| p as usize)).unwrap();
            text(&model.inpaint(&pattern, n, sample_seed, mode).unwrap())
        })
        .collect();
    // a strided chain of 3 network calls (x0 models only): samples, then 2-particle SMC completions
    let strided = if s["model"]["parameterisation"] == "x0" {
        let samples = model.sample_range(0, n, sample_seed, STRIDED_STEPS, 0).unwrap().bits;
        let completions = model.inpaint_range(&pattern, 0, n, sample_seed, STRIDED_STEPS, InpaintMode::Smc { particles: 2 }).unwrap();
        text(&samples) + &text(&completions)
    } else {
        String::new()
    };
    let data = bits(s["data"].as_str().unwrap());
    let (rows, repeats, bound_seed) = (data.len() / length, s["repeats"].as_u64().unwrap() as usize, s["bound_seed"].as_u64().unwrap());
    let e = model.evaluate_bound(&data, rows, repeats, TimeSampling::Full, bound_seed).unwrap();
    let bound = hex64(&[&[e.mean, e.mc_stderr, e.sequence_stderr][..], &e.per_sequence].concat());
    let strata = s["strata"].as_u64().unwrap() as usize;
    let stratified = hex64(&model.bound_totals(&data, rows, repeats, TimeSampling::Stratified(strata), bound_seed, 0, 0..rows * repeats).unwrap());
    let totals = model.bound_totals(&data, rows, repeats, TimeSampling::Full, bound_seed, 0, 0..rows * repeats).unwrap();
    let e = evaluate::summarise(&totals, rows, repeats);
    let summary = hex64(&[&[e.mean, e.mc_stderr, e.sequence_stderr][..], &e.per_sequence].concat());
    let mut without = s["training"].clone();
    without.as_object_mut().unwrap().remove("min_lr_ratio");
    let missing_field = json_error("invalid training config", &serde_json::from_value::<TrainingConfig>(without).unwrap_err());
    json!({
        "reports": reports,
        "loss_sum": hex64(&[loss_sum])[0],
        "gradient": gradient,
        "parameters": hex32(model.parameters()),
        "samples": text(&sampled.bits),
        "frames": text(&sampled.frames),
        "inpainted": inpainted,
        "strided": strided,
        "bound": bound,
        "summary": summary,
        "stratified": stratified,
        "state": model.state_json(),
        "errors": {
            "missing_field": error_value(missing_field),
            "bad_pattern": error_value(model.inpaint(&[3], 1, 0, InpaintMode::default()).unwrap_err()),
            "gradient_length": error_value(model.apply_gradient(&[0.0; 3], 0.0, 1).unwrap_err()),
            "summary_length": error_value(CoreError::internal("expected rows × repeats = 2 × 2 totals, got 3")),
        },
    })
}

/// The first difference between two JSON values, as "path: wasm vs native".
fn first_difference(path: &str, wasm: &Value, native: &Value) -> Option<String> {
    match (wasm, native) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| first_difference(&format!("{path}.{k}"), a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null)))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y))
        }
        _ => (wasm != native).then(|| format!("{path}: wasm {wasm} vs native {native}")),
    }
}

#[test]
fn native_and_wasm_builds_compute_the_same_bits() {
    let root = repository();
    check_pkg_is_current(&root);
    let scenarios = scenarios();
    let mut node = Command::new("node")
        .arg(root.join("tests/native-vs-wasm.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (needed to run the wasm build): {e}"));
    node.stdin.take().unwrap().write_all(Value::Array(scenarios.clone()).to_string().as_bytes()).unwrap();
    let output = node.wait_with_output().unwrap();
    assert!(output.status.success(), "tests/native-vs-wasm.mjs failed: {}", String::from_utf8_lossy(&output.stderr));
    let wasm: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(wasm.len(), scenarios.len());
    for (k, (s, from_wasm)) in scenarios.iter().zip(&wasm).enumerate() {
        let from_native = native(s);
        if let Some(difference) = first_difference(&format!("scenario {k}"), from_wasm, &from_native) {
            panic!("{difference}");
        }
        // the comparison is not vacuous: the runs trained, sampled and evaluated something
        assert!(from_native["reports"].as_array().unwrap().len() >= 6);
        assert!(from_native["samples"].as_str().unwrap().contains('1'));
        if s["model"]["parameterisation"] == "x0" {
            let strided = from_native["strided"].as_str().unwrap();
            assert_eq!(strided.len(), 2 * s["samples"].as_u64().unwrap() as usize * s["model"]["length"].as_u64().unwrap() as usize);
            assert!(strided.contains('1') && strided.contains('0'));
        }
        assert_eq!(from_native["errors"]["missing_field"]["name"], "UserError");
        assert_eq!(from_native["errors"]["missing_field"]["message"], "invalid training config: missing field `min_lr_ratio`");
        assert_eq!(from_native["errors"]["gradient_length"]["name"], "InternalError");
    }
}
