//! Convolutions over a grid of positions (1-D: H = 1; 2-D: H×W, row-major), channel-last
//! (x[r, position, channel]), as products with the im2col matrix: for each output position the K
//! taps' input vectors form one row of `cols` ((rows·P_out) × (K·C_in)), and the convolution is
//! cols·W with W stored [K, C_in, C_out] (tap-major), so the products run in the register-blocked
//! matrix kernels. A `ConvPlan` tabulates, for every (output position, tap), the input position it
//! reads, or none (zero padding); the same gather covers stride 2 (down), nearest upsampling (up),
//! dilation and circular wrap-around. The forward product and the weight gradient colsᵀ·dy never
//! write `cols`: its rows (or columns) are gathered straight into the matrix kernel's packed
//! blocks (`linalg::gemm_packed`, MR rows at a time, a few KB that stay in L1), which measured
//! faster at 28×28 than writing the whole matrix and reading it back. The input gradient
//! dcols = dy·Wᵀ is written in chunks of output positions (at most `budget` values) and scattered.
//!
//! Rounding: each output is the gemm's in-order sum over (tap, input channel) (see linalg.rs), the
//! same operations at every position, so a circular plan commutes exactly with cyclic shifts. The
//! weight gradient is one in-order sum over every (row, output position), whatever the chunking
//! (it was a sum per chunk of rows, added to dW, before the packed gathers: other last bits).

use crate::linalg::{self, Epilogue, Layout, MR};

/// A tap that reads outside the input (zero padding).
const NONE: u32 = u32::MAX;

/// Which input position each (output position, tap) reads.
#[derive(Clone, Debug)]
pub struct ConvPlan {
    pub taps: usize,
    pub in_positions: usize,
    pub out_positions: usize,
    /// source[o·taps + k]: input position, or NONE.
    source: Vec<u32>,
}

/// How one axis maps output index o and tap d (0..k) to an input index.
#[derive(Clone, Copy, Debug)]
pub struct AxisMap {
    pub in_len: usize,
    pub out_len: usize,
    /// Taps along this axis (odd; centred: offset (d - k/2)·dilation).
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    /// Nearest upsampling first: the taps run over a fine grid of out_len positions, and fine
    /// position q reads input q/2 (so in_len = ceil(out_len/2)).
    pub upsample: bool,
    pub circular: bool,
}

impl AxisMap {
    /// q = o·stride + (d - k/2)·dilation, wrapped mod the grid if circular, else none outside it;
    /// then q/2 if upsampling.
    fn source(&self, o: usize, d: usize) -> Option<usize> {
        let grid = if self.upsample { self.out_len } else { self.in_len } as isize;
        let q = (o * self.stride) as isize + (d as isize - (self.kernel / 2) as isize) * self.dilation as isize;
        let q = if self.circular {
            q.rem_euclid(grid)
        } else if q < 0 || q >= grid {
            return None;
        } else {
            q
        };
        Some(if self.upsample { q as usize / 2 } else { q as usize })
    }
}

impl ConvPlan {
    /// Taps run over rows.kernel × cols.kernel (row-major: tap = dy·kw + dx).
    pub fn new(rows: AxisMap, cols: AxisMap) -> Self {
        assert!(!(rows.upsample && rows.circular || cols.upsample && cols.circular), "upsampling is not circular");
        let taps = rows.kernel * cols.kernel;
        let out_positions = rows.out_len * cols.out_len;
        let mut source = Vec::with_capacity(out_positions * taps);
        for oy in 0..rows.out_len {
            for ox in 0..cols.out_len {
                for dy in 0..rows.kernel {
                    for dx in 0..cols.kernel {
                        source.push(match (rows.source(oy, dy), cols.source(ox, dx)) {
                            (Some(y), Some(x)) => (y * cols.in_len + x) as u32,
                            _ => NONE,
                        });
                    }
                }
            }
        }
        Self { taps, in_positions: rows.in_len * cols.in_len, out_positions, source }
    }

    /// The 1×1 convolution on `positions` positions.
    pub fn pointwise(positions: usize) -> Self {
        Self { taps: 1, in_positions: positions, out_positions: positions, source: (0..positions as u32).collect() }
    }

    /// Writes the im2col rows i0..i0+rows (flat output index f = r·P_out + o) for the columns
    /// k0..k0+kc (column q = k·C_in + ch) in `linalg::gemm_packed`'s layout: packed[p·MR + i] =
    /// f(x[r, source(o, k), ch]) for q = k0 + p (0 if none, and for rows <= i < MR), f = relu if
    /// `relu_input`. The values are those of the im2col matrix, so the products round as before.
    #[inline(never)] // out of the matrix driver (see linalg::pack_a)
    #[allow(clippy::too_many_arguments)]
    fn pack_rows(&self, x: &[f32], c_in: usize, relu_input: bool, zeros: &[f32], i0: usize, rows: usize, k0: usize, kc: usize, packed: &mut [f32]) {
        let (taps, pin, pout) = (self.taps, self.in_positions, self.out_positions);
        let packed = &mut packed[..kc * MR];
        // the input slice each row reads for a tap (a zero slice for padding)
        let source_of = |i: usize, tap: usize| -> &[f32] {
            let (r, o) = ((i0 + i) / pout, (i0 + i) % pout);
            match self.source[o * taps + tap] {
                NONE => &zeros[..c_in],
                src => &x[(r * pin + src as usize) * c_in..][..c_in],
            }
        };
        let f = |v: f32| if relu_input { v.max(0.0) } else { v };
        let mut q = k0;
        while q < k0 + kc {
            let (tap, ch0) = (q / c_in, q % c_in);
            let len = (c_in - ch0).min(k0 + kc - q);
            let dst = &mut packed[(q - k0) * MR..(q - k0 + len) * MR];
            if rows == MR {
                let (s0, s1, s2, s3) = (source_of(0, tap), source_of(1, tap), source_of(2, tap), source_of(3, tap));
                for (j, d) in dst.chunks_exact_mut(MR).enumerate() {
                    let ch = ch0 + j;
                    d.copy_from_slice(&[f(s0[ch]), f(s1[ch]), f(s2[ch]), f(s3[ch])]);
                }
            } else {
                for i in 0..MR {
                    let s = if i < rows { source_of(i, tap) } else { &zeros[..c_in] };
                    for (j, d) in dst.chunks_exact_mut(MR).enumerate() {
                        d[i] = f(s[ch0 + j]);
                    }
                }
            }
            q += len;
        }
    }

    /// The transposed im2col block for the weight gradient colsᵀ·dy: rows i0..i0+rows of colsᵀ
    /// (column q = k·C_in + ch of cols) and its columns k0..k0+kc (flat output indices f =
    /// r·P_out + o), in `linalg::gemm_packed`'s layout: packed[p·MR + i] = f(x[r, source(o, k),
    /// ch]) for q = i0 + i, f = k0 + p (0 if none, and for rows <= i < MR).
    #[inline(never)] // out of the matrix driver (see linalg::pack_a)
    #[allow(clippy::too_many_arguments)]
    fn pack_columns(&self, x: &[f32], c_in: usize, relu_input: bool, i0: usize, rows: usize, k0: usize, kc: usize, packed: &mut [f32]) {
        let (taps, pin, pout) = (self.taps, self.in_positions, self.out_positions);
        let packed = &mut packed[..kc * MR];
        let f = |v: f32| if relu_input { v.max(0.0) } else { v };
        let (tap0, ch0) = (i0 / c_in, i0 % c_in);
        let (mut r, mut o) = (k0 / pout, k0 % pout);
        if rows == MR && ch0 + MR <= c_in {
            // one tap, MR consecutive channels
            for d in packed.chunks_exact_mut(MR) {
                match self.source[o * taps + tap0] {
                    NONE => d.copy_from_slice(&[0.0; MR]),
                    src => {
                        let s = &x[(r * pin + src as usize) * c_in + ch0..][..MR];
                        d.copy_from_slice(&[f(s[0]), f(s[1]), f(s[2]), f(s[3])]);
                    }
                }
                o += 1;
                if o == pout {
                    (r, o) = (r + 1, 0);
                }
            }
        } else {
            for d in packed.chunks_exact_mut(MR) {
                for (i, v) in d.iter_mut().enumerate() {
                    *v = if i < rows {
                        let (tap, ch) = ((i0 + i) / c_in, (i0 + i) % c_in);
                        match self.source[o * taps + tap] {
                            NONE => 0.0,
                            src => f(x[(r * pin + src as usize) * c_in + ch]),
                        }
                    } else {
                        0.0
                    };
                }
                o += 1;
                if o == pout {
                    (r, o) = (r + 1, 0);
                }
            }
        }
    }

    /// The adjoint of the im2col gather for the flat output indices f0..f0+n: dx[r, source(o, k),
    /// ch] += dcols[(f - f0)·K·C_in + k·C_in + ch] (only where x > 0 if `relu_input`: the gradient
    /// at relu's input), in the order of (f, k), as the whole-matrix version would.
    #[allow(clippy::too_many_arguments)]
    fn scatter(&self, f0: usize, n: usize, c_in: usize, x: &[f32], relu_input: bool, dcols: &[f32], dx: &mut [f32]) {
        let (taps, pin, pout) = (self.taps, self.in_positions, self.out_positions);
        for (j, cf) in dcols[..n * taps * c_in].chunks_exact(taps * c_in).enumerate() {
            let (r, o) = ((f0 + j) / pout, (f0 + j) % pout);
            let base = r * pin * c_in;
            for (g, &src) in cf.chunks_exact(c_in).zip(&self.source[o * taps..(o + 1) * taps]) {
                if src == NONE {
                    continue;
                }
                let at = base + src as usize * c_in;
                let d = &mut dx[at..at + c_in];
                if relu_input {
                    for ((d, &gv), &xv) in d.iter_mut().zip(g).zip(&x[at..at + c_in]) {
                        *d += if xv > 0.0 { gv } else { 0.0 }; // a select, which vectorises
                    }
                } else {
                    for (d, &gv) in d.iter_mut().zip(g) {
                        *d += gv;
                    }
                }
            }
        }
    }
}

/// Sizes of one convolution call.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub rows: usize,
    pub c_in: usize,
    pub c_out: usize,
    /// Convolve relu(x) instead of x (fuses a pre-activation into the gather).
    pub relu_input: bool,
}

/// y[r, o, ·] = bias + Σ_{k, ch} f(x[r, source(o,k), ch])·W[k, ch, ·]  (bias = Some: y is set),
/// or y += Σ ... (bias = None). f = relu if `relu_input`. W is [K, C_in, C_out]. The im2col rows
/// are gathered straight into the matrix kernel's packed blocks (MR output positions at a time,
/// a few KB that stay in L1) instead of a whole im2col matrix: the same sums, bit for bit.
pub fn conv_forward(plan: &ConvPlan, shape: ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32], scratch: &mut Vec<f32>) {
    let zeros = scratch;
    let ConvShape { rows, c_in, c_out, relu_input } = shape;
    let (m, width) = (rows * plan.out_positions, plan.taps * c_in);
    assert!(x.len() >= rows * plan.in_positions * c_in && y.len() >= m * c_out);
    // the padding taps read this (the caller's scratch may hold anything)
    if zeros.len() < c_in {
        zeros.resize(c_in, 0.0);
    }
    zeros[..c_in].fill(0.0);
    let zeros = &zeros[..c_in];
    let epilogue = match bias {
        Some(bias) => Epilogue::Bias { bias, relu: false },
        None => Epilogue::Add,
    };
    let pack = |i0, n, k0, kc, packed: &mut [f32]| plan.pack_rows(x, c_in, relu_input, zeros, i0, n, k0, kc, packed);
    linalg::gemm_packed(m, width, c_out, pack, weight, Layout::Normal, &mut y[..m * c_out], epilogue);
}

/// Backward of `conv_forward` given dy: dW += colsᵀ·dy (one product over all rows and
/// positions, its columns gathered straight into the kernel's packed blocks), dbias += Σ_{r,o} dy
/// (if given), and, if `dx` is given, dx += scatter(dy·Wᵀ) (masked by [x > 0] if `relu_input`),
/// in chunks of output positions whose dcols hold at most `budget` values.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    plan: &ConvPlan,
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    cols: &mut Vec<f32>,
    budget: usize,
) {
    let ConvShape { rows, c_in, c_out, relu_input } = shape;
    let (m, width) = (rows * plan.out_positions, plan.taps * c_in);
    assert!(x.len() >= rows * plan.in_positions * c_in && dy.len() >= m * c_out);
    if let Some(dbias) = dbias {
        linalg::add_column_sums(m, c_out, dy, dbias);
    }
    let pack = |i0, n, k0, kc, packed: &mut [f32]| plan.pack_columns(x, c_in, relu_input, i0, n, k0, kc, packed);
    linalg::gemm_packed(width, m, c_out, pack, &dy[..m * c_out], Layout::Normal, &mut dweight[..width * c_out], Epilogue::Add);
    if let Some(dx) = dx {
        let chunk = (budget / width.max(1)).clamp(1, m.max(1));
        if cols.len() < chunk * width {
            cols.resize(chunk * width, 0.0);
        }
        let mut f0 = 0;
        while f0 < m {
            let n = chunk.min(m - f0);
            // dcols = dy·Wᵀ for these positions
            linalg::gemm(n, c_out, width, &dy[f0 * c_out..(f0 + n) * c_out], Layout::Normal, weight, Layout::Transposed, cols, Epilogue::Set);
            plan.scatter(f0, n, c_in, x, relu_input, cols, dx);
            f0 += n;
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

    fn axis(in_len: usize, out_len: usize, kernel: usize, stride: usize, dilation: usize, upsample: bool, circular: bool) -> AxisMap {
        AxisMap { in_len, out_len, kernel, stride, dilation, upsample, circular }
    }

    /// The convolution written from the definition (index arithmetic per axis), in f64.
    fn reference(rows_map: AxisMap, cols_map: AxisMap, rows: usize, c_in: usize, c_out: usize, x: &[f32], w: &[f32], relu: bool) -> Vec<f64> {
        let (pin, pout) = (rows_map.in_len * cols_map.in_len, rows_map.out_len * cols_map.out_len);
        let taps = rows_map.kernel * cols_map.kernel;
        let mut y = vec![0.0; rows * pout * c_out];
        for r in 0..rows {
            for oy in 0..rows_map.out_len {
                for ox in 0..cols_map.out_len {
                    let o = oy * cols_map.out_len + ox;
                    for dy in 0..rows_map.kernel {
                        for dx in 0..cols_map.kernel {
                            // the fine grid index, then the input index, written out again
                            let fy = (oy * rows_map.stride) as isize + (dy as isize - (rows_map.kernel / 2) as isize) * rows_map.dilation as isize;
                            let fx = (ox * cols_map.stride) as isize + (dx as isize - (cols_map.kernel / 2) as isize) * cols_map.dilation as isize;
                            let gy = if rows_map.upsample { rows_map.out_len } else { rows_map.in_len } as isize;
                            let gx = if cols_map.upsample { cols_map.out_len } else { cols_map.in_len } as isize;
                            let (fy, fx) = if rows_map.circular { (fy.rem_euclid(gy), fx.rem_euclid(gx)) } else { (fy, fx) };
                            if fy < 0 || fy >= gy || fx < 0 || fx >= gx {
                                continue;
                            }
                            let iy = if rows_map.upsample { fy / 2 } else { fy } as usize;
                            let ix = if cols_map.upsample { fx / 2 } else { fx } as usize;
                            let k = dy * cols_map.kernel + dx;
                            for ci in 0..c_in {
                                let v = x[(r * pin + iy * cols_map.in_len + ix) * c_in + ci];
                                let v = if relu { v.max(0.0) } else { v } as f64;
                                for co in 0..c_out {
                                    y[(r * pout + o) * c_out + co] += v * w[(k * c_in + ci) * c_out + co] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let _ = taps;
        y
    }

    fn cases() -> Vec<(AxisMap, AxisMap)> {
        vec![
            (axis(1, 1, 1, 1, 1, false, false), axis(7, 7, 3, 1, 1, false, false)),
            (axis(1, 1, 1, 2, 1, false, false), axis(7, 4, 3, 2, 1, false, false)),
            (axis(1, 1, 1, 1, 1, false, false), axis(4, 7, 3, 1, 1, true, false)),
            (axis(1, 1, 1, 1, 1, false, true), axis(6, 6, 3, 1, 4, false, true)),
            (axis(5, 5, 3, 1, 1, false, false), axis(4, 4, 3, 1, 1, false, false)),
            (axis(5, 3, 3, 2, 1, false, false), axis(4, 2, 3, 2, 1, false, false)),
            (axis(3, 5, 3, 1, 1, true, false), axis(2, 4, 3, 1, 1, true, false)),
            (axis(5, 5, 3, 1, 2, false, true), axis(3, 3, 3, 1, 2, false, true)),
        ]
    }

    #[test]
    fn forward_matches_the_definition_and_backward_is_its_adjoint() {
        let mut rng = Rng::new(3);
        for (rm, cm) in cases() {
            for relu in [false, true] {
                for budget in [1, 1 << 20] {
                    let plan = ConvPlan::new(rm, cm);
                    let (rows, c_in, c_out) = (3, 5, 6);
                    let shape = ConvShape { rows, c_in, c_out, relu_input: relu };
                    let x = random(rows * plan.in_positions * c_in, &mut rng);
                    let w = random(plan.taps * c_in * c_out, &mut rng);
                    let bias = random(c_out, &mut rng);
                    let mut y = vec![0.0; rows * plan.out_positions * c_out];
                    let mut cols = Vec::new();
                    conv_forward(&plan, shape, &x, &w, Some(&bias), &mut y, &mut cols);
                    let want = reference(rm, cm, rows, c_in, c_out, &x, &w, relu);
                    for (i, (g, w)) in y.iter().zip(&want).enumerate() {
                        let w = w + bias[i % c_out] as f64;
                        assert!((*g as f64 - w).abs() < 1e-5, "{rm:?} {cm:?} [{i}]: {g} vs {w}");
                    }
                    // bias None adds onto y
                    let before = y.clone();
                    conv_forward(&plan, shape, &x, &w, None, &mut y, &mut cols);
                    for ((a, b), w) in y.iter().zip(&before).zip(&want) {
                        assert!((*a as f64 - (*b as f64 + w)).abs() < 1e-5);
                    }
                    // <dy, y(x, W)> is linear in W and (away from relu kinks) in x: its gradients
                    let dy = random(y.len(), &mut rng);
                    let mut dw = vec![0.0; w.len()];
                    let mut db = vec![0.0; c_out];
                    let mut dx = vec![0.5; x.len()];
                    conv_backward(&plan, shape, &x, &w, &dy, &mut dw, Some(&mut db), Some(&mut dx), &mut cols, budget);
                    let inner =
                        |x: &[f32], w: &[f32]| -> f64 { reference(rm, cm, rows, c_in, c_out, x, w, relu).iter().zip(&dy).map(|(a, &b)| a * b as f64).sum() };
                    for i in 0..w.len() {
                        let mut e = vec![0.0; w.len()];
                        e[i] = 1.0;
                        let want = inner(&x, &e);
                        assert!((dw[i] as f64 - want).abs() < 1e-4, "dw[{i}] {} vs {want}", dw[i]);
                    }
                    for co in 0..c_out {
                        let want: f64 = dy.iter().skip(co).step_by(c_out).map(|&v| v as f64).sum();
                        assert!((db[co] as f64 - want).abs() < 1e-4);
                    }
                    for i in 0..x.len() {
                        // d<dy, y>/dx_i = [x_i > 0 or no relu]·<dy, y(e_i, W)> (y is linear in relu(x))
                        let mut e = vec![0.0; x.len()];
                        e[i] = 1.0;
                        let want = if relu && x[i] <= 0.0 { 0.0 } else { inner(&e, &w) };
                        assert!((dx[i] as f64 - 0.5 - want).abs() < 1e-4, "dx[{i}] {} vs {want}", dx[i] - 0.5);
                    }
                }
            }
        }
    }

    /// The im2col matrix written from the plan: cols[f·K·C_in + k·C_in + ch] = f(x[r, source(o,
    /// k), ch]) for f = r·P_out + o (0 if none).
    fn im2col(plan: &ConvPlan, rows: usize, c_in: usize, x: &[f32], relu: bool) -> Vec<f32> {
        let (taps, pin, pout) = (plan.taps, plan.in_positions, plan.out_positions);
        let mut cols = vec![0.0; rows * pout * taps * c_in];
        for f in 0..rows * pout {
            let (r, o) = (f / pout, f % pout);
            for k in 0..taps {
                let src = plan.source[o * taps + k];
                if src == NONE {
                    continue;
                }
                for ch in 0..c_in {
                    let v = x[(r * pin + src as usize) * c_in + ch];
                    cols[(f * taps + k) * c_in + ch] = if relu { v.max(0.0) } else { v };
                }
            }
        }
        cols
    }

    #[test]
    fn packed_gathers_give_the_im2col_products_bit_for_bit() {
        // forward = gemm(cols, W); dW = colsᵀ·dy in one product over every row and position;
        // dx = the adjoint gather of dy·Wᵀ in (position, tap) order, whatever the chunking
        let mut rng = Rng::new(9);
        for (rm, cm) in cases() {
            for (c_in, c_out) in [(5, 6), (8, 12), (2, 9), (12, 8), (64, 32)] {
                for relu in [false, true] {
                    let plan = ConvPlan::new(rm, cm);
                    let rows = 3;
                    let shape = ConvShape { rows, c_in, c_out, relu_input: relu };
                    let (m, width) = (rows * plan.out_positions, plan.taps * c_in);
                    let x = random(rows * plan.in_positions * c_in, &mut rng);
                    let w = random(width * c_out, &mut rng);
                    let bias = random(c_out, &mut rng);
                    let dy = random(m * c_out, &mut rng);
                    let cols = im2col(&plan, rows, c_in, &x, relu);
                    let mut want = vec![0.0; m * c_out];
                    linalg::gemm(m, width, c_out, &cols, Layout::Normal, &w, Layout::Normal, &mut want, Epilogue::Bias { bias: &bias, relu: false });
                    let mut got = vec![0.0; m * c_out];
                    let mut scratch = vec![7.0; 4096]; // whatever an earlier call left there
                    conv_forward(&plan, shape, &x, &w, Some(&bias), &mut got, &mut scratch);
                    assert!(got == want, "forward {rm:?} {cm:?} {c_in}->{c_out}");
                    let start = random(width * c_out, &mut rng);
                    let mut want_dw = start.clone();
                    linalg::matmul_tn_add(width, m, c_out, &cols, &dy, &mut want_dw);
                    let mut dcols = vec![0.0; m * width];
                    linalg::gemm(m, c_out, width, &dy, Layout::Normal, &w, Layout::Transposed, &mut dcols, Epilogue::Set);
                    let dx_start = random(x.len(), &mut rng);
                    let mut want_dx = dx_start.clone();
                    plan.scatter(0, m, c_in, &x, relu, &dcols, &mut want_dx);
                    for budget in [1, 2 * width + 1, 1 << 20] {
                        let (mut dw, mut dx) = (start.clone(), dx_start.clone());
                        conv_backward(&plan, shape, &x, &w, &dy, &mut dw, None, Some(&mut dx), &mut scratch, budget);
                        assert!(dw == want_dw, "dW {rm:?} {cm:?} {c_in}->{c_out}");
                        assert!(dx == want_dx, "dx {rm:?} {cm:?} {c_in}->{c_out} budget {budget}");
                    }
                }
            }
        }
    }
}
