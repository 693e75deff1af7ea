#!/usr/bin/env node
// Micro-benchmark of the crate's matrix kernels in WebAssembly (simd128), against the f32x4
// multiply-add peak of the same build: `node bench/kernels.mjs [--json FILE]`.
//
// crate/src/linalg.rs is compiled alone (bench/kernels/, C-ABI exports, no wasm-bindgen) into
// target/kernel-bench/. Times are CPU time of this process (process.cpuUsage), best of 5 runs of
// at least 40 ms each, so a busy machine slows the numbers less than wall-clock time would.
// The shapes are those of one training step of the networks (forward and backward).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const targetDir = path.join(root, 'target', 'kernel-bench');
const wasmPath = path.join(targetDir, 'wasm32-unknown-unknown', 'release', 'kernel_bench.wasm');

function build() {
  const sources = [path.join(root, 'crate/src/linalg.rs'), path.join(root, 'crate/src/simd.rs'), path.join(root, 'crate/src/conv.rs'), path.join(root, 'bench/kernels/lib.rs'), path.join(root, 'bench/kernels/Cargo.toml')];
  if (fs.existsSync(wasmPath) && sources.every((s) => fs.statSync(s).mtimeMs < fs.statSync(wasmPath).mtimeMs)) return;
  // Same two paths as scripts/build-wasm.sh: a rustc with a wasm32 std, or Debian's rustc-web
  // building std from source (-Z build-std, RUSTC_BOOTSTRAP=1).
  const env = { ...process.env, CARGO_TARGET_DIR: targetDir };
  const args = ['build', '--release', '--target', 'wasm32-unknown-unknown', '--manifest-path', path.join(root, 'bench/kernels/Cargo.toml')];
  let hasStd = false;
  try {
    const libdir = execFileSync('rustc', ['--print', 'target-libdir', '--target', 'wasm32-unknown-unknown'], { encoding: 'utf8' }).trim();
    hasStd = fs.existsSync(libdir) && fs.readdirSync(libdir).some((f) => f.startsWith('libstd-'));
  } catch {
    hasStd = false;
  }
  if (hasStd) {
    env.RUSTFLAGS = '-C target-feature=+simd128';
  } else {
    env.PATH = `/usr/bin:${env.PATH}`;
    env.RUSTC_BOOTSTRAP = '1';
    const linker = ['wasm-ld-19', 'wasm-ld'].find((l) => {
      try { execFileSync('sh', ['-c', `command -v ${l}`]); return true; } catch { return false; }
    });
    if (!linker) throw new Error('no wasm-ld found (apt-get install lld-19)');
    env.RUSTFLAGS = `-C target-feature=+simd128 -C linker=${linker}`;
    args.push('-Z', 'build-std=std,panic_abort');
  }
  console.error('building the kernels for wasm32 (simd128)...');
  execFileSync('cargo', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

build();
const { instance } = await WebAssembly.instantiate(fs.readFileSync(wasmPath), {});
const w = instance.exports;

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
/** Best CPU time (ms) of one call of fn, over 5 runs of at least 40 ms. */
function time(fn) {
  fn();
  let reps = 1;
  for (;;) { const t0 = cpuMs(); for (let i = 0; i < reps; i++) fn(); if (cpuMs() - t0 >= 40) break; reps *= 2; }
  let best = Infinity;
  for (let run = 0; run < 5; run++) { const t0 = cpuMs(); for (let i = 0; i < reps; i++) fn(); best = Math.min(best, (cpuMs() - t0) / reps); }
  return best;
}

const PEAK_ITERATIONS = 20000;
const peakGflops = (w.peak_flops_per_iteration() * PEAK_ITERATIONS) / time(() => w.peak(PEAK_ITERATIONS, 0.5)) / 1e6;

function buffer(n) {
  const ptr = w.alloc_f32(Math.max(n, 1));
  const view = new Float32Array(w.memory.buffer, ptr, n);
  for (let i = 0; i < n; i++) view[i] = Math.random() - 0.5;
  return ptr;
}
const EPILOGUE = { set: 0, add: 1, bias: 2, 'bias+relu': 3, mask: 4 };
/** One product C (m×n) from A (m×k) and B (k×n); at/bt: stored transposed. */
function gemm(name, m, k, n, { at = 0, bt = 0, epilogue = 'set' } = {}) {
  const a = buffer(m * k), b = buffer(k * n), c = buffer(m * n), aux = buffer(m * n);
  const ms = time(() => w.gemm(m, k, n, a, at, b, bt, c, EPILOGUE[epilogue], aux, 1));
  return { name, shape: `${m}x${k}x${n}`, flops: 2 * m * k * n, ms };
}
function conv(name, rows, l, c, kernel, backward) {
  const h = buffer(rows * l * c), taps = buffer(kernel * c), bias = buffer(rows * c), m = buffer(rows * l * c), dh = buffer(rows * l * c), dt = buffer(kernel * c);
  const ms = time(() => w.conv(rows, l, c, kernel, h, taps, bias, m, dh, dt, backward, 1));
  return { name, shape: `${rows}x${l}x${c}, K=${kernel}`, flops: 2 * rows * l * c * kernel * (backward ? 2 : 1), ms };
}

/** One U-Net block convolution (3 taps per axis, relu on the input, im2col + gemm) on an h×w grid. */
function gridConv(name, rows, height, width, c, backward) {
  const plan = w.conv_plan(height, width);
  const taps = (height > 1 ? 3 : 1) * (width > 1 ? 3 : 1), p = height * width;
  const x = buffer(rows * p * c), wt = buffer(taps * c * c), b = buffer(c), y = buffer(rows * p * c), dx = buffer(rows * p * c), dw = buffer(taps * c * c), db = buffer(c);
  const ms = time(() => w.conv_grid(plan, rows, c, c, x, wt, b, y, dx, dw, db, backward, 1));
  // flops of the products (zero-padding taps included, as im2col computes them)
  return { name, shape: `${rows}x${height === 1 ? width : `${height}x${width}`}x${c}, K=${taps}`, flops: 2 * rows * p * taps * c * c * (backward ? 2 : 1), ms };
}
function unetConv(rows, height, width, c) {
  return [gridConv('fwd  conv(relu(h))', rows, height, width, c, 0), gridConv('bwd  dW += colsᵀ·dy, dx += scatter(dy·Wᵀ)', rows, height, width, c, 1)];
}

/** The products of one forward + backward of the paper network (L -> H -> H, readout H -> L). */
function paperStep(rows, L = 20, H = 50) {
  return [
    gemm('fwd  shared.0  relu(x·W0 + b0)', rows, L, H, { epilogue: 'bias+relu' }),
    gemm('fwd  shared.1  relu(h1·W1 + b1)', rows, H, H, { epilogue: 'bias+relu' }),
    gemm('fwd  readout   h2·R_t + r_t', rows, H, L, { epilogue: 'bias' }),
    gemm('bwd  dR_t += h2ᵀ·dlogits', H, rows, L, { at: 1, epilogue: 'add' }),
    gemm('bwd  dh2 = (dlogits·R_tᵀ)⊙[h2>0]', rows, L, H, { bt: 1, epilogue: 'mask' }),
    gemm('bwd  dW1 += h1ᵀ·dh2', H, rows, H, { at: 1, epilogue: 'add' }),
    gemm('bwd  dh1 = (dh2·W1ᵀ)⊙[h1>0]', rows, H, H, { bt: 1, epilogue: 'mask' }),
    gemm('bwd  dW0 += xᵀ·dh1', L, rows, H, { at: 1, epilogue: 'add' }),
  ];
}
function mlpBlock(rows, H) {
  return [
    gemm('fwd  relu(h·W1 + b1)', rows, H, H, { epilogue: 'bias+relu' }),
    gemm('bwd  dW += aᵀ·dh', H, rows, H, { at: 1, epilogue: 'add' }),
    gemm('bwd  da = (dh·W2ᵀ)⊙[a>0]', rows, H, H, { bt: 1, epilogue: 'mask' }),
  ];
}

const sections = [
  ['paper, L=20, H=50, batch 2048 (one t)', paperStep(2048)],
  ['paper, L=20, H=50, batch 64 (one t)', paperStep(64)],
  ['mlp block, H=128, 256 rows', mlpBlock(256, 128)],
  ['mlp block, H=64, 256 rows', mlpBlock(256, 64)],
  ['unet conv, 128 rows, L=20, C=32', unetConv(128, 1, 20, 32)],
  ['unet conv, 128 rows, L=20, C=64', unetConv(128, 1, 20, 64)],
  ['unet conv, 128 rows, L=64, C=32', unetConv(128, 1, 64, 32)],
  ['unet conv, 128 rows, L=64, C=64', unetConv(128, 1, 64, 64)],
  ['unet conv, 16 rows, 28x28, C=32', unetConv(16, 28, 28, 32)],
  ['unet conv, 16 rows, 28x28, C=64', unetConv(16, 28, 28, 64)],
  ['unet conv, 64 rows, 14x14, C=64', unetConv(64, 14, 14, 64)],
  ['unet conv, 256 rows, 7x7, C=64', unetConv(256, 7, 7, 64)],
  ['circular conv, 256 rows, L=20, C=32', [conv('fwd', 256, 20, 32, 20, 0), conv('bwd', 256, 20, 32, 20, 1), conv('fwd K=5', 256, 20, 32, 5, 0), conv('bwd K=5', 256, 20, 32, 5, 1)]],
];

const results = { peak_gflops: peakGflops, sections: [] };
console.log(`peak (f32x4 mul+add, one core): ${peakGflops.toFixed(1)} GFLOP/s\n`);
for (const [title, rows] of sections) {
  const flops = rows.reduce((s, r) => s + r.flops, 0), ms = rows.reduce((s, r) => s + r.ms, 0);
  const total = flops / ms / 1e6;
  console.log(`${title}: ${total.toFixed(1)} GFLOP/s, ${(100 * total / peakGflops).toFixed(0)}% of peak`);
  for (const r of rows) {
    const g = r.flops / r.ms / 1e6;
    console.log(`  ${r.name.padEnd(36)} ${r.shape.padEnd(20)} ${g.toFixed(1).padStart(5)} GFLOP/s ${(100 * g / peakGflops).toFixed(0).padStart(3)}%`);
  }
  results.sections.push({ title, gflops: total, ratio: total / peakGflops, kernels: rows.map((r) => ({ ...r, gflops: r.flops / r.ms / 1e6 })) });
}
const jsonAt = process.argv.indexOf('--json');
if (jsonAt > 0) fs.writeFileSync(process.argv[jsonAt + 1], JSON.stringify(results, null, 2) + '\n');
