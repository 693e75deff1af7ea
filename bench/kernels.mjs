#!/usr/bin/env node
// Micro-benchmark of the crate's matrix kernels in WebAssembly (simd128), against the f32x4
// multiply-add peak of the same build: `node bench/kernels.mjs [--json FILE] [--compare REF | --relaxed] [--rounds N]`.
//
// --relaxed: the working tree built twice, as the package's two wasm builds (simd128, and
// relaxed-simd whose gemm multiply-adds are f32x4.relaxed_madd), measured alternately like
// --compare, both as shares of the simd128 build's peak in the same round (so the ratio column
// is the speed ratio).
//
// --compare REF: also builds the kernels as of git revision REF (its crate/src/linalg.rs and
// simd.rs, with this tree's bench/kernels/ harness) and measures both builds in this process, alternating, N rounds
// (default 3); each figure is a share of the peak measured in the same round by the same
// build, and the table shows the median over rounds for REF and for the working tree. On a busy
// machine only such same-run ratios mean anything.
//
// crate/src/linalg.rs is compiled alone (bench/kernels/, C-ABI exports, no wasm-bindgen) into
// target/kernel-bench/. Times are CPU time of this process (process.cpuUsage), best of 5 runs of
// at least 40 ms each, so a busy machine slows the numbers less than wall-clock time would.
// The shapes are those of one training step of the networks (forward and backward).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = ['crate/src/linalg.rs', 'crate/src/simd.rs', 'crate/src/conv.rs', 'bench/kernels/lib.rs', 'bench/kernels/Cargo.toml'];
const option = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);

/** Builds bench/kernels under `root` into `targetDir` (relaxed: the relaxed-SIMD build); returns the .wasm path. */
function build(root, targetDir, relaxed = false) {
  const wasmPath = path.join(targetDir, 'wasm32-unknown-unknown', 'release', 'kernel_bench.wasm');
  const sources = SOURCES.map((s) => path.join(root, s));
  if (fs.existsSync(wasmPath) && sources.every((s) => fs.statSync(s).mtimeMs < fs.statSync(wasmPath).mtimeMs)) return wasmPath;
  // Same two paths as scripts/build-wasm.sh: a rustc with a wasm32 std, or Debian's rustc-web
  // building std from source (-Z build-std, RUSTC_BOOTSTRAP=1).
  const env = { ...process.env, CARGO_TARGET_DIR: targetDir };
  const args = ['build', '--release', '--target', 'wasm32-unknown-unknown', '--manifest-path', path.join(root, 'bench/kernels/Cargo.toml')];
  const features = `-C target-feature=+simd128${relaxed ? ',+relaxed-simd' : ''}`;
  let hasStd = false;
  try {
    const libdir = execFileSync('rustc', ['--print', 'target-libdir', '--target', 'wasm32-unknown-unknown'], { encoding: 'utf8' }).trim();
    hasStd = fs.existsSync(libdir) && fs.readdirSync(libdir).some((f) => f.startsWith('libstd-'));
  } catch {
    hasStd = false;
  }
  if (hasStd) {
    env.RUSTFLAGS = features;
  } else {
    env.PATH = `/usr/bin:${env.PATH}`;
    env.RUSTC_BOOTSTRAP = '1';
    const linker = ['wasm-ld-19', 'wasm-ld'].find((l) => {
      try {
        execFileSync('sh', ['-c', `command -v ${l}`]);
        return true;
      } catch {
        return false;
      }
    });
    if (!linker) throw new Error('no wasm-ld found (apt-get install lld-19)');
    env.RUSTFLAGS = `${features} -C linker=${linker}`;
    args.push('-Z', 'build-std=std,panic_abort');
  }
  console.error(`building the kernels for wasm32 (${relaxed ? 'relaxed-simd' : 'simd128'}) in ${path.relative(repo, targetDir)}...`);
  execFileSync('cargo', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return wasmPath;
}

/** The kernel sources as of git revision `ref`, copied under target/kernel-bench-ref/src. */
function sourcesAt(ref) {
  const dir = path.join(repo, 'target', 'kernel-bench-ref');
  const src = path.join(dir, 'src');
  for (const file of SOURCES) {
    // the kernels as of REF, the export harness (bench/kernels/) of the working tree
    // (a kernel file REF does not have yet, such as conv.rs before the U-Net, comes from the working tree)
    const atRef = () => {
      try {
        return execFileSync('git', ['-C', repo, 'show', `${ref}:${file}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return fs.readFileSync(path.join(repo, file), 'utf8');
      }
    };
    const text = file.startsWith('crate/') ? atRef() : fs.readFileSync(path.join(repo, file), 'utf8');
    const to = path.join(src, file);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    if (!fs.existsSync(to) || fs.readFileSync(to, 'utf8') !== text) fs.writeFileSync(to, text);
  }
  return { root: src, targetDir: path.join(dir, 'target') };
}

const instantiate = async (wasm) => (await WebAssembly.instantiate(fs.readFileSync(wasm), {})).instance.exports;
const compareRef = option('--compare');
// --relaxed: the working tree's plain build beside its relaxed-SIMD build (the package's two wasm
// builds, src/wasm.ts), both as shares of the plain build's peak of the same round
const relaxedMode = process.argv.includes('--relaxed');
if (relaxedMode && compareRef) throw new Error('--relaxed and --compare go one at a time');
if (relaxedMode) v8.setFlagsFromString('--experimental-wasm-relaxed-simd'); // Node 20; on by default from 22
const builds = [];
if (compareRef) {
  const { root, targetDir } = sourcesAt(compareRef);
  builds.push({ label: compareRef, w: await instantiate(build(root, targetDir)) });
}
builds.push({ label: relaxedMode ? 'simd128' : 'working tree', w: await instantiate(build(repo, path.join(repo, 'target', 'kernel-bench'))) });
if (relaxedMode) builds.push({ label: 'relaxed-simd', w: await instantiate(build(repo, path.join(repo, 'target', 'kernel-bench-relaxed'), true)) });

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** Best CPU time (ms) of one call of fn, over 5 runs of at least 40 ms. */
function time(fn) {
  fn();
  let reps = 1;
  for (;;) {
    const t0 = cpuMs();
    for (let i = 0; i < reps; i++) fn();
    if (cpuMs() - t0 >= 40) break;
    reps *= 2;
  }
  let best = Infinity;
  for (let run = 0; run < 5; run++) {
    const t0 = cpuMs();
    for (let i = 0; i < reps; i++) fn();
    best = Math.min(best, (cpuMs() - t0) / reps);
  }
  return best;
}

const PEAK_ITERATIONS = 20000;

/** Peak and every kernel's time for one build (its exports `w`). */
function measure(w) {
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
    const a = buffer(m * k),
      b = buffer(k * n),
      c = buffer(m * n),
      aux = buffer(m * n);
    const ms = time(() => w.gemm(m, k, n, a, at, b, bt, c, EPILOGUE[epilogue], aux, 1));
    return { name, shape: `${m}x${k}x${n}`, flops: 2 * m * k * n, ms };
  }
  function conv(name, rows, l, c, kernel, backward) {
    const h = buffer(rows * l * c),
      taps = buffer(kernel * c),
      bias = buffer(rows * c),
      m = buffer(rows * l * c),
      dh = buffer(rows * l * c),
      dt = buffer(kernel * c);
    const ms = time(() => w.conv(rows, l, c, kernel, h, taps, bias, m, dh, dt, backward, 1));
    return { name, shape: `${rows}x${l}x${c}, K=${kernel}`, flops: 2 * rows * l * c * kernel * (backward ? 2 : 1), ms };
  }

  /**
   * One U-Net convolution (network/unet.rs, zero padding) on an h×w grid, forward or backward
   * (dW, dbias and dx): kind 'same' (3 taps per axis longer than 1), 'down' (stride 2 to the
   * ceil-halved grid), 'up' (nearest upsampling from the ceil-halved grid, then the convolution),
   * 'skip' (the 1×1 projection). count: calls per training step of the network (the section's total
   * weights the row by it).
   */
  function unetConv(name, rows, height, width, cIn, cOut, kind, reluInput, backward, count) {
    const plan = w.conv_plan(height, width, { same: 0, down: 1, up: 2, skip: 3 }[kind]);
    const half = (n) => Math.ceil(n / 2);
    const taps = kind === 'skip' ? 1 : (height > 1 ? 3 : 1) * (width > 1 ? 3 : 1);
    const pin = kind === 'up' ? half(height) * half(width) : height * width;
    const pout = kind === 'down' ? half(height) * half(width) : height * width;
    const x = buffer(rows * pin * cIn),
      wt = buffer(taps * cIn * cOut),
      b = buffer(cOut),
      y = buffer(rows * pout * cOut),
      dx = buffer(rows * pin * cIn),
      dw = buffer(taps * cIn * cOut),
      db = buffer(cOut);
    const ms = time(() => w.conv_grid(plan, rows, cIn, cOut, reluInput ? 1 : 0, x, wt, b, y, dx, dw, db, backward ? 1 : 0, 1));
    // flops of the products (zero-padding taps included, as the kernels compute them): forward
    // y = cols·W; backward dW = colsᵀ·dy and dcols = dy·Wᵀ
    const flops = 2 * rows * pout * taps * cIn * cOut * (backward ? 2 : 1);
    return { name: `${name} ${backward ? 'bwd' : 'fwd'}`, shape: `${rows}x${pout}x${taps * cIn}->${cOut}`, flops: flops * count, ms: ms * count, count };
  }
  /**
   * Every convolution call of one U-Net training shard: grid h×w, channels C, one block per
   * level, levels as network/unet.rs's default (the longest side ceil-halved to at most 4).
   */
  function unetStep(rows, height, width, c) {
    const out = [];
    const grids = [[height, width]];
    while (Math.max(...grids.at(-1)) > 4) grids.push(grids.at(-1).map((n) => (n > 1 ? Math.ceil(n / 2) : 1)));
    const label = ([h, w]) => (h === 1 ? `${w}` : `${h}x${w}`);
    grids.forEach(([h, wd], j) => {
      const last = j === grids.length - 1;
      const calls = [[`L${j} ${label([h, wd])} block C->C`, c, c, 'same', true, last ? 2 : 3]];
      if (!last) {
        calls.push([`L${j} ${label([h, wd])} down`, c, c, 'down', false, 1]);
        calls.push([`L${j} ${label([h, wd])} up`, c, c, 'up', false, 1]);
        calls.push([`L${j} ${label([h, wd])} block 2C->C`, 2 * c, c, 'same', true, 1]);
        calls.push([`L${j} ${label([h, wd])} skip 1x1`, 2 * c, c, 'skip', false, 1]);
      }
      for (const [name, cIn, cOut, kind, relu, count] of calls) {
        for (const backward of [false, true]) out.push(unetConv(name, rows, h, wd, cIn, cOut, kind, relu, backward, count));
      }
    });
    return out;
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
    [
      'circular conv, 256 rows, L=20, C=32',
      [conv('fwd', 256, 20, 32, 20, 0), conv('bwd', 256, 20, 32, 20, 1), conv('fwd K=5', 256, 20, 32, 5, 0), conv('bwd K=5', 256, 20, 32, 5, 1)],
    ],
  ];
  // The U-Net's convolutions, every call of a training shard (builds of older revisions, under
  // --compare, lack them): MNIST (28x28, C = 32, batch 128 in 8 shards of 16 rows) and the
  // heartbeat (L = 20, C = 32, batch 256 in 8 shards of 32 rows)
  if (w.conv_grid) {
    sections.push(['unet MNIST 28x28, C=32, one shard of 16 rows (weighted by calls per step)', unetStep(16, 28, 28, 32)]);
    sections.push(['unet heartbeat L=20, C=32, one shard of 32 rows (weighted by calls per step)', unetStep(32, 1, 20, 32)]);
  }
  return { peakGflops, sections };
}

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};
const pct = (x) => `${(100 * x).toFixed(0)}%`.padStart(4);

if (builds.length === 1) {
  const { peakGflops, sections } = measure(builds[0].w);
  const results = { peak_gflops: peakGflops, sections: [] };
  console.log(`peak (f32x4 mul+add, one core): ${peakGflops.toFixed(1)} GFLOP/s\n`);
  for (const [title, rows] of sections) {
    const flops = rows.reduce((s, r) => s + r.flops, 0),
      ms = rows.reduce((s, r) => s + r.ms, 0);
    const total = flops / ms / 1e6;
    console.log(`${title}: ${total.toFixed(1)} GFLOP/s, ${((100 * total) / peakGflops).toFixed(0)}% of peak`);
    for (const r of rows) {
      const g = r.flops / r.ms / 1e6;
      console.log(`  ${r.name.padEnd(36)} ${r.shape.padEnd(20)} ${g.toFixed(1).padStart(5)} GFLOP/s ${((100 * g) / peakGflops).toFixed(0).padStart(3)}%`);
    }
    results.sections.push({ title, gflops: total, ratio: total / peakGflops, kernels: rows.map((r) => ({ ...r, gflops: r.flops / r.ms / 1e6 })) });
  }
  const jsonAt = process.argv.indexOf('--json');
  if (jsonAt > 0) fs.writeFileSync(process.argv[jsonAt + 1], JSON.stringify(results, null, 2) + '\n');
} else {
  const rounds = Number(option('--rounds') ?? 3);
  const loadBefore = os.loadavg()[0];
  // runs[b][round] = { peakGflops, sections }, builds alternating within each round
  const runs = builds.map(() => []);
  for (let round = 0; round < rounds; round++) builds.forEach((b, i) => runs[i].push(measure(b.w)));
  const share = (run, s, k, peak) => {
    const rows = run.sections[s][1];
    const r = k === undefined ? { flops: rows.reduce((a, x) => a + x.flops, 0), ms: rows.reduce((a, x) => a + x.ms, 0) } : rows[k];
    return r.flops / r.ms / 1e6 / peak;
  };
  const peakOf = (i, round) => (relaxedMode ? runs[0][round] : runs[i][round]).peakGflops;
  const med = (i, s, k) => median(runs[i].map((run, round) => share(run, s, k, peakOf(i, round))));
  console.log(
    `share of the f32x4 peak measured in the same round by ${relaxedMode ? 'the simd128 build' : 'the same build'}; median of ${rounds} rounds; 1-minute load ${loadBefore.toFixed(1)} -> ${os.loadavg()[0].toFixed(1)}`,
  );
  console.log(`peak GFLOP/s (median): ${builds.map((b, i) => `${b.label} ${median(runs[i].map((r) => r.peakGflops)).toFixed(1)}`).join(', ')}\n`);
  console.log(`${''.padEnd(58)} ${builds.map((b) => b.label.slice(0, 12).padStart(12)).join(' ')}   ratio`);
  runs[0][0].sections.forEach(([title, rows], s) => {
    const [a, b] = [med(0, s), med(1, s)];
    console.log(`${title.padEnd(58)} ${pct(a).padStart(12)} ${pct(b).padStart(12)}   x${(b / a).toFixed(2)}`);
    rows.forEach((r, k) => {
      const [x, y] = [med(0, s, k), med(1, s, k)];
      console.log(`  ${r.name.padEnd(36)} ${r.shape.padEnd(20)} ${pct(x).padStart(12)} ${pct(y).padStart(12)}   x${(y / x).toFixed(2)}`);
    });
  });
}
