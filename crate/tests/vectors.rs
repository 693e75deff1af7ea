//! The shared JSON test vectors (tests/vectors/*.json, written by tests/vectors/generate.py from
//! independent Python arithmetic) against the Rust core.

use bernoulli_diffusion_core::bernoulli;
use bernoulli_diffusion_core::config::ScheduleKind;
use bernoulli_diffusion_core::rng::Rng;
use bernoulli_diffusion_core::schedule::Schedule;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn u64_of(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn close(actual: f64, expected: f64, relative: f64) -> bool {
    (actual - expected).abs() <= relative * expected.abs() + 1e-280
}

#[test]
fn rng_vectors() {
    let v = load("rng.json");
    for g in v["generators"].as_array().unwrap() {
        let seed = u64_of(&g["seed"]);
        let mut rng = Rng::new(seed);
        assert_eq!(rng.state().to_vec(), u32s(&g["state"]), "seed {seed}");
        for e in u32s(&g["next_u32"]) {
            assert_eq!(rng.next_u32(), e, "seed {seed}");
        }
        let mut rng = Rng::new(seed);
        for e in f64s(&g["uniform_f32"]) {
            assert_eq!(rng.uniform_f32() as f64, e, "seed {seed}");
        }
    }
    for s in v["for_example"].as_array().unwrap() {
        let mut rng = Rng::for_example(u64_of(&s["seed"]), u64_of(&s["step"]), u64_of(&s["index"]));
        assert_eq!(rng.state().to_vec(), u32s(&s["state"]));
        for e in u32s(&s["next_u32"]) {
            assert_eq!(rng.next_u32(), e);
        }
    }
}

#[test]
fn schedule_vectors() {
    let v = load("schedule.json");
    let mut checked = 0;
    for s in v["schedules"].as_array().unwrap() {
        let kind: ScheduleKind = serde_json::from_value(s["kind"].clone()).unwrap();
        let t_max = s["T"].as_u64().unwrap() as usize;
        let schedule = Schedule::new(kind, t_max);
        let (b, c) = (f64s(&s["b"]), f64s(&s["c"]));
        for (i, t) in s["t"].as_array().unwrap().iter().enumerate() {
            let t = t.as_u64().unwrap() as usize;
            let tolerance = if kind == ScheduleKind::Paper { 0.0 } else { 1e-12 };
            if t > 0 {
                assert!(close(schedule.b(t), b[i], tolerance), "{kind:?} T={t_max} t={t}: b {} vs {}", schedule.b(t), b[i]);
            }
            assert!(close(schedule.c(t), c[i], tolerance), "{kind:?} T={t_max} t={t}: c {} vs {}", schedule.c(t), c[i]);
            checked += 1;
        }
    }
    assert!(checked > 50);
}

#[test]
fn posterior_and_marginal_vectors() {
    let v = load("posterior.json");
    for p in v["posterior"].as_array().unwrap() {
        let (x0, xt, b, c_prev) = (p["x0"].as_f64().unwrap(), p["xt"].as_f64().unwrap(), p["b"].as_f64().unwrap(), p["c_prev"].as_f64().unwrap());
        let (q1, q0) = bernoulli::posterior(x0, xt, b, c_prev);
        let (e1, e0) = (p["q1"].as_f64().unwrap(), p["q0"].as_f64().unwrap());
        assert!(close(q1, e1, 1e-14) && close(q0, e0, 1e-14), "{p}: got {q1}, {q0}");
    }
    for m in v["marginal"].as_array().unwrap() {
        let got = bernoulli::marginal(m["x0"].as_f64().unwrap(), m["c"].as_f64().unwrap());
        assert!(close(got, m["p"].as_f64().unwrap(), 1e-15), "{m}: got {got}");
    }
}

#[test]
fn kl_vectors() {
    let v = load("kl.json");
    for k in v["probability"].as_array().unwrap() {
        let (q, p, e) = (k["q"].as_f64().unwrap(), k["p"].as_f64().unwrap(), k["kl_nats"].as_f64().unwrap());
        let got = bernoulli::kl_probabilities(q, p);
        // 1 - q and 1 - p are rounded (error ~1e-16 absolute), which moves the second half of the
        // KL by about |p - q|·1e-16 (and by more relative to a complement near 0)
        let complement_error = 4e-16 * (p - q).abs() / (1.0 - q.max(p)).clamp(1e-300, 1.0);
        assert!((got - e).abs() <= 1e-12 * e + complement_error + 1e-280, "KL({q} || {p}) = {got}, expected {e}");
    }
    for k in v["logit"].as_array().unwrap() {
        let (q, z, e) = (k["q"].as_f64().unwrap(), k["z"].as_f64().unwrap(), k["kl_nats"].as_f64().unwrap());
        let got = bernoulli::kl_from_logit(q, 1.0 - q, z);
        // the logit form is accurate to a few 1e-16 nats absolute (see its doc comment)
        assert!((got - e).abs() <= 1e-12 * e.abs() + 1e-15, "KL({q} || sigmoid({z})) = {got}, expected {e}");
    }
}
