//! Dense f32 kernels for the networks' forward and backward passes.
//!
//! One driver, `gemm`, computes C (m×n) from A (m×k, or stored transposed) and B (k×n, or stored
//! transposed), all row-major and contiguous, and finishes with an `Epilogue` (set, add, bias and
//! ReLU, ReLU mask, bias and residual). The named functions below are the products the networks
//! use; then one-row helpers (a readout of its own per row), the depthwise circular convolution
//! of the circular network, column sums (bias gradients) and the peak loop for benchmarks.
//!
//! How it is fast: B is packed once per call into zero-padded panels of NR = 8 columns (p-major
//! inside a panel, so the inner loop reads it sequentially); then register-blocked micro-kernels
//! keep an MR×NR = 4×8 tile of C in 8 four-lane accumulators while running over p, each step
//! loading one row of the B panel (2 vectors), broadcasting 4 values of A, and doing 8 vector
//! multiply-adds. The lanes are `simd::F4`: `core::arch::wasm32::v128` on wasm32 with simd128,
//! natively `[f32; 4]`, which LLVM vectorises. Partial tiles at the right and bottom edges use
//! the same kernel with fewer rows / one vector, store only the valid lanes, and are compiled
//! out of line (V8 allocates registers worse in one huge function: measured, 10-30% slower).
//! Long reductions (weight gradients over a batch) run in chunks of p that stay in L1.
//!
//! Rounding is fixed by the definition, not by the tiling: every element of the product is
//! s = ((0 + a_0·b_0) + a_1·b_1) + ... (p in order, each product and sum rounded to f32, no FMA),
//! then combined with C or the bias by the epilogue. Every tile size, chunking and both builds
//! (native and wasm) therefore give bit-identical results, equal to that plain loop (the tests
//! check this natively; crate/tests/native_vs_wasm.rs checks whole steps against the wasm build).
//! The relaxed-SIMD wasm build (`F4::add_product`) does each s + a·b as one `f32x4.relaxed_madd`
//! instead, fused (one rounding) on FMA hardware: still the same order for every tiling, so its
//! results too are independent of tile sizes, chunks and how rows are split among workers.

use crate::simd::F4;
use std::cell::RefCell;

/// Rows of C per micro-kernel tile.
const MR: usize = 4;
/// Columns of C per micro-kernel tile (two four-lane vectors).
const NR: usize = 8;

/// What happens to the finished sum s = Σ_p A[i,p]·B[p,j] of each element.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// C = s.
    Set,
    /// C = C + s.
    Add,
    /// C = (bias[j] + s), then max(·, 0) if `relu` (the sum starts at bias[j] instead of 0).
    Bias { bias: &'a [f32], relu: bool },
    /// C = s where mask[i, j] > 0, else 0 (the ReLU backward: mask is the ReLU output, m×n).
    Mask { mask: &'a [f32] },
    /// C = (bias[j] + s) + residual[i, j] (a residual block's output; residual is m×n).
    Residual { bias: &'a [f32], residual: &'a [f32] },
}

/// How a matrix operand is stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    /// As named: A is [m×k], B is [k×n].
    Normal,
    /// Transposed: A is stored [k×m], B is stored [n×k].
    Transposed,
}

thread_local! {
    /// Packed B panels, padded bias and partial sums, grown to the largest call seen (no
    /// allocation after that).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Budget (in f32 values) for the packed B chunk: B is read again for every block of MR rows, so
/// the chunk has to stay in cache (L2 at least) while every row block runs over it. Long
/// reductions (a weight gradient xᵀ·dy over a big batch) are cut into chunks of p this size.
const CHUNK_VALUES: usize = 16384;

/// C (m×n) = epilogue(Σ_p A[i,p]·B[p,j]) for A (m×k) and B (k×n) stored as `a_layout`/`b_layout`.
///
/// The p range is cut into chunks (long reductions only, e.g. the weight gradient xᵀ·dy over a
/// batch); between chunks each element's running sum waits in a scratch buffer, so the order of
/// the additions, and thus the result, is the same as without chunks.
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, k: usize, n: usize, a: &[f32], a_layout: Layout, b: &[f32], b_layout: Layout, c: &mut [f32], epilogue: Epilogue) {
    assert!(a.len() >= m * k, "A has {} values, needs {}", a.len(), m * k);
    assert!(b.len() >= k * n, "B has {} values, needs {}", b.len(), k * n);
    assert!(c.len() >= m * n, "C has {} values, needs {}", c.len(), m * n);
    match epilogue {
        Epilogue::Bias { bias, .. } => assert!(bias.len() >= n),
        Epilogue::Mask { mask } => assert!(mask.len() >= m * n),
        Epilogue::Residual { bias, residual } => assert!(bias.len() >= n && residual.len() >= m * n),
        _ => {}
    }
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    let padded_n = panels * NR;
    let padded_m = m.div_ceil(MR) * MR;
    let chunk = (CHUNK_VALUES / padded_n).max(16).min(k).max(1);
    let chunked = chunk < k;
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let need = panels * chunk * NR + chunk * MR + padded_n + if chunked { padded_m * padded_n } else { 0 };
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (panel_data, rest) = scratch.split_at_mut(panels * chunk * NR);
        let (a_data, rest) = rest.split_at_mut(chunk * MR);
        let (bias_data, partial) = rest.split_at_mut(padded_n);
        let bias_padded = match epilogue {
            Epilogue::Bias { bias, .. } | Epilogue::Residual { bias, .. } => {
                bias_data[..n].copy_from_slice(&bias[..n]);
                bias_data[n..].fill(0.0);
                Some(&*bias_data)
            }
            _ => None,
        };
        let mut k0 = 0;
        loop {
            let kc = chunk.min(k - k0);
            pack_b(k0, kc, k, n, b, b_layout, panel_data);
            let (first, last) = (k0 == 0, k0 + kc == k);
            let mut i0 = 0;
            while i0 < m {
                let rows = MR.min(m - i0);
                pack_a(i0, rows, k0, kc, m, k, a, a_layout, a_data);
                for panel in 0..panels {
                    let j0 = panel * NR;
                    let cols = NR.min(n - j0);
                    let init = if !first {
                        Init::Partial
                    } else if let Some(bias) = bias_padded {
                        Init::Bias(&bias[j0..j0 + NR])
                    } else {
                        Init::Zero
                    };
                    // SAFETY (for the kernels): the packed A block holds kc·MR values, the panel kc·NR.
                    let b_panel = panel_data.as_ptr().wrapping_add(panel * kc * NR);
                    let out = if last { Out::Final(TileEpilogue { c: &mut *c, n, i0, j0, rows, cols, epilogue }) } else { Out::Partial };
                    let partial = if chunked { &mut partial[i0 * padded_n + j0..] } else { &mut [][..] };
                    let tile = Tile { k: kc, a: a_data.as_ptr(), b: b_panel, init, partial, partial_stride: padded_n };
                    // Tiles of 5 to 8 columns run inline; the last panel of at most 4 columns
                    // goes through an out-of-line copy with one vector per row, which keeps the
                    // hot function small enough for the JIT to allocate registers well.
                    if cols > 4 {
                        run::<MR, 2>(tile, out);
                    } else {
                        run_edge::<MR, 1>(tile, out);
                    }
                }
                i0 += rows;
            }
            k0 += kc;
            if k0 >= k {
                break;
            }
        }
    });
}

/// Copies rows k0..k0+kc of B (k×n, stored per `layout`) into panels of NR columns: panel q
/// holds B[k0 + p, q·NR + j] at q·kc·NR + p·NR + j, zero where q·NR + j >= n.
#[allow(clippy::too_many_arguments)]
fn pack_b(k0: usize, kc: usize, k: usize, n: usize, b: &[f32], layout: Layout, packed: &mut [f32]) {
    if kc == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    for (q, panel) in packed[..panels * kc * NR].chunks_exact_mut(kc * NR).enumerate() {
        let j0 = q * NR;
        let cols = NR.min(n - j0);
        for (p, row) in panel.chunks_exact_mut(NR).enumerate() {
            let src_row = k0 + p;
            match layout {
                Layout::Normal if cols == NR => {
                    let src: &[f32; NR] = b[src_row * n + j0..src_row * n + j0 + NR].try_into().unwrap();
                    row.copy_from_slice(src);
                }
                // the edge panel: element by element (a copy or fill of variable length is a
                // call out of wasm in V8: slow for a few values)
                Layout::Normal => {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = if j < cols { b[src_row * n + j0 + j] } else { 0.0 };
                    }
                }
                Layout::Transposed => {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = if j < cols { b[(j0 + j) * k + src_row] } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Copies A[i0 + i, k0 + p] for i < rows, p < kc (A m×k stored per `layout`) to
/// packed[p·MR + i], zero for rows >= `rows`: the micro-kernel then reads the MR values of each p
/// from one place, at fixed offsets (one pointer for A instead of one per row).
#[allow(clippy::too_many_arguments)]
fn pack_a(i0: usize, rows: usize, k0: usize, kc: usize, m: usize, k: usize, a: &[f32], layout: Layout, packed: &mut [f32]) {
    let packed = &mut packed[..kc * MR];
    match layout {
        Layout::Transposed if rows == MR => {
            // A(i, p) at p·m + i: the MR values of each p are contiguous
            for (p, dst) in packed.chunks_exact_mut(MR).enumerate() {
                let at = (k0 + p) * m + i0;
                dst.copy_from_slice(&a[at..at + MR]);
            }
        }
        Layout::Transposed => {
            for (p, dst) in packed.chunks_exact_mut(MR).enumerate() {
                let at = (k0 + p) * m + i0;
                for (i, v) in dst.iter_mut().enumerate() {
                    *v = if i < rows { a[at + i] } else { 0.0 };
                }
            }
        }
        Layout::Normal if rows == MR => {
            let row = |i: usize| &a[(i0 + i) * k + k0..(i0 + i) * k + k0 + kc];
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            for (p, dst) in packed.chunks_exact_mut(MR).enumerate() {
                dst.copy_from_slice(&[r0[p], r1[p], r2[p], r3[p]]);
            }
        }
        Layout::Normal => {
            for (p, dst) in packed.chunks_exact_mut(MR).enumerate() {
                for (i, v) in dst.iter_mut().enumerate() {
                    *v = if i < rows { a[(i0 + i) * k + k0 + p] } else { 0.0 };
                }
            }
        }
    }
}

/// Where a tile's sums start.
#[derive(Clone, Copy)]
enum Init<'a> {
    Zero,
    /// The padded bias from column j0 on (the same for every row).
    Bias(&'a [f32]),
    /// Running sums of an earlier chunk, from `Tile::partial`.
    Partial,
}

/// Inputs of one micro-kernel call: A packed (A(i, p) at a + p·MR + i, `pack_a`) and one B panel
/// (B(p, j) at b + p·NR + j, `pack_b`).
struct Tile<'a> {
    k: usize,
    a: *const f32,
    b: *const f32,
    init: Init<'a>,
    /// This tile's running sums between chunks: row i at [i·partial_stride..] (empty if unused).
    partial: &'a mut [f32],
    partial_stride: usize,
}

/// Where one tile's sums go.
enum Out<'c, 'e> {
    /// Through the epilogue into C.
    Final(TileEpilogue<'c, 'e>),
    /// Into `Tile::partial` (all R×4V values).
    Partial,
}

/// Where and how one tile is stored in C.
struct TileEpilogue<'c, 'e> {
    c: &'c mut [f32],
    n: usize,
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
    epilogue: Epilogue<'e>,
}

#[inline(never)]
fn run_edge<const R: usize, const V: usize>(tile: Tile, out: Out) {
    run::<R, V>(tile, out)
}

#[inline(always)]
fn run<const R: usize, const V: usize>(tile: Tile, out: Out) {
    let mut acc = [[F4::zero(); V]; R];
    match tile.init {
        Init::Zero => {}
        Init::Bias(bias) => {
            for row in acc.iter_mut() {
                for (v, lane) in row.iter_mut().enumerate() {
                    *lane = F4::load(&bias[4 * v..4 * v + 4]);
                }
            }
        }
        Init::Partial => {
            let (partial, stride) = (&*tile.partial, tile.partial_stride);
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, lane) in row.iter_mut().enumerate() {
                    *lane = F4::load(&partial[i * stride + 4 * v..i * stride + 4 * v + 4]);
                }
            }
        }
    }
    // SAFETY: see `gemm`: the packed A block has k·MR values, the B panel k·NR.
    unsafe { kernel::<R, V>(tile.k, tile.a, tile.b, &mut acc) };
    match out {
        Out::Final(epilogue) => store::<R, V>(&acc, epilogue),
        Out::Partial => {
            let (partial, stride) = (tile.partial, tile.partial_stride);
            for (i, row) in acc.iter().enumerate() {
                for (v, lane) in row.iter().enumerate() {
                    lane.store(&mut partial[i * stride + 4 * v..i * stride + 4 * v + 4]);
                }
            }
        }
    }
}

/// acc[i][v] += A(i, p)·B_panel[p, 4v..4v+4] for p = 0..k, in order (A packed: `pack_a`).
#[inline(always)]
unsafe fn kernel<const R: usize, const V: usize>(k: usize, a: *const f32, b: *const f32, acc: &mut [[F4; V]; R]) {
    let mut a_col = a; // A(0, p)
    let mut b_row = b;
    for _ in 0..k {
        let mut bv = [F4::zero(); V];
        for (v, lane) in bv.iter_mut().enumerate() {
            *lane = F4::load_ptr(b_row.add(4 * v));
        }
        for (i, acc_row) in acc.iter_mut().enumerate() {
            let av = F4::splat_ptr(a_col.add(i));
            for v in 0..V {
                acc_row[v] = acc_row[v].add_product(av, bv[v]);
            }
        }
        a_col = a_col.add(MR);
        b_row = b_row.add(NR);
    }
}

/// Applies the epilogue to a finished tile and writes its valid rows and columns into C.
///
/// Full tiles (all R rows and 4V columns inside C) take a straight path: one bounds check, then
/// fixed offsets, so `acc` stays in registers (an indexed store would put the whole tile in
/// linear memory, zeroed by a `memory.fill` call per tile). Edge tiles go element by element.
#[inline(always)]
fn store<const R: usize, const V: usize>(acc: &[[F4; V]; R], out: TileEpilogue) {
    let TileEpilogue { c, n, i0, j0, rows, cols, epilogue } = out;
    let first = i0 * n + j0;
    if rows == R && cols == 4 * V {
        let end = first + (R - 1) * n + 4 * V; // one past the tile's last element
        assert!(end <= c.len());
        match epilogue {
            Epilogue::Mask { mask } => assert!(end <= mask.len()),
            Epilogue::Residual { residual, .. } => assert!(end <= residual.len()),
            _ => {}
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &sum) in row.iter().enumerate() {
                let at = first + i * n + 4 * v;
                // SAFETY: at + 4 <= end (asserted above) for every i < R, v < V.
                let (dst, value) = unsafe {
                    let dst = c.get_unchecked_mut(at..at + 4);
                    let value = match epilogue {
                        Epilogue::Set => sum,
                        Epilogue::Add => F4::load(dst).add(sum),
                        Epilogue::Bias { relu: true, .. } => sum.relu(),
                        Epilogue::Bias { relu: false, .. } => sum,
                        Epilogue::Mask { mask } => sum.keep_where_positive(F4::load(mask.get_unchecked(at..at + 4))),
                        Epilogue::Residual { residual, .. } => sum.add(F4::load(residual.get_unchecked(at..at + 4))),
                    };
                    (dst, value)
                };
                value.store(dst);
            }
        }
        return;
    }
    let sums: [[[f32; 4]; V]; R] = acc.map(|row| row.map(|lane| lane.to_array()));
    for (i, row) in sums.iter().enumerate().take(rows) {
        for j in 0..cols {
            let (s, idx) = (row[j / 4][j % 4], first + i * n + j);
            c[idx] = match epilogue {
                Epilogue::Set => s,
                Epilogue::Add => c[idx] + s,
                Epilogue::Bias { relu, .. } => {
                    if relu {
                        s.max(0.0)
                    } else {
                        s
                    }
                }
                Epilogue::Mask { mask } => {
                    if mask[idx] > 0.0 {
                        s
                    } else {
                        0.0
                    }
                }
                Epilogue::Residual { residual, .. } => s + residual[idx],
            };
        }
    }
}

// ---- The machine's limit, for benchmarks. ----

/// Flops per iteration of `peak_multiply_add`.
pub const PEAK_FLOPS_PER_ITERATION: u64 = 12 * 4 * 2;

/// The four-lane multiply-add throughput limit: `iterations` rounds of
/// acc_i = acc_i·0.999 + x over 12 independent accumulators (`add_product`, as in the kernels;
/// 96 flops per round). Returns the lane sum so the work cannot be optimised away. Time it to get
/// the peak GFLOP/s the matrix kernels are measured against.
pub fn peak_multiply_add(iterations: u32, x: f32) -> f32 {
    let (scale, add) = (F4::splat(0.999), F4::splat(x));
    let mut acc = [F4::zero(); 12];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = F4::splat(i as f32);
    }
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = add.add_product(*a, scale); // a·0.999 + x: fused in the relaxed-SIMD build, as the kernels
        }
    }
    acc.iter().map(|a| a.to_array().iter().sum::<f32>()).sum()
}

// ---- The products the networks use. ----

/// C[m×n] += A[m×k]·B[k×n].
pub fn matmul_add(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm(m, k, n, a, Layout::Normal, b, Layout::Normal, c, Epilogue::Add);
}

/// C[m×n] += Aᵀ·B, with A stored [k×m] and B [k×n] (the weight-gradient product xᵀ·dy).
pub fn matmul_tn_add(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm(m, k, n, a, Layout::Transposed, b, Layout::Normal, c, Epilogue::Add);
}

/// C[m×n] += A·Bᵀ, with A stored [m×k] and B [n×k] (the input-gradient product dy·Wᵀ).
pub fn matmul_nt_add(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm(m, k, n, a, Layout::Normal, b, Layout::Transposed, c, Epilogue::Add);
}

/// y[rows×n] = x[rows×k]·W + b, then ReLU if asked (W stored [k, n]).
#[allow(clippy::too_many_arguments)]
pub fn linear(rows: usize, k: usize, n: usize, x: &[f32], w: &[f32], bias: &[f32], y: &mut [f32], relu: bool) {
    gemm(rows, k, n, x, Layout::Normal, w, Layout::Normal, y, Epilogue::Bias { bias, relu });
}

// ---- One row at a time (for rows that share no weights with others, e.g. a readout of their own). ----

/// y[n] = bias + Σ_p x[p]·W[p, ·] (W stored [k, n]), p in order: the same rounding as `linear`
/// on one row, in either wasm build (the multiply-adds are `add_product`, as in the gemm kernel,
/// the last n mod 4 columns too), so a network may take either path for a row.
pub fn linear_row(k: usize, n: usize, x: &[f32], w: &[f32], bias: &[f32], y: &mut [f32]) {
    let (y, bias, w) = (&mut y[..n], &bias[..n], &w[..k * n]);
    y.copy_from_slice(bias);
    let full = n / 4 * 4;
    let tail = n - full;
    for (p, w_row) in w.chunks_exact(n).enumerate() {
        let xv = F4::splat(x[p]);
        for j in (0..full).step_by(4) {
            F4::load(&y[j..j + 4]).add_product(xv, F4::load(&w_row[j..j + 4])).store(&mut y[j..j + 4]);
        }
        if tail > 0 {
            let (mut acc, mut wt) = ([0.0; 4], [0.0; 4]);
            acc[..tail].copy_from_slice(&y[full..]);
            wt[..tail].copy_from_slice(&w_row[full..]);
            let sum = F4::new(acc).add_product(xv, F4::new(wt)).to_array();
            y[full..].copy_from_slice(&sum[..tail]);
        }
    }
}

/// dW[p, ·] += x[p]·dy (the weight gradient of `linear_row`).
pub fn outer_add(k: usize, n: usize, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (dy, dw) = (&dy[..n], &mut dw[..k * n]);
    let full = n / 4 * 4;
    for (p, dw_row) in dw.chunks_exact_mut(n).enumerate() {
        let xp = x[p];
        let xv = F4::splat(xp);
        for j in (0..full).step_by(4) {
            let sum = F4::load(&dw_row[j..j + 4]).add(xv.mul(F4::load(&dy[j..j + 4])));
            sum.store(&mut dw_row[j..j + 4]);
        }
        for j in full..n {
            dw_row[j] += xp * dy[j];
        }
    }
}

/// Σ_j a[j]·b[j]: four lanes of partial sums over j ≡ lane (mod 4) in order, added as
/// ((l0 + l1) + (l2 + l3)), then the tail j >= 4·(n/4) in order.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let full = n / 4 * 4;
    let mut acc = F4::zero();
    for j in (0..full).step_by(4) {
        acc = acc.add(F4::load(&a[j..j + 4]).mul(F4::load(&b[j..j + 4])));
    }
    let l = acc.to_array();
    let mut sum = (l[0] + l[1]) + (l[2] + l[3]);
    for j in full..n {
        sum += a[j] * b[j];
    }
    sum
}

// ---- Depthwise circular convolution over positions (the circular network). ----

/// Fills `extended` ((L + K - 1) × C) with the positions of one sequence h (L × C) as a K-tap
/// window starting `offset` positions before the output position visits them:
/// extended[j] = h[(j - offset) mod L], so tap d of output position p reads extended[p + d].
fn extend_circularly(l: usize, c: usize, kernel: usize, offset: usize, h: &[f32], extended: &mut [f32]) {
    for (j, out) in extended.chunks_exact_mut(c).take(l + kernel - 1).enumerate() {
        let q = (j + l * kernel - offset) % l; // (j - offset) mod L
        out.copy_from_slice(&h[q * c..(q + 1) * c]);
    }
}

/// For one sequence: out[p, ch] = start[p, ch] + Σ_{d<K} taps[d, ch]·ext[p + d, ch], d in order,
/// where start is `bias` (the same for every p) or, if ACCUMULATE, out's current value.
fn conv_window_sums<const ACCUMULATE: bool>(l: usize, c: usize, kernel: usize, ext: &[f32], taps: &[f32], bias: &[f32], out: &mut [f32]) {
    let full = c / 4 * 4;
    for ch in (0..full).step_by(4) {
        let start = |out: &[f32], p: usize| if ACCUMULATE { F4::load(&out[p * c + ch..p * c + ch + 4]) } else { F4::load(&bias[ch..ch + 4]) };
        let mut p = 0;
        while p + 4 <= l {
            // positions p..p+4 share each tap's load
            let mut acc = [start(out, p), start(out, p + 1), start(out, p + 2), start(out, p + 3)];
            for d in 0..kernel {
                let tap = F4::load(&taps[d * c + ch..d * c + ch + 4]);
                let window = &ext[(p + d) * c + ch..(p + d + 3) * c + ch + 4];
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = a.add(tap.mul(F4::load(&window[i * c..i * c + 4])));
                }
            }
            for (i, a) in acc.iter().enumerate() {
                a.store(&mut out[(p + i) * c + ch..(p + i) * c + ch + 4]);
            }
            p += 4;
        }
        for p in p..l {
            let mut acc = start(out, p);
            for d in 0..kernel {
                let (t, e) = (d * c + ch, (p + d) * c + ch);
                acc = acc.add(F4::load(&taps[t..t + 4]).mul(F4::load(&ext[e..e + 4])));
            }
            acc.store(&mut out[p * c + ch..p * c + ch + 4]);
        }
    }
    for ch in full..c {
        for p in 0..l {
            let mut acc = if ACCUMULATE { out[p * c + ch] } else { bias[ch] };
            for d in 0..kernel {
                acc += taps[d * c + ch] * ext[(p + d) * c + ch];
            }
            out[p * c + ch] = acc;
        }
    }
}

/// m[r, p, ch] = bias[r, ch] + Σ_{d<K} taps[d, ch]·h[r, (p + d - K/2) mod L, ch] for every
/// row r (h, m: rows × L × C; taps: K × C; bias: rows × C, one vector per row, i.e. per
/// sequence). The sum runs over d in order, the same sequence of operations at every position,
/// so a cyclic shift of h shifts m exactly.
#[allow(clippy::too_many_arguments)]
pub fn circular_depthwise(rows: usize, l: usize, c: usize, kernel: usize, h: &[f32], taps: &[f32], bias: &[f32], m: &mut [f32], scratch: &mut Vec<f32>) {
    let ext_len = (l + kernel - 1) * c;
    if scratch.len() < ext_len {
        scratch.resize(ext_len, 0.0);
    }
    let (taps, ext) = (&taps[..kernel * c], &mut scratch[..ext_len]);
    for r in 0..rows {
        extend_circularly(l, c, kernel, kernel / 2, &h[r * l * c..(r + 1) * l * c], ext);
        conv_window_sums::<false>(l, c, kernel, ext, taps, &bias[r * c..][..c], &mut m[r * l * c..][..l * c]);
    }
}

/// Backward of `circular_depthwise` given dm: dtaps += Σ_{r,p} dm[r,p]·h[r, p + d - K/2],
/// dbias[r] += Σ_p dm[r,p] (rows × C), and dh[r, q] += Σ_d taps[d]·dm[r, q - d + K/2]
/// (indices mod L).
/// The last is itself a circular convolution: with reversed taps taps'[e] = taps[K-1-e],
/// dh[q] += Σ_e taps'[e]·dm[(q + e - (K - 1 - K/2)) mod L].
#[allow(clippy::too_many_arguments)]
pub fn circular_depthwise_backward(
    rows: usize,
    l: usize,
    c: usize,
    kernel: usize,
    h: &[f32],
    taps: &[f32],
    dm: &[f32],
    dtaps: &mut [f32],
    dbias: &mut [f32],
    dh: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let ext_len = (l + kernel - 1) * c;
    if scratch.len() < 2 * ext_len + kernel * c {
        scratch.resize(2 * ext_len + kernel * c, 0.0);
    }
    let (ext, rest) = scratch.split_at_mut(ext_len);
    let (dm_ext, rest) = rest.split_at_mut(ext_len);
    let reversed = &mut rest[..kernel * c];
    for (e, row) in reversed.chunks_exact_mut(c).enumerate() {
        row.copy_from_slice(&taps[(kernel - 1 - e) * c..(kernel - e) * c]);
    }
    let dtaps = &mut dtaps[..kernel * c];
    let full = c / 4 * 4;
    for r in 0..rows {
        let dm_r = &dm[r * l * c..(r + 1) * l * c];
        extend_circularly(l, c, kernel, kernel / 2, &h[r * l * c..(r + 1) * l * c], ext);
        add_column_sums(l, c, dm_r, &mut dbias[r * c..(r + 1) * c]);
        // dtaps[d] += Σ_p dm[p]·ext[p + d]; taps d..d+4 share each dm load
        for ch in (0..full).step_by(4) {
            let mut d = 0;
            while d + 4 <= kernel {
                let mut acc = [F4::zero(); 4];
                for p in 0..l {
                    let g = F4::load(&dm_r[p * c + ch..p * c + ch + 4]);
                    let window = &ext[(p + d) * c + ch..(p + d + 3) * c + ch + 4];
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = a.add(g.mul(F4::load(&window[i * c..i * c + 4])));
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    let at = (d + i) * c + ch;
                    F4::load(&dtaps[at..at + 4]).add(*a).store(&mut dtaps[at..at + 4]);
                }
                d += 4;
            }
            for d in d..kernel {
                let mut acc = F4::zero();
                for p in 0..l {
                    let (g, e) = (p * c + ch, (p + d) * c + ch);
                    acc = acc.add(F4::load(&dm_r[g..g + 4]).mul(F4::load(&ext[e..e + 4])));
                }
                let at = d * c + ch;
                F4::load(&dtaps[at..at + 4]).add(acc).store(&mut dtaps[at..at + 4]);
            }
        }
        for ch in full..c {
            for d in 0..kernel {
                let mut acc = 0.0f32;
                for p in 0..l {
                    acc += dm_r[p * c + ch] * ext[(p + d) * c + ch];
                }
                dtaps[d * c + ch] += acc;
            }
        }
        // dh += the convolution of dm with the reversed taps
        extend_circularly(l, c, kernel, kernel - 1 - kernel / 2, dm_r, dm_ext);
        conv_window_sums::<true>(l, c, kernel, dm_ext, reversed, &[], &mut dh[r * l * c..(r + 1) * l * c]);
    }
}

/// out[j] += Σ_r y[r, j] (the bias gradient of y = x·W + b); rows summed in order.
pub fn add_column_sums(rows: usize, n: usize, y: &[f32], out: &mut [f32]) {
    let out = &mut out[..n];
    for row in y[..rows * n].chunks_exact(n) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect()
    }

    /// The definition: s = Σ_p A(i,p)·B(p,j) summed in order from 0 in f32, then the epilogue.
    #[allow(clippy::too_many_arguments)]
    fn reference(m: usize, k: usize, n: usize, a: &[f32], al: Layout, b: &[f32], bl: Layout, c: &[f32], epilogue: Epilogue) -> Vec<f32> {
        let mut out = c.to_vec();
        for i in 0..m {
            for j in 0..n {
                let mut s = match epilogue {
                    Epilogue::Bias { bias, .. } | Epilogue::Residual { bias, .. } => bias[j],
                    _ => 0.0f32,
                };
                for p in 0..k {
                    let av = if al == Layout::Normal { a[i * k + p] } else { a[p * m + i] };
                    let bv = if bl == Layout::Normal { b[p * n + j] } else { b[j * k + p] };
                    s += av * bv;
                }
                out[i * n + j] = match epilogue {
                    Epilogue::Set => s,
                    Epilogue::Add => c[i * n + j] + s,
                    Epilogue::Bias { relu, .. } => {
                        if relu {
                            s.max(0.0)
                        } else {
                            s
                        }
                    }
                    Epilogue::Mask { mask } => {
                        if mask[i * n + j] > 0.0 {
                            s
                        } else {
                            0.0
                        }
                    }
                    Epilogue::Residual { residual, .. } => s + residual[i * n + j],
                };
            }
        }
        out
    }

    /// The same product in f64, to check the f32 result is accurate (not just reproducible).
    fn exact(k: usize, n: usize, a: &[f32], b: &[f32], i: usize, j: usize) -> f64 {
        (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum()
    }

    fn sizes() -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for m in 1..=37 {
            for (k, n) in [(1, 1), (3, 5), (20, 50), (50, 20), (37, 9), (8, 16), (17, 33), (0, 4)] {
                out.push((m, k, n));
            }
        }
        for k in 1..=37 {
            out.push((13, k, 11));
        }
        for n in 1..=37 {
            out.push((9, 7, n));
            out.push((5, 3, n));
        }
        out.push((256, 50, 50));
        out.push((64, 2048, 20));
        out.push((5, 700, 37));
        out.push((3, 1000, 130));
        out
    }

    #[test]
    fn gemm_equals_the_definition_bit_for_bit_for_every_layout_and_epilogue() {
        let mut rng = Rng::new(1);
        let mut checked = 0;
        for (m, k, n) in sizes() {
            let a = random(m * k, &mut rng);
            let b = random(k * n, &mut rng);
            let c = random(m * n, &mut rng);
            let bias = random(n, &mut rng);
            let mask: Vec<f32> = random(m * n, &mut rng).iter().map(|v| v.max(0.0)).collect();
            for al in [Layout::Normal, Layout::Transposed] {
                for bl in [Layout::Normal, Layout::Transposed] {
                    for epilogue in [
                        Epilogue::Set,
                        Epilogue::Add,
                        Epilogue::Bias { bias: &bias, relu: false },
                        Epilogue::Bias { bias: &bias, relu: true },
                        Epilogue::Mask { mask: &mask },
                        Epilogue::Residual { bias: &bias, residual: &mask },
                    ] {
                        let want = reference(m, k, n, &a, al, &b, bl, &c, epilogue);
                        let mut got = c.clone();
                        gemm(m, k, n, &a, al, &b, bl, &mut got, epilogue);
                        assert!(got == want, "{m}x{k}x{n} {al:?} {bl:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 2000);
    }

    #[test]
    fn named_products_are_accurate() {
        let mut rng = Rng::new(2);
        for (m, k, n) in [(7, 20, 50), (33, 50, 20), (5, 37, 3), (64, 2048, 20)] {
            let a = random(m * k, &mut rng);
            let b = random(k * n, &mut rng);
            let mut c = vec![0.5f32; m * n];
            matmul_add(m, k, n, &a, &b, &mut c);
            // Aᵀ stored [k×m], Bᵀ stored [n×k]
            let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
            let mut c_tn = vec![0.5f32; m * n];
            matmul_tn_add(m, k, n, &at, &b, &mut c_tn);
            let mut c_nt = vec![0.5f32; m * n];
            matmul_nt_add(m, k, n, &a, &bt, &mut c_nt);
            for i in 0..m {
                for j in 0..n {
                    let want = 0.5 + exact(k, n, &a, &b, i, j);
                    let tolerance = 1e-6 * (k as f64 + 1.0);
                    for got in [c[i * n + j], c_tn[i * n + j], c_nt[i * n + j]] {
                        assert!((got as f64 - want).abs() <= tolerance, "{m}x{k}x{n} [{i},{j}]: {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn row_helpers_match_the_products() {
        let mut rng = Rng::new(4);
        for (k, n) in [(1, 1), (50, 20), (7, 13), (20, 50), (3, 4), (9, 37)] {
            let x = random(k, &mut rng);
            let w = random(k * n, &mut rng);
            let bias = random(n, &mut rng);
            // linear_row = linear on one row, bit for bit
            let mut want = vec![0.0; n];
            linear(1, k, n, &x, &w, &bias, &mut want, false);
            let mut got = vec![0.0; n];
            linear_row(k, n, &x, &w, &bias, &mut got);
            assert!(got == want, "linear_row {k}x{n}");
            // outer_add = dW += xᵀ·dy for one row
            let dy = random(n, &mut rng);
            let start = random(k * n, &mut rng);
            let mut got = start.clone();
            outer_add(k, n, &x, &dy, &mut got);
            for p in 0..k {
                for j in 0..n {
                    assert_eq!(got[p * n + j], start[p * n + j] + x[p] * dy[j]);
                }
            }
            // dot against f64
            let exact: f64 = x.iter().zip(&w[..k]).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((dot(&x, &w[..k]) as f64 - exact).abs() < 1e-5 * (k as f64 + 1.0));
        }
    }

    /// The convolution written out with the modulo, in f64.
    fn conv_reference(rows: usize, l: usize, c: usize, kernel: usize, h: &[f32], taps: &[f32], bias: &[f32]) -> Vec<f64> {
        let mut m = vec![0.0; rows * l * c];
        for r in 0..rows {
            for p in 0..l {
                for ch in 0..c {
                    let mut acc = bias[r * c + ch] as f64;
                    for d in 0..kernel {
                        let q = (p as isize + d as isize - (kernel / 2) as isize).rem_euclid(l as isize) as usize;
                        acc += taps[d * c + ch] as f64 * h[(r * l + q) * c + ch] as f64;
                    }
                    m[(r * l + p) * c + ch] = acc;
                }
            }
        }
        m
    }

    #[test]
    fn circular_depthwise_matches_the_definition_and_its_backward_is_the_adjoint() {
        let mut rng = Rng::new(5);
        for (rows, l, c, kernel) in [(2, 7, 5, 3), (3, 20, 8, 20), (1, 6, 9, 6), (2, 5, 4, 1), (1, 9, 3, 4)] {
            let h = random(rows * l * c, &mut rng);
            let taps = random(kernel * c, &mut rng);
            let bias = random(rows * c, &mut rng);
            let mut m = vec![0.0; rows * l * c];
            let mut scratch = Vec::new();
            circular_depthwise(rows, l, c, kernel, &h, &taps, &bias, &mut m, &mut scratch);
            let want = conv_reference(rows, l, c, kernel, &h, &taps, &bias);
            for (g, w) in m.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5 * (kernel as f64 + 1.0), "{g} vs {w}");
            }
            // adjoint: <dm, m(h, taps) - bias> is bilinear, so its gradients are exact linear maps
            let dm = random(rows * l * c, &mut rng);
            let (mut dtaps, mut dbias, mut dh) = (vec![0.0; kernel * c], vec![0.0; rows * c], vec![0.0; rows * l * c]);
            circular_depthwise_backward(rows, l, c, kernel, &h, &taps, &dm, &mut dtaps, &mut dbias, &mut dh, &mut scratch);
            for i in 0..h.len() {
                // d<dm, m>/dh[i] = <dm, m(e_i, taps) - m(0, taps)>
                let mut e = vec![0.0; h.len()];
                e[i] = 1.0;
                let zero = vec![0.0; rows * c];
                let m_e = conv_reference(rows, l, c, kernel, &e, &taps, &zero);
                let want: f64 = m_e.iter().zip(&dm).map(|(a, &b)| a * b as f64).sum();
                assert!((dh[i] as f64 - want).abs() < 1e-5, "dh[{i}]: {} vs {want}", dh[i]);
            }
            for i in 0..taps.len() {
                let mut e = vec![0.0; taps.len()];
                e[i] = 1.0;
                let zero = vec![0.0; rows * c];
                let m_e = conv_reference(rows, l, c, kernel, &h, &e, &zero);
                let want: f64 = m_e.iter().zip(&dm).map(|(a, &b)| a * b as f64).sum();
                assert!((dtaps[i] as f64 - want).abs() < 1e-4, "dtaps[{i}]: {} vs {want}", dtaps[i]);
            }
            for r in 0..rows {
                for ch in 0..c {
                    let want: f64 = (0..l).map(|p| dm[(r * l + p) * c + ch] as f64).sum();
                    assert!((dbias[r * c + ch] as f64 - want).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn peak_loop_computes_what_it_says() {
        let got = peak_multiply_add(10, 0.5);
        let mut want = 0.0f32;
        for i in 0..12 {
            let mut a = i as f32;
            for _ in 0..10 {
                a = a * 0.999 + 0.5;
            }
            want += 4.0 * a;
        }
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    }

    #[test]
    fn column_sums() {
        let mut sums = vec![1.0; 3];
        add_column_sums(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut sums);
        assert_eq!(sums, [6.0, 8.0, 10.0]);
    }
}
