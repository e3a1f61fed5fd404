//! Seeded, deterministic clustering and projection over rows of numbers, on top of linfa
//! (docs/design/linfa.md): PCA ([`pca`], linfa-reduction), k-means ([`kmeans`],
//! linfa-clustering, Xoshiro256+ seeded from the caller's seed), the silhouette score
//! ([`silhouette`], linfa's metric), a BIC for k-means partitions ([`kmeans_bic`]) and the
//! adjusted Rand index ([`adjusted_rand_index`]).
//!
//! Same rows, same seed: same result. Cluster labels are canonical (numbered by the order in
//! which clusters first appear in the rows), so they do not depend on linfa's internal
//! numbering. Inputs are checked (non-empty, equal widths, finite) before linfa sees them.
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

/// Why a projection or clustering could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The rows cannot be used (too few, ragged, not finite) or a setting is out of range.
    #[error("{0}")]
    Input(String),
    /// linfa reported a failure.
    #[error("{0}")]
    Linfa(String),
}

/// How many clusters: a fixed number or chosen from the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterCount {
    /// Exactly this many.
    Fixed(usize),
    /// Chosen by a criterion (the caller says which).
    #[default]
    Auto,
}

impl std::fmt::Display for ClusterCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterCount::Fixed(k) => write!(f, "{k}"),
            ClusterCount::Auto => write!(f, "auto"),
        }
    }
}

impl std::str::FromStr for ClusterCount {
    type Err = ClusterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(ClusterCount::Auto);
        }
        t.parse::<usize>().map(ClusterCount::Fixed).map_err(|_| {
            ClusterError::Input(format!(
                "`{s}`: expected a number of clusters (e.g. 3) or `auto`"
            ))
        })
    }
}

impl Serialize for ClusterCount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ClusterCount::Fixed(k) => s.serialize_u64(*k as u64),
            ClusterCount::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for ClusterCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(|k| ClusterCount::Fixed(k as usize))
                .ok_or_else(|| serde::de::Error::custom("cluster count must be a whole number")),
            serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "cluster count must be a number or \"auto\"",
            )),
        }
    }
}

/// Checks the rows (non-empty, one width, finite) and packs them into an ndarray matrix.
fn matrix(rows: &[Vec<f64>]) -> Result<Array2<f64>, ClusterError> {
    let n = rows.len();
    if n == 0 {
        return Err(ClusterError::Input("no rows to cluster".into()));
    }
    let d = rows[0].len();
    if d == 0 {
        return Err(ClusterError::Input("rows have no columns".into()));
    }
    let mut flat = Vec::with_capacity(n * d);
    for (i, r) in rows.iter().enumerate() {
        if r.len() != d {
            return Err(ClusterError::Input(format!(
                "row {i} has {} values, row 0 has {d}",
                r.len()
            )));
        }
        if let Some(v) = r.iter().find(|v| !v.is_finite()) {
            return Err(ClusterError::Input(format!("row {i} holds {v}")));
        }
        flat.extend_from_slice(r);
    }
    Array2::from_shape_vec((n, d), flat).map_err(|e| ClusterError::Input(e.to_string()))
}

/// A principal-component projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Each row's scores on the kept components (`rows × components`).
    pub scores: Vec<Vec<f64>>,
    /// Share of the rows' total variance explained by each kept component (not relative to
    /// the kept components, unlike linfa's `explained_variance_ratio`).
    pub explained: Vec<f64>,
}

/// Projects `rows` on their first `components` principal components (linfa-reduction's PCA,
/// whose truncated SVD starts from a fixed seed). Each component's sign is fixed so that the
/// row with the largest |score| scores positive. When the rows span fewer dimensions than
/// asked, the missing components are zero.
pub fn pca(rows: &[Vec<f64>], components: usize) -> Result<Pca, ClusterError> {
    let x = matrix(rows)?;
    let (n, d) = x.dim();
    if components == 0 || components > d {
        return Err(ClusterError::Input(format!(
            "{components} components asked of {d}-dimensional rows"
        )));
    }
    if n < 2 {
        return Err(ClusterError::Input(format!(
            "a projection needs at least 2 rows, got {n}"
        )));
    }
    let mean = x.mean_axis(ndarray::Axis(0)).expect("n >= 2");
    let centred = &x - &mean;
    let total: f64 = centred.iter().map(|v| v * v).sum();
    let mut scores = vec![vec![0.0; components]; n];
    let mut explained = vec![0.0; components];
    if total <= 1e-300 {
        // Every row is the same point: nothing to project.
        return Ok(Pca { scores, explained });
    }
    // linfa-linalg's truncated SVD solves small problems (fewer than 5 × asked components
    // beyond the asked ones) densely and then returned the wrong end of the spectrum here
    // (3 blobs in 3-D: 0.33 and 0.02 of the variance instead of the top two). Asking for every
    // component of a small problem gives the full, correctly ordered spectrum; keep the top.
    let full = n.min(d);
    let ask = if full <= 1024 { full } else { components };
    let ds = DatasetBase::from(x);
    let model = linfa_reduction::Pca::params(ask)
        .fit(&ds)
        .map_err(|e| ClusterError::Linfa(format!("PCA: {e}")))?;
    let comps = model.components(); // [kept, d]
    let kept = comps.nrows().min(components);
    for c in 0..kept {
        let axis = comps.row(c);
        let mut col: Vec<f64> = (0..n).map(|i| centred.row(i).dot(&axis)).collect();
        let pivot = col
            .iter()
            .copied()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        if pivot < 0.0 {
            col.iter_mut().for_each(|v| *v = -*v);
        }
        explained[c] = col.iter().map(|v| v * v).sum::<f64>() / total;
        for (row, v) in scores.iter_mut().zip(col) {
            row[c] = if v.is_finite() { v } else { 0.0 };
        }
    }
    Ok(Pca { scores, explained })
}

/// A k-means partition.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansFit {
    /// Cluster of each row, numbered by first appearance (row 0 is in cluster 0).
    pub labels: Vec<usize>,
    /// Cluster centres, in label order.
    pub centroids: Vec<Vec<f64>>,
    /// Sum of squared distances of the rows to their centres.
    pub sse: f64,
}

/// k-means with k-means++ starts (best of 10 runs), seeded: linfa-clustering's `KMeans`
/// with a Xoshiro256+ generator seeded from `seed`. Needs `1 <= k <= rows`.
pub fn kmeans(rows: &[Vec<f64>], k: usize, seed: u64) -> Result<KMeansFit, ClusterError> {
    let x = matrix(rows)?;
    let n = x.nrows();
    if k == 0 || k > n {
        return Err(ClusterError::Input(format!(
            "{k} clusters asked of {n} rows (need 1 to {n})"
        )));
    }
    let ds = DatasetBase::from(x.clone());
    let rng = Xoshiro256Plus::seed_from_u64(seed);
    let model = linfa_clustering::KMeans::params_with_rng(k, rng)
        .n_runs(10)
        .max_n_iterations(500)
        .tolerance(1e-8)
        .fit(&ds)
        .map_err(|e| ClusterError::Linfa(format!("k-means: {e}")))?;
    let raw: ndarray::Array1<usize> = model.predict(&x);
    // Canonical labels: clusters numbered by the first row that falls in them.
    let mut map: Vec<Option<usize>> = vec![None; k.max(raw.iter().max().map_or(0, |m| m + 1))];
    let mut next = 0;
    let labels: Vec<usize> = raw
        .iter()
        .map(|&c| {
            *map[c].get_or_insert_with(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    let d = x.ncols();
    let mut centroids = vec![vec![0.0; d]; next];
    let mut counts = vec![0usize; next];
    for (i, &c) in labels.iter().enumerate() {
        counts[c] += 1;
        for (s, v) in centroids[c].iter_mut().zip(x.row(i)) {
            *s += v;
        }
    }
    for (c, cnt) in centroids.iter_mut().zip(&counts) {
        c.iter_mut().for_each(|v| *v /= *cnt as f64);
    }
    let sse = labels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            x.row(i)
                .iter()
                .zip(&centroids[c])
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
        })
        .sum();
    Ok(KMeansFit {
        labels,
        centroids,
        sse,
    })
}

/// Mean silhouette coefficient of a partition (linfa's `SilhouetteScore`; 1 for a single
/// cluster by its convention). In [−1, 1]; higher is better separated.
pub fn silhouette(rows: &[Vec<f64>], labels: &[usize]) -> Result<f64, ClusterError> {
    use linfa::metrics::SilhouetteScore;
    let x = matrix(rows)?;
    if labels.len() != x.nrows() {
        return Err(ClusterError::Input(format!(
            "{} labels for {} rows",
            labels.len(),
            x.nrows()
        )));
    }
    let ds = DatasetBase::new(x, ndarray::Array1::from(labels.to_vec()));
    ds.silhouette_score()
        .map_err(|e| ClusterError::Linfa(format!("silhouette: {e}")))
}

/// Bayesian information criterion (lower is better) of a hard partition read as a mixture of
/// spherical Gaussians with one shared variance: −2·log L + p·ln n with
/// log L = Σ_k n_k ln(n_k/n) − (n·d/2)·ln(2π·σ²) − n·d/2, σ² = SSE/(n·d) and
/// p = (K − 1) + K·d + 1. Comparable across K for the same rows, including K = 1.
pub fn kmeans_bic(n: usize, d: usize, labels: &[usize], sse: f64) -> f64 {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let nf = n as f64;
    let df = d as f64;
    let var = (sse / (nf * df)).max(1e-12);
    let mut counts = vec![0usize; k];
    for &l in labels {
        counts[l] += 1;
    }
    let mix: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64 * (c as f64 / nf).ln())
        .sum();
    let log_l = mix - 0.5 * nf * df * (2.0 * std::f64::consts::PI * var).ln() - 0.5 * nf * df;
    let p = (k as f64 - 1.0) + k as f64 * df + 1.0;
    -2.0 * log_l + p * nf.ln()
}

/// Adjusted Rand index of two partitions of the same items (1 = identical up to renaming,
/// about 0 = chance agreement). Returns 1 when both put every item in one cluster.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len(), "partitions of different lengths");
    let n = a.len();
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut table = vec![vec![0usize; kb]; ka];
    for (&x, &y) in a.iter().zip(b) {
        table[x][y] += 1;
    }
    let c2 = |m: usize| (m * m.saturating_sub(1)) as f64 / 2.0;
    let index: f64 = table.iter().flatten().map(|&m| c2(m)).sum();
    let rows: f64 = table.iter().map(|r| c2(r.iter().sum())).sum();
    let cols: f64 = (0..kb).map(|j| c2(table.iter().map(|r| r[j]).sum())).sum();
    let total = c2(n);
    if total == 0.0 {
        return 1.0;
    }
    let expected = rows * cols / total;
    let max = 0.5 * (rows + cols);
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> Vec<Vec<f64>> {
        // three tight blobs in 3-D (independent Gaussian noise, sd 0.3), interleaved
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let centres = [[0.0, 0.0, 0.0], [10.0, 0.0, 1.0], [0.0, 10.0, -1.0]];
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let noise = Normal::new(0.0, 0.3).unwrap();
        (0..30)
            .map(|i| {
                let c = centres[i % 3];
                c.iter().map(|v| v + noise.sample(&mut rng)).collect()
            })
            .collect()
    }

    #[test]
    fn ari_matches_a_hand_computed_value() {
        // contingency [[2,0,0],[0,1,1]]: index 1, rows 2, cols 1, total 6 -> 4/7
        let v = adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]);
        assert!((v - 4.0 / 7.0).abs() < 1e-12, "{v}");
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
        assert!(adjusted_rand_index(&[0, 1, 0, 1], &[0, 0, 1, 1]) < 0.0);
    }

    #[test]
    fn kmeans_finds_blobs_deterministically_and_bic_prefers_three() {
        let rows = blobs();
        let a = kmeans(&rows, 3, 7).unwrap();
        let b = kmeans(&rows, 3, 7).unwrap();
        assert_eq!(a, b);
        let truth: Vec<usize> = (0..30).map(|i| i % 3).collect();
        assert_eq!(a.labels, truth, "canonical labels follow first appearance");
        let bic: Vec<f64> = (1..=5)
            .map(|k| {
                let f = kmeans(&rows, k, 7).unwrap();
                kmeans_bic(30, 3, &f.labels, f.sse)
            })
            .collect();
        let best = (0..5).min_by(|&i, &j| bic[i].total_cmp(&bic[j])).unwrap();
        assert_eq!(best + 1, 3, "{bic:?}");
        assert!(silhouette(&rows, &a.labels).unwrap() > 0.8);
        assert!(kmeans(&rows, 0, 1).is_err() && kmeans(&rows, 31, 1).is_err());
        assert!(kmeans(&[vec![1.0], vec![f64::NAN]], 1, 1).is_err());
    }

    #[test]
    fn pca_explains_the_spread_and_fixes_signs() {
        let rows = blobs();
        let p = pca(&rows, 2).unwrap();
        assert_eq!(p.scores.len(), 30);
        let sum: f64 = p.explained.iter().sum();
        assert!(sum > 0.95 && sum <= 1.0 + 1e-9, "{:?}", p.explained);
        assert!(p.explained[0] >= p.explained[1]);
        assert_eq!(p, pca(&rows, 2).unwrap());
        let same = vec![vec![1.0, 2.0]; 4];
        assert_eq!(pca(&same, 2).unwrap().explained, vec![0.0, 0.0]);
        assert!(pca(&rows, 4).is_err());
        assert!("auto".parse::<ClusterCount>().unwrap() == ClusterCount::Auto);
        assert_eq!("3".parse::<ClusterCount>().unwrap(), ClusterCount::Fixed(3));
        assert!("three".parse::<ClusterCount>().is_err());
    }
}
