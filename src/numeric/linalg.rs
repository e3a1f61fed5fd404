//! Dense linear algebra on small row-major `f64` matrices, shared by the methods: the Cholesky
//! factor of a symmetric positive-definite matrix, SPD solves and inverses built on it, and a
//! Gaussian elimination with partial pivoting for general square systems.
//!
//! Small systems only (a fit's Hessian, a Gram matrix of SAE directions); no BLAS, no I/O.
#![allow(clippy::needless_range_loop)] // index loops over row-major matrices read clearer

/// The lower Cholesky factor `L` (row-major `[n, n]`, `a = L Lᵀ`) of the symmetric matrix `a`
/// (only its lower triangle is read). None when a pivot falls to `min_pivot` or below (`a` not
/// positive definite, numerically).
pub fn cholesky(a: &[f64], n: usize, min_pivot: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= min_pivot {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = rhs` for a Cholesky factor `l` of [`cholesky`].
pub fn cholesky_solve(l: &[f64], rhs: &[f64], n: usize) -> Vec<f64> {
    let mut y = rhs.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= l[i * n + k] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= l[k * n + i] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    y
}

/// Solves the symmetric positive definite system `a x = b` (`a` row-major `[n, n]`) by
/// Cholesky; also returns the inverse's diagonal. None when `a` is not positive definite (a
/// pivot ≤ 1e-300).
pub fn spd_solve(a: &[f64], b: &[f64], n: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let l = cholesky(a, n, 1e-300)?;
    let x = cholesky_solve(&l, b, n);
    let mut diag = vec![0.0; n];
    let mut e = vec![0.0; n];
    for i in 0..n {
        e.iter_mut().for_each(|v| *v = 0.0);
        e[i] = 1.0;
        diag[i] = cholesky_solve(&l, &e, n)[i];
    }
    Some((x, diag))
}

/// The inverse of a symmetric positive-definite matrix (row-major `[p, p]`) by Cholesky
/// (`Σ = L⁻ᵀ L⁻¹`). None when `a` is not positive definite (a pivot ≤ 0).
pub fn spd_inverse(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let l = cholesky(a, p, 0.0)?;
    // inverse of L, then Σ = L⁻ᵀ L⁻¹
    let mut li = vec![0.0; p * p];
    for i in 0..p {
        li[i * p + i] = 1.0 / l[i * p + i];
        for j in 0..i {
            let mut s = 0.0;
            for k in j..i {
                s -= l[i * p + k] * li[k * p + j];
            }
            li[i * p + j] = s / l[i * p + i];
        }
    }
    let mut inv = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let mut s = 0.0;
            for k in i..p {
                s += li[k * p + i] * li[k * p + j];
            }
            inv[i * p + j] = s;
            inv[j * p + i] = s;
        }
    }
    Some(inv)
}

/// Solves the square system `a x = b` (`a` row-major `[n, n]`) by Gauss–Jordan elimination with
/// partial pivoting. None when a pivot is below 1e-12 in magnitude (singular, numerically).
pub fn gauss_solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for c in 0..n {
        let piv = (c..n).max_by(|i, j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[piv * n + c].abs() < 1e-12 {
            return None;
        }
        for k in 0..n {
            a.swap(c * n + k, piv * n + k);
        }
        b.swap(c, piv);
        for r in 0..n {
            if r != c {
                let f = a[r * n + c] / a[c * n + c];
                if f != 0.0 {
                    for k in c..n {
                        a[r * n + k] -= f * a[c * n + k];
                    }
                    b[r] -= f * b[c];
                }
            }
        }
    }
    Some((0..n).map(|i| b[i] / a[i * n + i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spd_solve_inverse_and_gauss_agree() {
        let a = [4.0, 2.0, 0.6, 2.0, 3.0, 0.4, 0.6, 0.4, 2.0];
        let b = [1.0, -2.0, 0.5];
        let (x, diag) = spd_solve(&a, &b, 3).unwrap();
        let inv = spd_inverse(&a, 3).unwrap();
        let g = gauss_solve(a.to_vec(), b.to_vec(), 3).unwrap();
        for i in 0..3 {
            let xi: f64 = (0..3).map(|k| inv[i * 3 + k] * b[k]).sum();
            assert!((xi - x[i]).abs() < 1e-12 && (g[i] - x[i]).abs() < 1e-12);
            assert!((diag[i] - inv[i * 3 + i]).abs() < 1e-12);
        }
        assert!(spd_inverse(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(gauss_solve(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 1.0], 2).is_none());
    }
}
