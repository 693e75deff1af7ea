//! Where a U-Net training step's time goes, natively (the wasm build runs the same kernels):
//! one shard of `rows` images (the unit a worker runs) at a given grid, channels C, one block per
//! level. Times the whole network's forward and backward, then every convolution call of the
//! network on its own (forward; backward split into the weight gradient and the input gradient),
//! and the matrix products inside each call alone, so gather/scatter (im2col, col2im) = call -
//! products. What is left of the network's time (time embedding, τ adds, residual adds, concat,
//! output layer) is the whole minus the convolutions.
//!
//!   cargo run --release -p bernoulli-diffusion-core --example unet_profile -- [rows] [side] [channels]

use bernoulli_diffusion_core::config::{Architecture, ModelConfig, Padding, Parameterisation, ScheduleKind};
use bernoulli_diffusion_core::conv::{conv_backward, conv_forward, AxisMap, ConvPlan, ConvShape};
use bernoulli_diffusion_core::linalg::{self, Epilogue, Layout};
use bernoulli_diffusion_core::network::build_network;
use bernoulli_diffusion_core::rng::Rng;

const BUDGET: usize = 1 << 20; // as network/unet.rs

#[repr(C)]
struct Timespec {
    seconds: i64,
    nanoseconds: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
}

/// This thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID = 3 on Linux): a busy machine
/// (other processes on the same cores) slows it less than wall-clock time.
fn cpu_seconds() -> f64 {
    let mut t = Timespec { seconds: 0, nanoseconds: 0 };
    // SAFETY: clock_gettime writes one timespec.
    let ok = unsafe { clock_gettime(3, &mut t) };
    assert_eq!(ok, 0, "clock_gettime");
    t.seconds as f64 + t.nanoseconds as f64 * 1e-9
}

/// Median CPU seconds of `f` over enough repeats to fill ~`target` seconds (at least 5).
fn time(target: f64, mut f: impl FnMut()) -> f64 {
    f();
    let start = cpu_seconds();
    f();
    let once = (cpu_seconds() - start).max(1e-7);
    let repeats = ((target / once) as usize).clamp(5, 1000);
    let mut samples: Vec<f64> = (0..repeats)
        .map(|_| {
            let s = cpu_seconds();
            f();
            cpu_seconds() - s
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[repeats / 2]
}

fn axis(in_len: usize, out_len: usize, stride: usize, upsample: bool) -> AxisMap {
    AxisMap { in_len, out_len, kernel: 3, stride, dilation: 1, upsample, circular: false }
}

fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect()
}

struct Call {
    name: String,
    plan: ConvPlan,
    c_in: usize,
    c_out: usize,
    relu_input: bool,
    /// How many times the network makes this call per pass.
    count: usize,
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let rows = args.first().copied().unwrap_or(16);
    let side = args.get(1).copied().unwrap_or(28);
    let c = args.get(2).copied().unwrap_or(32);
    let config = ModelConfig {
        length: side * side,
        timesteps: 1000,
        schedule: ScheduleKind::Paper,
        architecture: Architecture::Unet,
        parameterisation: Parameterisation::X0,
        hidden: 128,
        layers: 2,
        time_embedding: 32,
        kernel: 0,
        shape: Some(vec![side, side]),
        channels: c,
        max_channels: 0,
        levels: 0,
        blocks: 1,
        padding: Padding::Zero,
        position_embedding: None,
        dropout: 0.0,
    };
    let mut rng = Rng::new(1);
    let mut net = build_network(&config, &mut rng);
    for v in net.parameters_mut() {
        *v = (rng.uniform_f32() - 0.5) * 0.2;
    }
    let xt: Vec<f32> = (0..rows * config.length).map(|_| if rng.uniform_f32() < 0.5 { 1.0 } else { 0.0 }).collect();
    let t: Vec<u32> = (0..rows).map(|r| 1 + (r as u32 * 37) % 1000).collect();
    let mut logits = vec![0.0; rows * config.length];
    let dlogits = random(rows * config.length, &mut rng);
    let mut grad = vec![0.0; net.parameters().len()];
    let net_forward = time(0.5, || net.forward(&xt, &t, &mut logits));
    let net_step = time(1.0, || {
        net.forward(&xt, &t, &mut logits);
        net.backward(&dlogits, &mut grad);
    });
    let net_backward = net_step - net_forward;
    println!("U-Net {side}x{side}, C {c}, {} parameters, shard of {rows} rows", net.parameters().len());
    println!(
        "network: forward {:.2} ms, backward {:.2} ms, step {:.2} ms = {:.0} images/s on one core",
        net_forward * 1e3,
        net_backward * 1e3,
        net_step * 1e3,
        rows as f64 / net_step
    );

    // The network's convolution calls (unet.rs, one block per level, zero padding).
    let levels = bernoulli_diffusion_core::network::unet::default_levels([side, side]);
    let grids: Vec<usize> = (0..levels)
        .scan(side, |g, _| {
            let here = *g;
            *g = g.div_ceil(2);
            Some(here)
        })
        .collect();
    let same = |g: usize| ConvPlan::new(axis(g, g, 1, false), axis(g, g, 1, false));
    let mut calls = vec![Call { name: format!("stem {side}"), plan: same(side), c_in: 2, c_out: c, relu_input: false, count: 1 }];
    for (j, &g) in grids.iter().enumerate() {
        let up = j + 1 < levels;
        calls.push(Call { name: format!("block {g} C->C"), plan: same(g), c_in: c, c_out: c, relu_input: true, count: if up { 3 } else { 2 } });
        if up {
            let h = grids[j + 1];
            calls.push(Call {
                name: format!("down {g}->{h}"),
                plan: ConvPlan::new(axis(g, h, 2, false), axis(g, h, 2, false)),
                c_in: c,
                c_out: c,
                relu_input: false,
                count: 1,
            });
            calls.push(Call {
                name: format!("up {h}->{g}"),
                plan: ConvPlan::new(axis(h, g, 1, true), axis(h, g, 1, true)),
                c_in: c,
                c_out: c,
                relu_input: false,
                count: 1,
            });
            calls.push(Call { name: format!("block {g} 2C->C"), plan: same(g), c_in: 2 * c, c_out: c, relu_input: true, count: 1 });
            calls.push(Call { name: format!("skip {g} 1x1"), plan: ConvPlan::pointwise(g * g), c_in: 2 * c, c_out: c, relu_input: false, count: 1 });
        }
    }
    println!(
        "{:<16} {:>5} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} | {:>7}",
        "call (ms, ×count)", "count", "fwd", "fwd gemm", "im2col", "bwd", "dW gemm", "dX gemm", "gth+sct", "GFLOP/s"
    );
    let (mut total_fwd, mut total_bwd, mut total_gemm, mut total_flops) = (0.0, 0.0, 0.0, 0.0);
    let mut cols = Vec::new();
    for call in &calls {
        let plan = &call.plan;
        let (pin, pout, width) = (plan.in_positions, plan.out_positions, plan.taps * call.c_in);
        let shape = ConvShape { rows, c_in: call.c_in, c_out: call.c_out, relu_input: call.relu_input };
        let x = random(rows * pin * call.c_in, &mut rng);
        let w = random(width * call.c_out, &mut rng);
        let bias = random(call.c_out, &mut rng);
        let dy = random(rows * pout * call.c_out, &mut rng);
        let mut y = vec![0.0; rows * pout * call.c_out];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; call.c_out];
        let mut dx = vec![0.0; x.len()];
        let fwd = time(0.1, || conv_forward(plan, shape, &x, &w, Some(&bias), &mut y, &mut cols, BUDGET));
        let bwd = time(0.1, || conv_backward(plan, shape, &x, &w, &dy, &mut dw, Some(&mut db), Some(&mut dx), &mut cols, BUDGET));
        let m = rows * pout;
        let a = random(m * width, &mut rng);
        let mut out = vec![0.0; m * call.c_out];
        let mut dcols = vec![0.0; m * width];
        let g_fwd =
            time(0.1, || linalg::gemm(m, width, call.c_out, &a, Layout::Normal, &w, Layout::Normal, &mut out, Epilogue::Bias { bias: &bias, relu: false }));
        let g_dw = time(0.1, || linalg::matmul_tn_add(width, m, call.c_out, &a, &dy, &mut dw));
        let g_dx = time(0.1, || linalg::gemm(m, call.c_out, width, &dy, Layout::Normal, &w, Layout::Transposed, &mut dcols, Epilogue::Set));
        let n = call.count as f64;
        let flops = 2.0 * (m * width * call.c_out) as f64;
        println!(
            "{:<16} {:>5} | {:>8.3} {:>8.3} {:>8.3} | {:>8.3} {:>8.3} {:>8.3} {:>8.3} | {:>7.1}",
            call.name,
            call.count,
            fwd * 1e3,
            g_fwd * 1e3,
            (fwd - g_fwd) * 1e3,
            bwd * 1e3,
            g_dw * 1e3,
            g_dx * 1e3,
            (bwd - g_dw - g_dx) * 1e3,
            3.0 * flops / (fwd + bwd) * 1e-9
        );
        total_fwd += n * fwd;
        total_bwd += n * bwd;
        total_gemm += n * (g_fwd + g_dw + g_dx);
        total_flops += n * 3.0 * flops;
    }
    println!(
        "convolutions: forward {:.2} ms, backward {:.2} ms (products {:.2} ms, gather/scatter {:.2} ms); {:.1} GFLOP/s over the convs",
        total_fwd * 1e3,
        total_bwd * 1e3,
        total_gemm * 1e3,
        (total_fwd + total_bwd - total_gemm) * 1e3,
        total_flops / (total_fwd + total_bwd) * 1e-9
    );
    println!(
        "rest of the network (time embedding, τ/residual adds, concat, output, stem features): forward {:.2} ms, backward {:.2} ms",
        (net_forward - total_fwd) * 1e3,
        (net_backward - total_bwd) * 1e3
    );
    let iterations = 2_000_000;
    let peak = time(0.3, || {
        std::hint::black_box(linalg::peak_multiply_add(std::hint::black_box(iterations), 0.5));
    });
    println!("f32x4 mul+add peak (native, this build): {:.1} GFLOP/s", (iterations as u64 * linalg::PEAK_FLOPS_PER_ITERATION) as f64 / peak * 1e-9);
}
