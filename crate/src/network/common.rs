//! Pieces the architectures share: building a layout, initialisation, the dense layer's
//! forward and backward on the flat parameter vector, and the time features of t.

use super::ParameterGroup;
use crate::config::{ModelConfig, Parameterisation};
use crate::elementary;
use crate::linalg::{self, Epilogue, Layout};
use crate::rng::Rng;
use crate::schedule::Schedule;

/// Appends named groups one after another, tracking the running offset.
#[derive(Default)]
pub(crate) struct LayoutBuilder {
    pub groups: Vec<ParameterGroup>,
    pub total: usize,
}

impl LayoutBuilder {
    /// Adds a group and returns its offset.
    pub fn add(&mut self, name: &str, shape: &[usize], decay: bool) -> usize {
        let offset = self.total;
        let group = ParameterGroup { name: name.to_string(), shape: shape.to_vec(), offset, decay };
        self.total += group.len();
        self.groups.push(group);
        offset
    }
}

/// Grows a scratch buffer to at least `n` values (never shrinks, so no allocation once the
/// largest batch has been seen).
pub(crate) fn ensure_len(buffer: &mut Vec<f32>, n: usize) {
    if buffer.len() < n {
        buffer.resize(n, 0.0);
    }
}

/// Fills `values` with uniform(-bound, bound) draws, in order.
pub(crate) fn init_uniform(values: &mut [f32], bound: f32, rng: &mut Rng) {
    for v in values {
        *v = (2.0 * rng.uniform_f32() - 1.0) * bound;
    }
}

/// y[rows×n_out] = x[rows×n_in]·W + b (W stored [n_in, n_out]), then ReLU if asked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_forward(rows: usize, n_in: usize, n_out: usize, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], relu: bool) {
    linalg::linear(rows, n_in, n_out, x, weight, bias, y, relu);
}

/// For y = x·W + b with upstream dy: dW += xᵀ·dy and db += Σ_r dy; then, if `dx` is given,
/// dx = epilogue(dy·Wᵀ): `Epilogue::Set`, `Add` (dx += dy·Wᵀ), or `Mask { mask: x }` when x is
/// a ReLU output (dx = (dy·Wᵀ) ⊙ [x > 0], the gradient at the ReLU's input).
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_backward(
    rows: usize,
    n_in: usize,
    n_out: usize,
    x: &[f32],
    dy: &[f32],
    weight: &[f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
    dx: Option<(&mut [f32], Epilogue)>,
) {
    linalg::matmul_tn_add(n_in, rows, n_out, x, dy, dweight);
    linalg::add_column_sums(rows, n_out, dy, dbias);
    if let Some((dx, epilogue)) = dx {
        linalg::gemm(rows, n_out, n_in, dy, Layout::Normal, weight, Layout::Transposed, dx, epilogue);
    }
}

/// Per-t inputs of the time-conditioned networks (mlp, circular), tabulated for t = 1..=T with
/// `crate::elementary` (bit-identical natively and in wasm).
pub(crate) struct TimeFeatures {
    /// Width E of the sinusoidal embedding.
    pub width: usize,
    /// embedding[(t-1)·E + j]: j < E/2: sin(τ·ω_j), else cos(τ·ω_{j-E/2}), with τ = 1000·t/T and
    /// ω_j = 10000^(-j/(E/2)) (the transformer / DDPM embedding on a T-independent clock).
    pub embedding: Vec<f32>,
    /// evidence[t-1] = λ_t, the log-odds that a bit survived the noise the network must undo:
    /// x0-parameterisation: λ_t = log((1 - c_t/2)/(c_t/2)) (x_t vs x0);
    /// direct: λ_t = log((1 - b_t/2)/(b_t/2)) (x_t vs x_{t-1}); b_t, c_t from crate::schedule.
    pub evidence: Vec<f32>,
}

impl TimeFeatures {
    pub fn new(config: &ModelConfig) -> Self {
        let steps = config.timesteps;
        let width = config.time_embedding;
        let half = width / 2;
        let mut embedding = vec![0.0f32; steps * width];
        for t in 1..=steps {
            let tau = 1000.0 * t as f64 / steps as f64;
            let row = &mut embedding[(t - 1) * width..t * width];
            for j in 0..half {
                let omega = elementary::exp(-elementary::ln(10000.0) * j as f64 / half as f64); // 10000^(-j/(E/2))
                row[j] = elementary::sin(tau * omega) as f32;
                row[half + j] = elementary::cos(tau * omega) as f32;
            }
        }
        let schedule = Schedule::new(config.schedule, steps);
        let evidence = (1..=steps)
            .map(|t| {
                let rate = match config.parameterisation {
                    Parameterisation::X0 => schedule.c(t),
                    Parameterisation::Direct => schedule.b(t),
                };
                // λ = log((1 - r/2)/(r/2)), r = the rate of replacing a bit by a fair coin
                // (r >= 1e-12 keeps λ finite should a schedule ever start at exactly 0)
                let rate = rate.max(1e-12);
                elementary::ln((1.0 - rate / 2.0) / (rate / 2.0)) as f32
            })
            .collect();
        Self { width, embedding, evidence }
    }

    pub fn embedding_of(&self, t: u32) -> &[f32] {
        let t = t as usize;
        &self.embedding[(t - 1) * self.width..t * self.width]
    }

    pub fn evidence_of(&self, t: u32) -> f32 {
        self.evidence[t as usize - 1]
    }
}

/// Asserts that every t is in 1..=T (a t of 0 or above T is a caller's bug, not a user error).
pub(crate) fn check_times(t: &[u32], steps: usize) {
    for &tr in t {
        assert!(tr >= 1 && tr as usize <= steps, "t must be in 1..={steps}, got {tr}");
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Finite-difference gradient checks shared by the architectures' tests.
    use super::super::ReverseNetwork;
    use crate::config::{Architecture, ModelConfig, Parameterisation, ScheduleKind};
    use crate::rng::Rng;

    /// Every architecture, for tests that hold for all of them.
    pub const ARCHITECTURES: [Architecture; 4] = [Architecture::Paper, Architecture::Mlp, Architecture::Circular, Architecture::Unet];

    pub fn config(architecture: Architecture, length: usize, timesteps: usize, hidden: usize, layers: usize) -> ModelConfig {
        ModelConfig {
            length,
            timesteps,
            schedule: ScheduleKind::Paper,
            architecture,
            parameterisation: Parameterisation::X0,
            hidden,
            layers,
            time_embedding: 6,
            kernel: 0,
            channels: hidden,
            ..ModelConfig::default()
        }
    }

    /// Random bits (as 0.0/1.0) for `rows` rows of length `length`.
    pub fn random_bits(rows: usize, length: usize, rng: &mut Rng) -> Vec<f32> {
        (0..rows * length).map(|_| if rng.bernoulli(0.5) { 1.0 } else { 0.0 }).collect()
    }

    /// Loss = Σ logits·R in f64 (training mode with these noise keys when given).
    fn loss(net: &mut dyn ReverseNetwork, xt: &[f32], t: &[u32], noise_keys: Option<&[u64]>, weights: &[f32], logits: &mut [f32]) -> f64 {
        match noise_keys {
            Some(keys) => net.forward_training(xt, t, keys, logits),
            None => net.forward(xt, t, logits),
        }
        logits.iter().zip(weights).map(|(&z, &w)| z as f64 * w as f64).sum()
    }

    /// Overwrites every parameter with uniform(-0.5, 0.5) (so zero-initialised groups are checked
    /// too), then compares `backward` with central differences of Σ logits·R for EVERY parameter.
    /// Each network is piecewise linear in any single parameter (ReLU), so a difference quotient
    /// is exact up to f32 rounding unless its step crosses a ReLU kink; the check accepts the
    /// central, forward or backward quotient (a kink on one side leaves the other side exact).
    /// Returns the number of parameters checked, per group name.
    pub fn check_gradient(net: &mut dyn ReverseNetwork, xt: &[f32], t: &[u32], seed: u64) -> Vec<(String, usize)> {
        check_gradient_with_steps(net, xt, t, seed, &[1e-2])
    }

    /// `check_gradient` trying each step in turn until one of its three quotients matches: a
    /// deep network (unet) has so many ReLUs that a step of 1e-2 can cross kinks on both sides.
    pub fn check_gradient_with_steps(net: &mut dyn ReverseNetwork, xt: &[f32], t: &[u32], seed: u64, steps: &[f32]) -> Vec<(String, usize)> {
        check_gradient_with_noise(net, xt, t, None, seed, steps)
    }

    /// `check_gradient_with_steps` in training mode when `noise_keys` is given: every pass uses the
    /// same keys, so the same dropout masks, and the loss is a fixed function of the parameters.
    pub fn check_gradient_with_noise(
        net: &mut dyn ReverseNetwork,
        xt: &[f32],
        t: &[u32],
        noise_keys: Option<&[u64]>,
        seed: u64,
        steps: &[f32],
    ) -> Vec<(String, usize)> {
        let mut rng = Rng::new(seed);
        for v in net.parameters_mut() {
            *v = rng.uniform_f32() - 0.5;
        }
        let n_out = xt.len();
        let weights: Vec<f32> = (0..n_out).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
        let mut logits = vec![0.0f32; n_out];
        loss(net, xt, t, noise_keys, &weights, &mut logits);
        let mut grad = vec![0.0f32; net.parameters().len()];
        net.backward(&weights, &mut grad);
        let mut counts = Vec::new();
        let base = loss(net, xt, t, noise_keys, &weights, &mut logits);
        for group in net.layout() {
            for j in group.offset..group.offset + group.len() {
                let analytic = grad[j] as f64;
                let original = net.parameters()[j];
                let tolerance = 5e-4 + 1e-3 * analytic.abs();
                let mut tried = Vec::new();
                for &eps in steps {
                    net.parameters_mut()[j] = original + eps;
                    let plus = loss(net, xt, t, noise_keys, &weights, &mut logits);
                    net.parameters_mut()[j] = original - eps;
                    let minus = loss(net, xt, t, noise_keys, &weights, &mut logits);
                    net.parameters_mut()[j] = original;
                    let up = (original + eps) as f64 - original as f64;
                    let down = original as f64 - (original - eps) as f64;
                    let central = (plus - minus) / (up + down);
                    let forward = (plus - base) / up;
                    let backward = (base - minus) / down;
                    tried.extend([central, forward, backward]);
                    if [central, forward, backward].iter().any(|d| (d - analytic).abs() <= tolerance) {
                        break;
                    }
                }
                let ok = tried.iter().rev().take(3).any(|d| (d - analytic).abs() <= tolerance);
                assert!(ok, "{}[{}]: analytic {analytic}, differences {tried:?}", group.name, j - group.offset);
            }
            counts.push((group.name.clone(), group.len()));
        }
        // backward ADDS into grad, and a repeated forward/backward gives the same gradient
        loss(net, xt, t, noise_keys, &weights, &mut logits);
        let mut again = vec![1.0f32; grad.len()];
        net.backward(&weights, &mut again);
        for (a, g) in again.iter().zip(&grad) {
            assert!((a - 1.0 - g).abs() <= 1e-5 * (1.0 + g.abs()), "{a} - 1 vs {g}");
        }
        counts
    }
}

#[cfg(test)]
pub(crate) mod history {
    //! Results must not depend on earlier calls (scratch buffers are reused across batch sizes).
    use super::super::ReverseNetwork;
    use super::testing::random_bits;
    use crate::rng::Rng;

    /// Runs forward+backward on a big batch, then on a small one, and compares the small one's
    /// logits and gradient bit for bit with a fresh copy of the network (same parameters).
    pub fn check_no_history(used: &mut dyn ReverseNetwork, fresh: &mut dyn ReverseNetwork, length: usize, timesteps: u32) {
        let mut rng = Rng::new(77);
        for v in used.parameters_mut() {
            *v = rng.uniform_f32() - 0.5;
        }
        fresh.parameters_mut().copy_from_slice(used.parameters());
        let n = used.parameters().len();
        let big_rows = 29;
        let xt = random_bits(big_rows, length, &mut rng);
        let t: Vec<u32> = (0..big_rows as u32).map(|r| 1 + (r * 7) % timesteps).collect();
        let mut logits = vec![0.0; big_rows * length];
        used.forward(&xt, &t, &mut logits);
        let dl: Vec<f32> = logits.iter().map(|v| v.sin()).collect();
        used.backward(&dl, &mut vec![0.0; n]);
        let rows = 6;
        let xt = random_bits(rows, length, &mut rng);
        let t: Vec<u32> = (0..rows as u32).map(|r| 1 + (r * 3) % timesteps).collect();
        let dl: Vec<f32> = (0..rows * length).map(|_| rng.uniform_f32() - 0.5).collect();
        let (mut la, mut lb) = (vec![0.0; rows * length], vec![0.0; rows * length]);
        let (mut ga, mut gb) = (vec![0.0; n], vec![0.0; n]);
        used.forward(&xt, &t, &mut la);
        used.backward(&dl, &mut ga);
        fresh.forward(&xt, &t, &mut lb);
        fresh.backward(&dl, &mut gb);
        assert!(la == lb, "logits depend on history");
        for (i, (a, b)) in ga.iter().zip(&gb).enumerate() {
            assert!(a == b, "gradient [{i}] depends on history: {a} vs {b}");
        }
    }
}

#[cfg(test)]
pub(crate) mod allocations {
    //! Counts heap allocations per thread (a test-only global allocator around the system one),
    //! to check that forward and backward allocate nothing once their buffers have grown.
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    struct Counting;

    fn count() {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            System.realloc(ptr, layout, new_size)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations made by this thread while running `f`.
    pub fn count_during(f: impl FnOnce()) -> usize {
        let before = COUNT.with(|c| c.get());
        f();
        COUNT.with(|c| c.get()) - before
    }

    #[test]
    fn forward_and_backward_allocate_nothing_after_the_first_call() {
        use super::super::build_network;
        use super::testing::{config, random_bits, ARCHITECTURES};
        use crate::rng::Rng;
        assert_eq!(count_during(|| drop(std::hint::black_box(vec![1u8; 10]))), 1, "the counter counts");
        for architecture in ARCHITECTURES {
            let cfg = config(architecture, 9, 40, 12, 2);
            let mut rng = Rng::new(3);
            let mut net = build_network(&cfg, &mut rng);
            let mut grad = vec![0.0; net.parameters().len()];
            let xt = random_bits(33, 9, &mut rng);
            // mixed t with groups of every size, then one t for all rows
            let mixed: Vec<u32> = (0..33u32).map(|r| 1 + (r * r) % 40).collect();
            let same = vec![17u32; 33];
            let mut logits = vec![0.0; 33 * 9];
            let dl: Vec<f32> = (0..33 * 9).map(|_| rng.uniform_f32() - 0.5).collect();
            for t in [&mixed, &same] {
                net.forward(&xt, t, &mut logits);
                net.backward(&dl, &mut grad);
            }
            for (rows, t) in [(33, &mixed), (33, &same), (7, &mixed), (1, &same)] {
                let n = count_during(|| {
                    net.forward(&xt[..rows * 9], &t[..rows], &mut logits[..rows * 9]);
                    net.backward(&dl[..rows * 9], &mut grad);
                });
                assert_eq!(n, 0, "{architecture:?}, {rows} rows: {n} allocations");
            }
        }
    }
}
