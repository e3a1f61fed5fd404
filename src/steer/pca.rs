//! PCA baseline (repeng's `pca_diff`): the first principal component of the per-pair
//! activation differences (positive − negative) at the last token, per layer, with the sign
//! chosen so that positives project higher than their negatives for most pairs.
//!
//! As in repeng (scikit-learn's `PCA`), the differences are mean-centred before the component
//! is taken. The unit component is then scaled by the absolute mean projection of the
//! differences onto it, so that a multiplier means the same size of step as for CAA (repeng
//! itself keeps the unit vector; its strengths are therefore not comparable across models).
//!
//! The linear algebra works on plain activation matrices ([`pca_diff`]); [`train_pca`] reads
//! the activations through [`super::collect`]. No architecture code here.
use super::collect::{contrast_activations, Contrast};
use super::error::{Result, SteerError};
use super::vector::{SteeringVector, VectorMeta};
use crate::jobs::ProgressSink;
use crate::model::Model;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The result of [`pca_diff`] for one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaDirection {
    /// Unit first principal component, sign-fixed.
    pub unit: Vec<f32>,
    /// `unit × |mean projection of the differences|` (the steering direction).
    pub direction: Vec<f32>,
    /// Fraction of the (centred) difference variance it explains.
    pub explained: f64,
    /// Fraction of pairs whose positive projects higher than its negative.
    pub agreement: f64,
}

/// repeng's `pca_diff` on one layer: `pos[i]` and `neg[i]` are the activations of pair `i`.
pub fn pca_diff(pos: &[Vec<f32>], neg: &[Vec<f32>]) -> Result<PcaDirection> {
    let diffs = super::caa::pair_differences(pos, neg)?;
    let n = diffs.len();
    let d = diffs[0].len();
    if n < 2 {
        return Err(SteerError::Invalid("PCA needs at least 2 pairs".into()));
    }
    // Mean-centre, in f64.
    let mut mean = vec![0f64; d];
    for row in &diffs {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += *x as f64 / n as f64;
        }
    }
    let centred: Vec<Vec<f64>> = diffs
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(x, m)| *x as f64 - m).collect())
        .collect();
    let total_var: f64 = centred.iter().flat_map(|r| r.iter().map(|x| x * x)).sum();
    if total_var <= 0.0 {
        return Err(SteerError::Invalid(
            "all pair differences are identical: PCA of the centred differences is undefined (use CAA)".into(),
        ));
    }
    let unit = top_component(&centred);
    let proj: Vec<f64> = diffs
        .iter()
        .map(|r| r.iter().zip(&unit).map(|(x, u)| *x as f64 * u).sum())
        .collect();
    let var_along: f64 = centred
        .iter()
        .map(|r| r.iter().zip(&unit).map(|(x, u)| x * u).sum::<f64>().powi(2))
        .sum();
    // Sign: repeng compares each positive's projection with its negative's, i.e. the sign of
    // the difference's projection; flip when "positive smaller" wins.
    let larger = proj.iter().filter(|p| **p > 0.0).count();
    let smaller = proj.iter().filter(|p| **p < 0.0).count();
    let sign = if smaller > larger { -1.0 } else { 1.0 };
    let unit: Vec<f64> = unit.iter().map(|u| u * sign).collect();
    let mean_proj = (proj.iter().sum::<f64>() / n as f64 * sign).abs();
    let agreement = proj.iter().filter(|p| **p * sign > 0.0).count() as f64 / n as f64;
    Ok(PcaDirection {
        direction: unit.iter().map(|u| (u * mean_proj) as f32).collect(),
        unit: unit.iter().map(|u| *u as f32).collect(),
        explained: var_along / total_var,
        agreement,
    })
}

/// PCA vector on `layers` from contrast pairs read at the last token (positions `all`, as
/// repeng applies its vectors), with the per-layer fit statistics.
pub fn train_pca(
    model: &Model,
    items: &[Contrast],
    layers: &[usize],
    batch_size: usize,
    model_name: &str,
    dataset: &str,
    progress: &dyn ProgressSink,
) -> Result<(SteeringVector, BTreeMap<usize, PcaDirection>)> {
    let acts = contrast_activations(model, items, layers, batch_size, progress)?;
    let mut dirs = BTreeMap::new();
    let mut stats = BTreeMap::new();
    for (l, (p, n)) in &acts {
        let r = pca_diff(p, n)?;
        dirs.insert(*l, r.direction.clone());
        stats.insert(*l, r);
    }
    let mut meta = VectorMeta::new("pca", model_name, model.hidden_size());
    meta.dataset = dataset.into();
    Ok((SteeringVector::new(dirs, meta)?, stats))
}

/// Top right-singular vector of `x` (rows = samples) by power iteration on `xᵀx`, computed
/// through the smaller Gram matrix when there are fewer rows than columns.
fn top_component(x: &[Vec<f64>]) -> Vec<f64> {
    let n = x.len();
    let d = x[0].len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ca1ab1e);
    if n < d {
        // Gram matrix G = x xᵀ (n × n); top eigenvector g gives v ∝ xᵀ g.
        let mut gram = vec![0f64; n * n];
        for i in 0..n {
            for j in i..n {
                let s: f64 = x[i].iter().zip(&x[j]).map(|(a, b)| a * b).sum();
                gram[i * n + j] = s;
                gram[j * n + i] = s;
            }
        }
        let g = power_iteration(&gram, n, &mut rng);
        let mut v = vec![0f64; d];
        for (row, gi) in x.iter().zip(&g) {
            for (vk, xk) in v.iter_mut().zip(row) {
                *vk += gi * xk;
            }
        }
        normalise(&mut v);
        v
    } else {
        let mut cov = vec![0f64; d * d];
        for row in x {
            for i in 0..d {
                for j in 0..d {
                    cov[i * d + j] += row[i] * row[j];
                }
            }
        }
        power_iteration(&cov, d, &mut rng)
    }
}

/// Top eigenvector of a symmetric positive semi-definite `m` (k × k, row-major).
fn power_iteration(m: &[f64], k: usize, rng: &mut impl Rng) -> Vec<f64> {
    let mut v: Vec<f64> = (0..k).map(|_| rng.random::<f64>() - 0.5).collect();
    normalise(&mut v);
    for _ in 0..20_000 {
        let mut w = vec![0f64; k];
        for i in 0..k {
            w[i] = m[i * k..(i + 1) * k]
                .iter()
                .zip(&v)
                .map(|(a, b)| a * b)
                .sum();
        }
        if normalise(&mut w) == 0.0 {
            return v;
        }
        let delta: f64 = w
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        v = w;
        if delta < 1e-12 {
            break;
        }
    }
    v
}

fn normalise(v: &mut [f64]) -> f64 {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    fn cos(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    }

    /// Pairs whose difference is `c_i · u + noise`, with `c_i` varying around a positive mean:
    /// the varying strength along `u` is what a centred PCA sees.
    fn planted(n: usize, d: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let g = Normal::new(0.0f32, 1.0).unwrap();
        let mut u: Vec<f32> = (0..d).map(|_| g.sample(&mut rng)).collect();
        let nu = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        u.iter_mut().for_each(|x| *x /= nu);
        let strength = Normal::new(3.0f32, 2.0).unwrap();
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let base: Vec<f32> = (0..d).map(|_| 5.0 * g.sample(&mut rng)).collect();
            let c = strength.sample(&mut rng);
            neg.push(base.clone());
            pos.push(
                base.iter()
                    .zip(&u)
                    .map(|(b, ui)| b + c * ui + 0.1 * g.sample(&mut rng))
                    .collect(),
            );
        }
        (pos, neg, u)
    }

    #[test]
    fn recovers_a_planted_direction_with_the_right_sign() {
        for (n, d) in [(40, 16), (10, 64)] {
            let (pos, neg, u) = planted(n, d, 7 + n as u64);
            let r = pca_diff(&pos, &neg).unwrap();
            // noise per pair has norm ≈ 0.1·√d against a strength spread of 2 along u
            assert!(
                cos(&r.unit, &u) > 0.97,
                "n={n} d={d} cos={}",
                cos(&r.unit, &u)
            );
            assert!(r.explained > 0.5);
            assert!(r.agreement > 0.8);
            // swapping positives and negatives flips the sign
            let s = pca_diff(&neg, &pos).unwrap();
            assert!(cos(&s.unit, &u) < -0.97);
        }
    }

    #[test]
    fn matches_an_svd_on_a_small_matrix() {
        // diffs (rows): centred top right-singular vector of [[2,0],[0,1],[4,0]] worked by hand:
        // mean (2, 1/3); centred rows (0,-1/3), (-2,2/3), (2,-1/3); xᵀx = [[8,-2],[-2,2/3]].
        // Its top eigenvector: λ² - (26/3)λ + (16/3 - 4) = 0 → λ = (26/3 + sqrt((26/3)^2 - 16/3))/2.
        let pos = vec![vec![2.0, 0.0], vec![0.0, 1.0], vec![4.0, 0.0]];
        let neg = vec![vec![0.0, 0.0]; 3];
        let r = pca_diff(&pos, &neg).unwrap();
        let (a, b, c) = (8.0f64, -2.0f64, 2.0f64 / 3.0);
        let lam = ((a + c) + ((a - c).powi(2) + 4.0 * b * b).sqrt()) / 2.0;
        let mut e = [b, lam - a];
        let ne = (e[0] * e[0] + e[1] * e[1]).sqrt();
        e.iter_mut().for_each(|x| *x /= ne);
        // sign: projections of diffs (2,0),(0,1),(4,0) on e
        let p: Vec<f64> = [[2.0, 0.0], [0.0, 1.0], [4.0, 0.0]]
            .iter()
            .map(|r| r[0] * e[0] + r[1] * e[1])
            .collect();
        if p.iter().filter(|x| **x < 0.0).count() > p.iter().filter(|x| **x > 0.0).count() {
            e.iter_mut().for_each(|x| *x = -*x);
        }
        assert!(
            (r.unit[0] as f64 - e[0]).abs() < 1e-6 && (r.unit[1] as f64 - e[1]).abs() < 1e-6,
            "{:?} vs {e:?}",
            r.unit
        );
        assert!((r.explained - lam / (a + c)).abs() < 1e-9);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let same = vec![vec![1.0, 2.0]; 3];
        let zero = vec![vec![0.0, 0.0]; 3];
        assert!(pca_diff(&same, &zero).is_err());
        assert!(pca_diff(&same[..1], &zero[..1]).is_err());
    }
}
