//! Probe method: the steering direction is the normal of a logistic regression that separates
//! the activations of behaviour-matching (chosen) answers from those of non-matching (rejected)
//! ones, read at the last token per layer, trained with `linfa-logistic` (L2-regularised,
//! L-BFGS).
//!
//! The features are centred and divided by one global scale (the RMS of the centred entries)
//! before the fit, which keeps L-BFGS well conditioned without changing the direction the way
//! per-feature standardisation would; the weights are mapped back to activation space. As for
//! PCA, the unit normal is scaled by the absolute mean projection of the pair differences on it,
//! so a multiplier means the same size of step as for CAA, and its sign is fixed so chosen
//! answers project higher than their rejected ones for most pairs.
//!
//! The linear algebra works on plain activation matrices ([`probe_direction`]); [`train_probe`]
//! reads the activations through [`super::collect`]. No architecture code here.
use std::collections::BTreeMap;

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use super::collect::{contrast_activations, Contrast};
use super::error::{Result, SteerError};
use super::vector::{SteeringVector, VectorMeta};
use crate::jobs::ProgressSink;
use crate::model::Model;

/// Settings of the logistic regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    /// L2 penalty weight (linfa's `alpha`, on the summed loss of the rescaled features).
    pub l2: f64,
    /// Most L-BFGS iterations.
    pub max_iterations: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            l2: 1.0,
            max_iterations: 200,
        }
    }
}

impl ProbeConfig {
    /// Checks the settings (finite, non-negative penalty; at least one iteration).
    pub fn check(&self) -> Result<()> {
        if !self.l2.is_finite() || self.l2 < 0.0 {
            return Err(SteerError::Invalid(format!(
                "probe L2 penalty {}: must be a finite number ≥ 0",
                self.l2
            )));
        }
        if self.max_iterations == 0 {
            return Err(SteerError::Invalid(
                "probe iterations: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The result of [`probe_direction`] for one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeDirection {
    /// Unit normal of the decision boundary in activation space, sign-fixed.
    pub unit: Vec<f32>,
    /// `unit × |mean projection of the pair differences|` (the steering direction).
    pub direction: Vec<f32>,
    /// Fraction of the training activations the probe classifies correctly.
    pub accuracy: f64,
    /// Fraction of pairs whose chosen answer projects higher than its rejected one.
    pub agreement: f64,
}

/// Fits the probe on one layer: `pos[i]` (chosen) and `neg[i]` (rejected) are the activations of
/// pair `i`. Needs at least 2 pairs of finite, equal-width rows that are not all identical.
pub fn probe_direction(
    pos: &[Vec<f32>],
    neg: &[Vec<f32>],
    cfg: &ProbeConfig,
) -> Result<ProbeDirection> {
    cfg.check()?;
    let diffs = super::caa::pair_differences(pos, neg)?;
    let n = diffs.len();
    if n < 2 {
        return Err(SteerError::Invalid(
            "the probe needs at least 2 pairs".into(),
        ));
    }
    let d = diffs[0].len();
    if pos.iter().chain(neg).flatten().any(|x| !x.is_finite()) {
        return Err(SteerError::Invalid(
            "the activations are not finite (the model produced NaN or infinite values)".into(),
        ));
    }
    // Rows: all positives, then all negatives, in f64; centred and globally rescaled.
    let rows = 2 * n;
    let mut mean = vec![0f64; d];
    for r in pos.iter().chain(neg) {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += *x as f64 / rows as f64;
        }
    }
    let mut x = Array2::<f64>::zeros((rows, d));
    for (i, r) in pos.iter().chain(neg).enumerate() {
        for (j, v) in r.iter().enumerate() {
            x[[i, j]] = *v as f64 - mean[j];
        }
    }
    let rms = (x.iter().map(|v| v * v).sum::<f64>() / (rows * d) as f64).sqrt();
    if rms <= 0.0 {
        return Err(SteerError::Invalid(
            "all activations are identical: there is nothing for the probe to separate".into(),
        ));
    }
    x.mapv_inplace(|v| v / rms);
    let y: Array1<bool> = (0..rows).map(|i| i < n).collect();
    let data = Dataset::new(x.clone(), y);
    let fitted = LogisticRegression::default()
        .alpha(cfg.l2)
        .max_iterations(cfg.max_iterations)
        .fit(&data)
        .map_err(|e| SteerError::Invalid(format!("probe fit (linfa-logistic): {e}")))?;
    let w = fitted.params();
    // Accuracy of the fitted classifier as linfa predicts it (`true` = chosen).
    let predicted: Array1<bool> = fitted.predict(&x);
    let correct = predicted
        .iter()
        .enumerate()
        .filter(|(i, p)| **p == (*i < n))
        .count();
    // Back to activation space: the score is w·(a − mean)/rms, so the normal is w (up to scale).
    let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(SteerError::Invalid(
            "the probe's weights are zero or not finite (the classes could not be told apart)"
                .into(),
        ));
    }
    let unit: Vec<f64> = w.iter().map(|v| v / norm).collect();
    let proj: Vec<f64> = diffs
        .iter()
        .map(|r| r.iter().zip(&unit).map(|(x, u)| *x as f64 * u).sum())
        .collect();
    let larger = proj.iter().filter(|p| **p > 0.0).count();
    let smaller = proj.iter().filter(|p| **p < 0.0).count();
    let sign = if smaller > larger { -1.0 } else { 1.0 };
    let mean_proj = (proj.iter().sum::<f64>() / n as f64).abs();
    let agreement = proj.iter().filter(|p| **p * sign > 0.0).count() as f64 / n as f64;
    Ok(ProbeDirection {
        direction: unit.iter().map(|u| (u * sign * mean_proj) as f32).collect(),
        unit: unit.iter().map(|u| (u * sign) as f32).collect(),
        accuracy: correct as f64 / rows as f64,
        agreement,
    })
}

/// Probe vector on `layers` from contrast pairs read at the last token (positions `all`, as
/// PCA), with the per-layer fit statistics.
#[allow(clippy::too_many_arguments)]
pub fn train_probe(
    model: &Model,
    items: &[Contrast],
    layers: &[usize],
    batch_size: usize,
    cfg: &ProbeConfig,
    model_name: &str,
    dataset: &str,
    progress: &dyn ProgressSink,
) -> Result<(SteeringVector, BTreeMap<usize, ProbeDirection>)> {
    cfg.check()?;
    let acts = contrast_activations(model, items, layers, batch_size, progress)?;
    let mut dirs = BTreeMap::new();
    let mut stats = BTreeMap::new();
    for (l, (p, n)) in &acts {
        let r = probe_direction(p, n, cfg)
            .map_err(|e| SteerError::Invalid(format!("{dataset}: layer {l}: {e}")))?;
        dirs.insert(*l, r.direction.clone());
        stats.insert(*l, r);
    }
    let mut meta = VectorMeta::new("probe", model_name, model.hidden_size());
    meta.dataset = dataset.into();
    meta.extra.insert(
        "steerlab.probe".into(),
        format!(
            "linfa-logistic L2 {} max_iterations {}; train accuracy {}",
            cfg.l2,
            cfg.max_iterations,
            stats
                .iter()
                .map(|(l, s)| format!("layer {l}: {:.3}", s.accuracy))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok((SteeringVector::new(dirs, meta)?, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn cos(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    }

    /// Chosen activations `base + (c/2)·u`, rejected `base − (c/2)·u`, with `base` drawn
    /// isotropically in the other directions and large noise: separable along `u` only.
    fn planted(n: usize, d: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let g = Normal::new(0.0f32, 1.0).unwrap();
        let mut u: Vec<f32> = (0..d).map(|_| g.sample(&mut rng)).collect();
        let nu = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        u.iter_mut().for_each(|x| *x /= nu);
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let mut base: Vec<f32> = (0..d).map(|_| 3.0 * g.sample(&mut rng)).collect();
            // remove the component along u so the classes separate by the planted margin
            let along: f32 = base.iter().zip(&u).map(|(b, ui)| b * ui).sum();
            base.iter_mut().zip(&u).for_each(|(b, ui)| *b -= along * ui);
            let c = 4.0 + 0.5 * g.sample(&mut rng);
            pos.push(
                base.iter()
                    .zip(&u)
                    .map(|(b, ui)| b + 0.5 * c * ui)
                    .collect(),
            );
            neg.push(
                base.iter()
                    .zip(&u)
                    .map(|(b, ui)| b - 0.5 * c * ui)
                    .collect(),
            );
        }
        (pos, neg, u)
    }

    #[test]
    fn recovers_a_planted_separating_direction_with_its_sign() {
        for (n, d) in [(60, 8), (40, 32)] {
            let (pos, neg, u) = planted(n, d, 5 + d as u64);
            let r = probe_direction(&pos, &neg, &ProbeConfig::default()).unwrap();
            let c = cos(&r.unit, &u);
            assert!(c > 0.95, "n={n} d={d} cos={c}");
            assert_eq!(r.accuracy, 1.0, "separable data");
            assert_eq!(r.agreement, 1.0);
            // scaled by the mean projection of the differences (≈ 4 = mean c)
            let len = r.direction.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((len - 4.0).abs() < 0.6, "‖direction‖ = {len}");
            // swapping chosen and rejected flips it
            let s = probe_direction(&neg, &pos, &ProbeConfig::default()).unwrap();
            assert!(cos(&s.unit, &u) < -0.95);
        }
    }

    #[test]
    fn differs_from_the_mean_difference_when_noise_is_anisotropic() {
        // The mean difference is (1, 1); the second coordinate carries large shared-sign noise
        // that hides the class there, so the probe leans on the first coordinate (as an LDA
        // direction would) while CAA splits evenly.
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let g = Normal::new(0.0f32, 1.0).unwrap();
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let (e1, e2) = (0.1 * g.sample(&mut rng), 4.0 * g.sample(&mut rng));
            let (f1, f2) = (0.1 * g.sample(&mut rng), 4.0 * g.sample(&mut rng));
            pos.push(vec![0.5 + e1, 0.5 + e2]);
            neg.push(vec![-0.5 + f1, -0.5 + f2]);
        }
        let r = probe_direction(
            &pos,
            &neg,
            &ProbeConfig {
                l2: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(r.unit[0] > 0.9, "{:?}", r.unit);
        assert!(r.accuracy > 0.95, "{}", r.accuracy);
        let caa = crate::steer::caa::mean_difference(&pos, &neg).unwrap();
        assert!(cos(&caa, &[1.0, 0.0]) < 0.9);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let same = vec![vec![1.0, 2.0]; 3];
        assert!(probe_direction(&same, &same, &ProbeConfig::default()).is_err());
        assert!(probe_direction(&same[..1], &same[..1], &ProbeConfig::default()).is_err());
        let nan = vec![vec![f32::NAN, 1.0], vec![0.0, 1.0]];
        let ok = vec![vec![0.0, 0.0], vec![1.0, 0.0]];
        assert!(probe_direction(&nan, &ok, &ProbeConfig::default()).is_err());
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            let cfg = ProbeConfig {
                l2: bad,
                ..Default::default()
            };
            assert!(probe_direction(&ok, &[vec![2.0, 1.0], vec![0.0, 3.0]], &cfg).is_err());
        }
        let cfg = ProbeConfig {
            max_iterations: 0,
            ..Default::default()
        };
        assert!(cfg.check().is_err());
    }
}
