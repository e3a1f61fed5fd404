//! Small dense row-major matrix helpers for the SAE and the statistics: matrix products go
//! through candle's CPU matmul (optimised even in dev builds); everything else is plain loops.
use candle_core::{Device, Tensor};

/// `op(a) · op(b)` where `a` is stored row-major as `[m, k]` (or `[k, m]` when `ta`) and `b` as
/// `[k, n]` (or `[n, k]` when `tb`). Returns the `[m, n]` product row-major.
pub fn matmul(a: &[f32], m: usize, k: usize, ta: bool, b: &[f32], n: usize, tb: bool) -> Vec<f32> {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    if m == 0 || n == 0 {
        return Vec::new();
    }
    if k == 0 {
        return vec![0.0; m * n];
    }
    let dev = Device::Cpu;
    let at = if ta {
        Tensor::from_slice(a, (k, m), &dev).and_then(|t| t.t())
    } else {
        Tensor::from_slice(a, (m, k), &dev)
    };
    let bt = if tb {
        Tensor::from_slice(b, (n, k), &dev).and_then(|t| t.t())
    } else {
        Tensor::from_slice(b, (k, n), &dev)
    };
    // Shapes are checked above, so candle cannot fail here except on allocation.
    at.and_then(|a| bt.and_then(|b| a.matmul(&b)))
        .and_then(|c| c.flatten_all())
        .and_then(|c| c.to_vec1::<f32>())
        .expect("CPU matmul of checked shapes")
}

/// Column sums of a row-major `[rows, cols]` matrix.
pub fn col_sums(a: &[f32], cols: usize) -> Vec<f32> {
    let mut s = vec![0.0f32; cols];
    for row in a.chunks_exact(cols) {
        for (acc, v) in s.iter_mut().zip(row) {
            *acc += v;
        }
    }
    s
}

/// Mean over all entries of `(x - column mean)²`: the MSE of predicting each column by its mean.
pub fn centred_mse(x: &[f32], cols: usize) -> f64 {
    let rows = x.len() / cols.max(1);
    if rows == 0 {
        return 0.0;
    }
    let mut mean = vec![0.0f64; cols];
    for row in x.chunks_exact(cols) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let mut s = 0.0;
    for row in x.chunks_exact(cols) {
        for (m, v) in mean.iter().zip(row) {
            let d = *v as f64 - m;
            s += d * d;
        }
    }
    s / x.len() as f64
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        ab += *x as f64 * *y as f64;
        aa += *x as f64 * *x as f64;
        bb += *y as f64 * *y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// `y += a · x` (equal lengths).
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// Dot product in f32 with eight partial sums (so the compiler can vectorise it).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_handles_transposes() {
        // a = [[1,2,3],[4,5,6]] (2x3), b = [[1,0],[0,1],[1,1]] (3x2)
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        assert_eq!(
            matmul(&a, 2, 3, false, &b, 2, false),
            vec![4.0, 5.0, 10.0, 11.0]
        );
        // aᵀ stored as 3x2, bᵀ stored as 2x3.
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        assert_eq!(
            matmul(&at, 2, 3, true, &bt, 2, true),
            vec![4.0, 5.0, 10.0, 11.0]
        );
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - 0.5f64.sqrt()).abs() < 1e-9);
    }
}
