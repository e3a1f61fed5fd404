//! Statistics for expressed preferences: standardisation, logistic regression by Newton/IRLS
//! with Wald intervals and p-values, penalised logistic regression (L1 with unpenalised columns,
//! L2) by coordinate descent with a majorised curvature, the LASSO entry order along a λ path,
//! and the ROC AUC. Dense row-major `f64` data; no I/O.
#![allow(clippy::needless_range_loop)] // index loops over several parallel arrays read clearer
use crate::numeric::linalg::spd_solve;
use crate::numeric::{normal_two_sided_p, ranks, sigmoid};

/// Column means and standard deviations of a row-major `[rows, cols]` matrix (sd 0 → 1).
pub fn col_stats(x: &[f64], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = (x.len() / cols.max(1)).max(1);
    let mut mean = vec![0.0; cols];
    for r in x.chunks_exact(cols) {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let mut var = vec![0.0; cols];
    for r in x.chunks_exact(cols) {
        for c in 0..cols {
            var[c] += (r[c] - mean[c]).powi(2);
        }
    }
    let sd = var
        .iter()
        .map(|v| (v / rows as f64).sqrt())
        .map(|s| if s > 1e-12 { s } else { 1.0 })
        .collect();
    (mean, sd)
}

/// Standardises columns in place with the given means and sds.
pub fn standardise(x: &mut [f64], mean: &[f64], sd: &[f64]) {
    let cols = mean.len();
    for r in x.chunks_exact_mut(cols) {
        for c in 0..cols {
            r[c] = (r[c] - mean[c]) / sd[c];
        }
    }
}

/// A fitted logistic regression with Wald statistics (intercept first when fitted).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogitFit {
    /// Coefficients (intercept first when fitted).
    pub coef: Vec<f64>,
    /// Standard errors.
    pub se: Vec<f64>,
    /// Two-sided Wald p-values.
    pub p: Vec<f64>,
    /// Newton iterations used.
    pub iterations: usize,
    /// False if Newton did not converge (e.g. separable data).
    pub converged: bool,
}

impl LogitFit {
    /// 95% Wald interval of coefficient `i`.
    pub fn ci95(&self, i: usize) -> (f64, f64) {
        (
            self.coef[i] - 1.959_964 * self.se[i],
            self.coef[i] + 1.959_964 * self.se[i],
        )
    }
}

/// Maximum-likelihood logistic regression by Newton/IRLS (`x` row-major `[rows, cols]`, `y` in
/// {0, 1}); `intercept` prepends a constant column. A tiny ridge (1e-8) keeps the Hessian
/// invertible; non-convergence (separation) is flagged, not hidden.
pub fn logistic_irls(x: &[f64], cols: usize, y: &[f64], intercept: bool) -> Option<LogitFit> {
    let rows = y.len();
    let p = cols + intercept as usize;
    let row = |i: usize| -> Vec<f64> {
        let mut r = Vec::with_capacity(p);
        if intercept {
            r.push(1.0);
        }
        r.extend_from_slice(&x[i * cols..(i + 1) * cols]);
        r
    };
    let mut beta = vec![0.0; p];
    let mut converged = false;
    let mut iterations = 0;
    let mut diag = vec![0.0; p];
    for it in 0..100 {
        iterations = it + 1;
        let mut h = vec![0.0; p * p];
        let mut g = vec![0.0; p];
        for i in 0..rows {
            let r = row(i);
            let eta: f64 = r.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let mu = sigmoid(eta);
            let w = (mu * (1.0 - mu)).max(1e-12);
            for a in 0..p {
                g[a] += r[a] * (y[i] - mu);
                for b in 0..=a {
                    h[a * p + b] += w * r[a] * r[b];
                }
            }
        }
        for a in 0..p {
            h[a * p + a] += 1e-8;
            for b in 0..a {
                h[b * p + a] = h[a * p + b];
            }
        }
        let (step, d) = spd_solve(&h, &g, p)?;
        diag = d;
        beta.iter_mut().zip(&step).for_each(|(b, s)| *b += s);
        let size = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
        if !beta.iter().all(|b| b.is_finite()) {
            return None;
        }
        if size < 1e-9 {
            converged = true;
            break;
        }
    }
    let se: Vec<f64> = diag.iter().map(|v| v.max(0.0).sqrt()).collect();
    let pv = beta
        .iter()
        .zip(&se)
        .map(|(b, s)| {
            if *s > 0.0 {
                normal_two_sided_p(b / s)
            } else {
                1.0
            }
        })
        .collect();
    Some(LogitFit {
        coef: beta,
        se,
        p: pv,
        iterations,
        converged,
    })
}

/// Penalised logistic regression by cyclic coordinate descent with the curvature bound 1/4
/// (each update is a majorise–minimise step, so the objective never increases). Minimises
/// `mean log-loss + l1 Σ_{j penalised} |β_j| + l2/2 Σ_{j penalised} β_j²`; the intercept and the
/// columns with `penalised[j] == false` are free. Warm-started from `init` when given.
#[allow(clippy::too_many_arguments)]
pub fn logistic_penalised(
    x: &[f64],
    cols: usize,
    y: &[f64],
    penalised: &[bool],
    l1: f64,
    l2: f64,
    init: Option<(f64, &[f64])>,
    max_sweeps: usize,
) -> (f64, Vec<f64>) {
    let n = y.len();
    let nf = n.max(1) as f64;
    let (mut b0, mut beta) = match init {
        Some((b, v)) => (b, v.to_vec()),
        None => (0.0, vec![0.0; cols]),
    };
    let mut eta: Vec<f64> = (0..n)
        .map(|i| {
            b0 + x[i * cols..(i + 1) * cols]
                .iter()
                .zip(&beta)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        })
        .collect();
    let h: Vec<f64> = (0..cols)
        .map(|j| 0.25 * (0..n).map(|i| x[i * cols + j].powi(2)).sum::<f64>() / nf)
        .collect();
    for _ in 0..max_sweeps {
        let mut max_change = 0.0f64;
        // Intercept.
        let g0: f64 = (0..n).map(|i| sigmoid(eta[i]) - y[i]).sum::<f64>() / nf;
        let d0 = -g0 / 0.25;
        b0 += d0;
        eta.iter_mut().for_each(|e| *e += d0);
        max_change = max_change.max(d0.abs());
        for j in 0..cols {
            if h[j] <= 0.0 {
                continue;
            }
            let g: f64 = (0..n)
                .map(|i| (sigmoid(eta[i]) - y[i]) * x[i * cols + j])
                .sum::<f64>()
                / nf;
            let old = beta[j];
            let new = if penalised[j] {
                let u = h[j] * old - g;
                let s = u.signum() * (u.abs() - l1).max(0.0);
                s / (h[j] + l2)
            } else {
                old - g / h[j]
            };
            let d = new - old;
            if d != 0.0 {
                beta[j] = new;
                for i in 0..n {
                    eta[i] += d * x[i * cols + j];
                }
                max_change = max_change.max(d.abs());
            }
        }
        if max_change < 1e-7 {
            break;
        }
    }
    (b0, beta)
}

/// The LASSO path over `n_lambdas` log-spaced penalties from λ_max down to λ_max/100: the order
/// in which penalised columns first become non-zero (ties: larger |β| first), plus each
/// column's entry λ (None if it never entered).
pub fn lasso_entry_order(
    x: &[f64],
    cols: usize,
    y: &[f64],
    penalised: &[bool],
    n_lambdas: usize,
) -> (Vec<usize>, Vec<Option<f64>>) {
    let n = y.len().max(1) as f64;
    // λ_max: the smallest penalty at which every penalised coefficient stays zero, given the
    // unpenalised fit.
    let free: Vec<bool> = penalised.iter().map(|p| !p).collect();
    let masked: Vec<f64> = x
        .chunks_exact(cols)
        .flat_map(|r| r.iter().zip(&free).map(|(v, f)| if *f { *v } else { 0.0 }))
        .collect();
    let (fb0, fbeta) =
        logistic_penalised(&masked, cols, y, &vec![false; cols], 0.0, 0.0, None, 500);
    let mut lmax = 0.0f64;
    for j in 0..cols {
        if !penalised[j] {
            continue;
        }
        let g: f64 = (0..y.len())
            .map(|i| {
                let eta = fb0
                    + masked[i * cols..(i + 1) * cols]
                        .iter()
                        .zip(&fbeta)
                        .map(|(a, b)| a * b)
                        .sum::<f64>();
                (sigmoid(eta) - y[i]) * x[i * cols + j]
            })
            .sum::<f64>()
            / n;
        lmax = lmax.max(g.abs());
    }
    let mut entry: Vec<Option<f64>> = vec![None; cols];
    let mut order = Vec::new();
    let mut warm = (fb0, fbeta);
    for s in 0..n_lambdas.max(2) {
        let frac = s as f64 / (n_lambdas.max(2) - 1) as f64;
        let lam = lmax * (0.01f64).powf(frac) * 0.999;
        let (b0, beta) = logistic_penalised(
            x,
            cols,
            y,
            penalised,
            lam,
            0.0,
            Some((warm.0, &warm.1)),
            500,
        );
        let mut new: Vec<usize> = (0..cols)
            .filter(|&j| penalised[j] && beta[j] != 0.0 && entry[j].is_none())
            .collect();
        new.sort_by(|a, b| beta[*b].abs().total_cmp(&beta[*a].abs()));
        for j in new {
            entry[j] = Some(lam);
            order.push(j);
        }
        warm = (b0, beta);
    }
    (order, entry)
}

/// Area under the ROC curve of `score` for binary `label` (ties count one half); None when one
/// class is absent.
pub fn auc(score: &[f64], label: &[f64]) -> Option<f64> {
    let npos = label.iter().filter(|l| **l > 0.5).count() as f64;
    let nneg = label.len() as f64 - npos;
    if npos == 0.0 || nneg == 0.0 {
        return None;
    }
    // Mann–Whitney with average ranks (half-integers: the sum is exact in any order).
    let rank_sum: f64 = ranks(score)
        .iter()
        .zip(label)
        .filter(|(_, l)| **l > 0.5)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - npos * (npos + 1.0) / 2.0) / (npos * nneg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.75)
        );
        assert_eq!(auc(&[1.0, 1.0], &[0.0, 1.0]), Some(0.5));
        assert_eq!(auc(&[1.0, 2.0], &[1.0, 1.0]), None);
    }
}
