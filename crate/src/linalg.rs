//! Dense f32 matrix kernels for the networks' forward and backward passes. All matrices are
//! row-major and contiguous; "C +=" kernels accumulate into C.
//!
//! (First version: plain loops. Register-blocked SIMD micro-kernels replace them later.)

/// C[m×n] += A[m×k] · B[k×n].
pub fn matmul_add(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    for i in 0..m {
        for p in 0..k {
            let aip = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += aip * b[p * n + j];
            }
        }
    }
}

/// C[m×n] += Aᵀ · B, with A stored [k×m] and B [k×n] (the weight-gradient product xᵀ·dy).
pub fn matmul_tn_add(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= k * m && b.len() >= k * n && c.len() >= m * n);
    for p in 0..k {
        for i in 0..m {
            let api = a[p * m + i];
            for j in 0..n {
                c[i * n + j] += api * b[p * n + j];
            }
        }
    }
}

/// C[m×n] += A · Bᵀ, with A stored [m×k] and B [n×k] (the input-gradient product dy·Wᵀ).
pub fn matmul_nt_add(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += a[i * k + p] * b[j * k + p];
            }
            c[i * n + j] += sum;
        }
    }
}

/// y[r, j] = bias[j] for every row (the start of y = x·W + b).
pub fn fill_rows(rows: usize, n: usize, bias: &[f32], y: &mut [f32]) {
    for r in 0..rows {
        y[r * n..(r + 1) * n].copy_from_slice(&bias[..n]);
    }
}

/// y = max(y, 0) elementwise.
pub fn relu_in_place(y: &mut [f32]) {
    for v in y {
        *v = v.max(0.0);
    }
}

/// dh[i] = 0 where the ReLU output h[i] is 0 (no gradient flows through an inactive unit).
pub fn relu_backward(h: &[f32], dh: &mut [f32]) {
    for (d, &v) in dh.iter_mut().zip(h) {
        if v <= 0.0 {
            *d = 0.0;
        }
    }
}

/// out[j] += Σ_r y[r, j] (the bias gradient of y = x·W + b).
pub fn add_column_sums(rows: usize, n: usize, y: &[f32], out: &mut [f32]) {
    for r in 0..rows {
        for j in 0..n {
            out[j] += y[r * n + j];
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

    /// Reference: C[i,j] + Σ_p A(i,p)·B(p,j) in f64, with accessors for the transposed layouts.
    fn naive(m: usize, k: usize, n: usize, a: impl Fn(usize, usize) -> f32, b: impl Fn(usize, usize) -> f32, c: &[f32]) -> Vec<f32> {
        let mut out = c.to_vec();
        for i in 0..m {
            for j in 0..n {
                let mut sum = c[i * n + j] as f64;
                for p in 0..k {
                    sum += a(i, p) as f64 * b(p, j) as f64;
                }
                out[i * n + j] = sum as f32;
            }
        }
        out
    }

    fn assert_close(got: &[f32], want: &[f32], k: usize, what: &str) {
        for (idx, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * (k as f32 + 1.0), "{what}[{idx}]: {g} vs {w}");
        }
    }

    fn sizes() -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for m in 1..=37 {
            for (k, n) in [(1, 1), (3, 5), (20, 50), (50, 20), (37, 9), (8, 16), (17, 33)] {
                out.push((m, k, n));
            }
        }
        for k in 1..=37 {
            out.push((13, k, 11));
        }
        for n in 1..=37 {
            out.push((9, 7, n));
        }
        out.push((256, 50, 50));
        out
    }

    #[test]
    fn matmul_add_matches_naive() {
        let mut rng = Rng::new(1);
        for (m, k, n) in sizes() {
            let (a, b, c) = (random(m * k, &mut rng), random(k * n, &mut rng), random(m * n, &mut rng));
            let want = naive(m, k, n, |i, p| a[i * k + p], |p, j| b[p * n + j], &c);
            let mut got = c.clone();
            matmul_add(m, k, n, &a, &b, &mut got);
            assert_close(&got, &want, k, &format!("nn {m}x{k}x{n}"));
        }
    }

    #[test]
    fn matmul_tn_add_matches_naive() {
        let mut rng = Rng::new(2);
        for (m, k, n) in sizes() {
            let (a, b, c) = (random(k * m, &mut rng), random(k * n, &mut rng), random(m * n, &mut rng));
            let want = naive(m, k, n, |i, p| a[p * m + i], |p, j| b[p * n + j], &c);
            let mut got = c.clone();
            matmul_tn_add(m, k, n, &a, &b, &mut got);
            assert_close(&got, &want, k, &format!("tn {m}x{k}x{n}"));
        }
    }

    #[test]
    fn matmul_nt_add_matches_naive() {
        let mut rng = Rng::new(3);
        for (m, k, n) in sizes() {
            let (a, b, c) = (random(m * k, &mut rng), random(n * k, &mut rng), random(m * n, &mut rng));
            let want = naive(m, k, n, |i, p| a[i * k + p], |p, j| b[j * k + p], &c);
            let mut got = c.clone();
            matmul_nt_add(m, k, n, &a, &b, &mut got);
            assert_close(&got, &want, k, &format!("nt {m}x{k}x{n}"));
        }
    }

    #[test]
    fn elementwise_helpers() {
        let mut y = vec![0.0; 6];
        fill_rows(2, 3, &[1.0, -2.0, 3.0], &mut y);
        assert_eq!(y, [1.0, -2.0, 3.0, 1.0, -2.0, 3.0]);
        relu_in_place(&mut y);
        assert_eq!(y, [1.0, 0.0, 3.0, 1.0, 0.0, 3.0]);
        let mut dh = vec![5.0; 6];
        relu_backward(&y, &mut dh);
        assert_eq!(dh, [5.0, 0.0, 5.0, 5.0, 0.0, 5.0]);
        let mut sums = vec![1.0; 3];
        add_column_sums(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut sums);
        assert_eq!(sums, [6.0, 8.0, 10.0]);
    }
}
