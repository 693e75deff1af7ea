//! Convolutions over a grid of positions (1-D: H = 1; 2-D: H×W, row-major), channel-last
//! (x[r, position, channel]), by im2col + `linalg::gemm`: for each output position the K taps'
//! input vectors are gathered into one row of `cols` ((rows·P_out) × (K·C_in)), and the
//! convolution is cols·W with W stored [K, C_in, C_out] (tap-major), so the products run in the
//! register-blocked matrix kernels. A `ConvPlan` tabulates, for every (output position, tap), the
//! input position it reads, or none (zero padding); the same gather covers stride 2 (down), nearest
//! upsampling (up), dilation and circular wrap-around. Rows are processed in chunks so `cols`
//! stays small (at most `budget` values).
//!
//! Rounding: each output is the gemm's in-order sum over (tap, input channel) (see linalg.rs), the
//! same operations at every position, so a circular plan commutes exactly with cyclic shifts.

use crate::linalg::{self, Epilogue, Layout};
use crate::simd::F4;

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

    /// Rows per chunk so that a chunk's cols ((rows·P_out) × (K·C_in)) holds at most `budget` values.
    fn chunk_rows(&self, c_in: usize, budget: usize) -> usize {
        (budget / (self.out_positions * self.taps * c_in).max(1)).max(1)
    }

    /// cols[(r·P_out + o)·K·C_in + k·C_in + ch] = f(x[r0 + r, source(o, k), ch]) (0 if none), with
    /// f = relu if `relu_input`, for the rows r0..r0+n.
    fn gather(&self, r0: usize, n: usize, c_in: usize, x: &[f32], relu_input: bool, cols: &mut [f32]) {
        let (taps, pin, pout) = (self.taps, self.in_positions, self.out_positions);
        for r in 0..n {
            let xr = &x[(r0 + r) * pin * c_in..(r0 + r + 1) * pin * c_in];
            let cr = &mut cols[r * pout * taps * c_in..(r + 1) * pout * taps * c_in];
            for (dst, &src) in cr.chunks_exact_mut(c_in).zip(&self.source) {
                if src == NONE {
                    dst.fill(0.0);
                } else {
                    let s = &xr[src as usize * c_in..(src as usize + 1) * c_in];
                    if relu_input {
                        relu_copy(s, dst);
                    } else {
                        dst.copy_from_slice(s);
                    }
                }
            }
        }
    }

    /// The adjoint of `gather`: dx[r0 + r, source(o, k), ch] += dcols[...] (only where
    /// x > 0 if `relu_input`: the gradient at relu's input), in the order of (r, o, k).
    #[allow(clippy::too_many_arguments)]
    fn scatter(&self, r0: usize, n: usize, c_in: usize, x: &[f32], relu_input: bool, dcols: &[f32], dx: &mut [f32]) {
        let (taps, pin, pout) = (self.taps, self.in_positions, self.out_positions);
        for r in 0..n {
            let base = (r0 + r) * pin * c_in;
            let cr = &dcols[r * pout * taps * c_in..(r + 1) * pout * taps * c_in];
            for (g, &src) in cr.chunks_exact(c_in).zip(&self.source) {
                if src == NONE {
                    continue;
                }
                let at = base + src as usize * c_in;
                let d = &mut dx[at..at + c_in];
                if relu_input {
                    add_where_positive(g, &x[at..at + c_in], d);
                } else {
                    for (d, &gv) in d.iter_mut().zip(g) {
                        *d += gv;
                    }
                }
            }
        }
    }
}

/// dst = max(src, 0), four lanes at a time. (A scalar `f32::max` loop does not vectorise: its
/// NaN rule differs from wasm's f32x4.max, and the gather ran at half the gemm's speed.)
#[inline(always)]
fn relu_copy(src: &[f32], dst: &mut [f32]) {
    let mut d4 = dst.chunks_exact_mut(4);
    let mut s4 = src.chunks_exact(4);
    for (d, s) in (&mut d4).zip(&mut s4) {
        F4::load(s).relu().store(d);
    }
    for (d, &v) in d4.into_remainder().iter_mut().zip(s4.remainder()) {
        *d = if v > 0.0 { v } else { 0.0 }; // as F4::relu: NaN and -0 become +0
    }
}

/// d += g where x > 0 (relu's gradient at its input), four lanes at a time.
#[inline(always)]
fn add_where_positive(g: &[f32], x: &[f32], d: &mut [f32]) {
    let mut d4 = d.chunks_exact_mut(4);
    let (mut g4, mut x4) = (g.chunks_exact(4), x.chunks_exact(4));
    for ((d, g), x) in (&mut d4).zip(&mut g4).zip(&mut x4) {
        F4::load(d).add(F4::load(g).keep_where_positive(F4::load(x))).store(d);
    }
    for ((d, &gv), &xv) in d4.into_remainder().iter_mut().zip(g4.remainder()).zip(x4.remainder()) {
        *d += if xv > 0.0 { gv } else { 0.0 };
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
/// or y += Σ ... (bias = None). f = relu if `relu_input`. W is [K, C_in, C_out].
#[allow(clippy::too_many_arguments)]
pub fn conv_forward(plan: &ConvPlan, shape: ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32], cols: &mut Vec<f32>, budget: usize) {
    let ConvShape { rows, c_in, c_out, relu_input } = shape;
    let (pout, width) = (plan.out_positions, plan.taps * c_in);
    let chunk = plan.chunk_rows(c_in, budget).min(rows.max(1));
    if cols.len() < chunk * pout * width {
        cols.resize(chunk * pout * width, 0.0);
    }
    let mut r0 = 0;
    while r0 < rows {
        let n = chunk.min(rows - r0);
        plan.gather(r0, n, c_in, x, relu_input, cols);
        let out = &mut y[r0 * pout * c_out..(r0 + n) * pout * c_out];
        let epilogue = match bias {
            Some(bias) => Epilogue::Bias { bias, relu: false },
            None => Epilogue::Add,
        };
        linalg::gemm(n * pout, width, c_out, cols, Layout::Normal, weight, Layout::Normal, out, epilogue);
        r0 += n;
    }
}

/// Backward of `conv_forward` given dy: dW += colsᵀ·dy, dbias += Σ_{r,o} dy (if given), and,
/// if `dx` is given, dx += scatter(dy·Wᵀ) (masked by [x > 0] if `relu_input`).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    plan: &ConvPlan,
    shape: ConvShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    mut dx: Option<&mut [f32]>,
    cols: &mut Vec<f32>,
    budget: usize,
) {
    let ConvShape { rows, c_in, c_out, relu_input } = shape;
    let (pout, width) = (plan.out_positions, plan.taps * c_in);
    if let Some(dbias) = dbias {
        linalg::add_column_sums(rows * pout, c_out, dy, dbias);
    }
    let chunk = plan.chunk_rows(c_in, budget).min(rows.max(1));
    if cols.len() < chunk * pout * width {
        cols.resize(chunk * pout * width, 0.0);
    }
    let mut r0 = 0;
    while r0 < rows {
        let n = chunk.min(rows - r0);
        let dy_chunk = &dy[r0 * pout * c_out..(r0 + n) * pout * c_out];
        plan.gather(r0, n, c_in, x, relu_input, cols);
        linalg::matmul_tn_add(width, n * pout, c_out, cols, dy_chunk, &mut dweight[..width * c_out]);
        if let Some(dx) = dx.as_deref_mut() {
            // dcols = dy·Wᵀ, in the same buffer
            linalg::gemm(n * pout, c_out, width, dy_chunk, Layout::Normal, weight, Layout::Transposed, cols, Epilogue::Set);
            plan.scatter(r0, n, c_in, x, relu_input, cols, dx);
        }
        r0 += n;
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
                    conv_forward(&plan, shape, &x, &w, Some(&bias), &mut y, &mut cols, budget);
                    let want = reference(rm, cm, rows, c_in, c_out, &x, &w, relu);
                    for (i, (g, w)) in y.iter().zip(&want).enumerate() {
                        let w = w + bias[i % c_out] as f64;
                        assert!((*g as f64 - w).abs() < 1e-5, "{rm:?} {cm:?} [{i}]: {g} vs {w}");
                    }
                    // bias None adds onto y
                    let before = y.clone();
                    conv_forward(&plan, shape, &x, &w, None, &mut y, &mut cols, budget);
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
}
