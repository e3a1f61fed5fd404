//! Small numerical helpers: the normal distribution (cdf, log-cdf, pdf), logistic functions,
//! sample quantiles, and rank correlations (Pearson, Spearman, Kendall τ-b).
//!
//! Pure functions on slices; no I/O, no randomness.

/// `log(1 + exp(x))`, stable for large |x|.
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// The logistic function 1 / (1 + exp(−x)), stable for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(exp(a) + exp(b))`.
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// `log erfc(x)` for x ≥ 0 by the Chebyshev-fitted rational form of Press et al. (Numerical
/// Recipes §6.2; fractional error < 1.2e-7), evaluated in log space so it never underflows.
fn log_erfc_nonneg(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - x * x + poly
}

/// The complementary error function.
pub fn erfc(x: f64) -> f64 {
    if x >= 0.0 {
        log_erfc_nonneg(x).exp()
    } else {
        2.0 - log_erfc_nonneg(-x).exp()
    }
}

/// Standard normal cdf Φ(x).
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// `log Φ(x)`, accurate far into the lower tail.
pub fn norm_log_cdf(x: f64) -> f64 {
    let z = -x / std::f64::consts::SQRT_2;
    if z >= 0.0 {
        (0.5f64).ln() + log_erfc_nonneg(z)
    } else {
        norm_cdf(x).ln()
    }
}

/// `log φ(x)`, the standard normal log density.
pub fn norm_log_pdf(x: f64) -> f64 {
    -0.5 * x * x - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `v` with linear interpolation between order statistics
/// (NumPy's default). `v` need not be sorted. NaN for an empty slice.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    quantile_sorted(&s, q)
}

/// [`quantile`] of an already sorted slice.
pub fn quantile_sorted(s: &[f64], q: f64) -> f64 {
    if s.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Mean and sample standard deviation (n − 1 denominator).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// Pearson correlation; NaN when either vector is constant or they differ in length.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.len() < 2 {
        return f64::NAN;
    }
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    sab / (saa * sbb).sqrt()
}

/// Ranks 1..n with ties given their average rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson of average ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    pearson(&ranks(a), &ranks(b))
}

/// Kendall's τ-b (ties in either vector handled as in SciPy's default); NaN when undefined.
pub fn kendall_tau_b(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.len() < 2 {
        return f64::NAN;
    }
    let (mut conc, mut disc, mut tie_a, mut tie_b) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..a.len() {
        for j in (i + 1)..a.len() {
            let da = (a[i] - a[j]).signum() * f64::from(a[i] != a[j]);
            let db = (b[i] - b[j]).signum() * f64::from(b[i] != b[j]);
            if da == 0.0 && db == 0.0 {
                continue;
            } else if da == 0.0 {
                tie_a += 1;
            } else if db == 0.0 {
                tie_b += 1;
            } else if da == db {
                conc += 1;
            } else {
                disc += 1;
            }
        }
    }
    let n1 = (conc + disc + tie_a) as f64;
    let n2 = (conc + disc + tie_b) as f64;
    if n1 == 0.0 || n2 == 0.0 {
        return f64::NAN;
    }
    (conc - disc) as f64 / (n1 * n2).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_known_values() {
        // reference values from scipy.stats.norm.cdf / logcdf
        assert!((norm_cdf(1.959963984540054) - 0.975).abs() < 1e-7);
        assert!((norm_cdf(-1.0) - 0.15865525393145707).abs() < 1e-7);
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((norm_log_cdf(-10.0) - (-53.23128515051247)).abs() < 1e-5);
        assert!((norm_log_cdf(-40.0) - (-804.6084420137538)).abs() < 1e-4);
    }

    #[test]
    fn correlations_match_scipy() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [2.0, 1.0, 4.0, 3.0, 5.0];
        // scipy: pearsonr = 0.8, spearmanr = 0.8, kendalltau = 0.6
        assert!((pearson(&a, &b) - 0.8).abs() < 1e-12);
        assert!((spearman(&a, &b) - 0.8).abs() < 1e-12);
        assert!((kendall_tau_b(&a, &b) - 0.6).abs() < 1e-12);
        // with ties: scipy.stats.kendalltau([1,1,2,3],[1,2,2,3]) = 0.8
        let t = kendall_tau_b(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 2.0, 3.0]);
        assert!((t - 0.8).abs() < 1e-12, "{t}");
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [3.0, 1.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.025) - 1.075).abs() < 1e-12);
        assert_eq!(ranks(&[10.0, 20.0, 10.0]), vec![1.5, 3.0, 1.5]);
    }
}
