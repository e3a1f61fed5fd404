//! The dissection model: Bayesian logistic regression without intercept and with an
//! independent Laplace(0, b) prior on every weight,
//!
//! ```text
//! p(y_i = A | x_i, w) = σ(x_i · w),     w_j ~ Laplace(0, b).
//! ```
//!
//! With labels coded s_i = +1 (A preferred) / −1 (B preferred) and z_i = s_i x_i, the negative
//! log posterior ("potential", up to a constant) is
//! `U(w) = Σ_i softplus(−z_i · w) + Σ_j |w_j| / b`.
//!
//! The prior is not differentiable at w_j = 0. [`Posterior::potential_and_grad`] uses the
//! subgradient sign(w_j)/b with sign(0) = 0, which is what NumPyro's NUTS gets from `jax.grad`
//! of `|w|`. The set {w_j = 0} has measure zero, so leapfrog trajectories essentially never
//! evaluate there; the kink only costs some energy error when a trajectory crosses 0.
//!
//! This file only evaluates the model; samplers and optimisers live in `nuts` and `laplace`.
use crate::numeric::{sigmoid, softplus};

/// A logistic-regression posterior over `p` weights from `n` oriented pairs.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// Row-major n × p matrix of z_i = s_i x_i.
    z: Vec<f64>,
    /// The same matrix column-major (p columns of n), for the vectorised kernel.
    zt: Vec<f64>,
    n: usize,
    p: usize,
    /// Laplace prior scale b.
    prior_scale: f64,
}

impl Posterior {
    /// Builds the posterior from feature rows `x` (each of length `p`), labels `a_preferred`
    /// (true when A won) and the Laplace prior scale `b > 0`.
    pub fn new(x: &[Vec<f64>], a_preferred: &[bool], p: usize, prior_scale: f64) -> Self {
        assert_eq!(x.len(), a_preferred.len(), "one label per row");
        let mut z = Vec::with_capacity(x.len() * p);
        for (row, &a) in x.iter().zip(a_preferred) {
            assert_eq!(row.len(), p, "row width");
            let s = if a { 1.0 } else { -1.0 };
            z.extend(row.iter().map(|v| s * v));
        }
        let n = x.len();
        let mut zt = vec![0.0; n * p];
        for i in 0..n {
            for j in 0..p {
                zt[j * n + i] = z[i * p + j];
            }
        }
        Self {
            z,
            zt,
            n,
            p,
            prior_scale,
        }
    }

    /// Number of weights.
    pub fn dim(&self) -> usize {
        self.p
    }

    /// Number of pairs.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The prior scale b.
    pub fn prior_scale(&self) -> f64 {
        self.prior_scale
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.z[i * self.p..(i + 1) * self.p]
    }

    /// Negative log-likelihood Σ softplus(−z_i·w) and its gradient (written into `grad`).
    pub fn nll_and_grad(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        super::logistic_kernel::nll_and_grad(&self.zt, self.n, w, grad)
    }

    /// Potential U(w) = nll + Σ|w_j|/b and its (sub)gradient, sign(0) = 0.
    pub fn potential_and_grad(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        let mut u = self.nll_and_grad(w, grad);
        let inv_b = 1.0 / self.prior_scale;
        for (g, &wj) in grad.iter_mut().zip(w) {
            u += wj.abs() * inv_b;
            if wj > 0.0 {
                *g += inv_b;
            } else if wj < 0.0 {
                *g -= inv_b;
            }
        }
        u
    }

    /// Potential only.
    pub fn potential(&self, w: &[f64]) -> f64 {
        let mut u: f64 = w.iter().map(|v| v.abs() / self.prior_scale).sum();
        for i in 0..self.n {
            let m: f64 = self.row(i).iter().zip(w).map(|(a, b)| a * b).sum();
            u += softplus(-m);
        }
        u
    }

    /// Hessian of the negative log-likelihood, Σ σ(m)(1−σ(m)) z_i z_iᵀ, row-major p × p.
    pub fn nll_hessian(&self, w: &[f64]) -> Vec<f64> {
        let p = self.p;
        let mut h = vec![0.0; p * p];
        for i in 0..self.n {
            let r = self.row(i);
            let m: f64 = r.iter().zip(w).map(|(a, b)| a * b).sum();
            let s = sigmoid(m);
            let c = s * (1.0 - s);
            for a in 0..p {
                if r[a] == 0.0 {
                    continue;
                }
                let ca = c * r[a];
                for b in a..p {
                    h[a * p + b] += ca * r[b];
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                h[a * p + b] = h[b * p + a];
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let x = vec![
            vec![1.0, -1.0, 0.0],
            vec![0.5, 1.0, -1.0],
            vec![-1.0, 0.0, 1.0],
        ];
        let post = Posterior::new(&x, &[true, false, true], 3, 0.3);
        let w = [0.4, -0.2, 0.7];
        let mut g = [0.0; 3];
        let u = post.potential_and_grad(&w, &mut g);
        assert!((u - post.potential(&w)).abs() < 1e-12);
        for j in 0..3 {
            let mut wp = w;
            wp[j] += 1e-6;
            let mut wm = w;
            wm[j] -= 1e-6;
            let fd = (post.potential(&wp) - post.potential(&wm)) / 2e-6;
            assert!((fd - g[j]).abs() < 1e-6, "{j}: {fd} vs {}", g[j]);
        }
        let h = post.nll_hessian(&w);
        let mut g0 = [0.0; 3];
        let mut g1 = [0.0; 3];
        for j in 0..3 {
            let mut wp = w;
            wp[j] += 1e-6;
            post.nll_and_grad(&wp, &mut g1);
            post.nll_and_grad(&w, &mut g0);
            for k in 0..3 {
                let fd = (g1[k] - g0[k]) / 1e-6;
                assert!((fd - h[k * 3 + j]).abs() < 1e-4);
            }
        }
    }
}
