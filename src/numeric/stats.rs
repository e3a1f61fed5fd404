//! Descriptive statistics shared by the methods: mean and sample variance, quantiles (NumPy's
//! linear interpolation), rank correlations (Pearson, Spearman, Kendall τ-b), average ranks and
//! the indices of the largest |values| (the "top pairs" ranking of SAE features and dissection
//! factors).
//!
//! Pure functions on slices; no I/O, no randomness, no method-specific code.

/// Arithmetic mean (NaN for an empty slice).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample variance (n − 1 denominator).
pub fn sample_var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)
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
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = mean(v);
    if v.len() < 2 {
        return (m, 0.0);
    }
    (m, sample_var(v).sqrt())
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

/// [`pearson`] over the common length of `a` and `b`, 0 when it is undefined (fewer than two
/// values, or a constant side).
pub fn pearson_or_zero(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let r = pearson(&a[..n], &b[..n]);
    if r.is_nan() {
        0.0
    } else {
        r
    }
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

/// Indices `i` with `keep(v[i])`, ordered by |v[i]| largest first (ties: smaller index first),
/// at most `k` of them.
pub fn top_abs_indices(v: &[f64], k: usize, keep: impl Fn(f64) -> bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).filter(|&i| keep(v[i])).collect();
    idx.sort_by(|a, b| v[*b].abs().total_cmp(&v[*a].abs()).then(a.cmp(b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

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
