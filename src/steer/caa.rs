//! CAA baseline (Rimsky et al.): per layer, the mean over pairs of (activation on the
//! behaviour-matching answer − activation on the non-matching answer), read at the
//! answer-letter token (for full-sentence answers: the answer's last token).
//!
//! The arithmetic works on plain activation matrices ([`mean_difference`]); [`train_caa`] reads
//! the activations through [`super::collect`]. No architecture code here.
use super::collect::{contrast_activations, Contrast};
use super::error::{Result, SteerError};
use super::vector::{SteeringVector, VectorMeta};
use crate::jobs::ProgressSink;
use crate::model::Model;
use std::collections::BTreeMap;

/// `pos[i] − neg[i]` for every pair, checking counts and widths.
pub fn pair_differences(pos: &[Vec<f32>], neg: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    if pos.len() != neg.len() {
        return Err(SteerError::Invalid(format!(
            "{} positive but {} negative activations: they must come in pairs",
            pos.len(),
            neg.len()
        )));
    }
    let first = pos
        .first()
        .ok_or_else(|| SteerError::Invalid("no pairs".into()))?;
    let d = first.len();
    pos.iter()
        .zip(neg)
        .enumerate()
        .map(|(i, (p, n))| {
            if p.len() != d || n.len() != d {
                return Err(SteerError::Invalid(format!(
                    "pair {i}: widths {} and {} differ from {d}",
                    p.len(),
                    n.len()
                )));
            }
            Ok(p.iter().zip(n).map(|(a, b)| a - b).collect())
        })
        .collect()
}

/// The CAA direction for one layer: mean of `pos[i] − neg[i]` (accumulated in f64).
pub fn mean_difference(pos: &[Vec<f32>], neg: &[Vec<f32>]) -> Result<Vec<f32>> {
    let diffs = pair_differences(pos, neg)?;
    let n = diffs.len() as f64;
    let mut acc = vec![0f64; diffs[0].len()];
    for r in &diffs {
        for (a, x) in acc.iter_mut().zip(r) {
            *a += *x as f64;
        }
    }
    Ok(acc.iter().map(|a| (a / n) as f32).collect())
}

/// CAA vector on `layers` from contrast pairs read at the answer-letter token. Positions are
/// `generated` (CAA adds the vector after the prompt).
pub fn train_caa(
    model: &Model,
    items: &[Contrast],
    layers: &[usize],
    batch_size: usize,
    model_name: &str,
    dataset: &str,
    progress: &dyn ProgressSink,
) -> Result<SteeringVector> {
    let acts = contrast_activations(model, items, layers, batch_size, progress)?;
    let mut dirs = BTreeMap::new();
    for (l, (p, n)) in &acts {
        let d = mean_difference(p, n)?;
        if d.iter().any(|x| !x.is_finite()) {
            return Err(SteerError::Invalid(format!(
                "{dataset}: the CAA direction at layer {l} is not finite (the model produced NaN or infinite activations)"
            )));
        }
        if d.iter().all(|x| *x == 0.0) {
            return Err(SteerError::Invalid(format!(
                "{dataset}: the CAA direction at layer {l} is zero (every chosen answer equals its rejected one); nothing was saved"
            )));
        }
        dirs.insert(*l, d);
    }
    let mut meta = VectorMeta::new("caa", model_name, model.hidden_size());
    meta.positions = "generated".into();
    meta.dataset = dataset.into();
    SteeringVector::new(dirs, meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn mean_difference_recovers_a_planted_offset() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let g = Normal::new(0.0f32, 1.0).unwrap();
        let d = 32;
        let offset: Vec<f32> = (0..d)
            .map(|i| if i % 5 == 0 { 2.0 } else { -0.5 })
            .collect();
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            let base: Vec<f32> = (0..d).map(|_| 10.0 * g.sample(&mut rng)).collect();
            neg.push(base.clone());
            pos.push(
                base.iter()
                    .zip(&offset)
                    .map(|(b, o)| b + o + 0.3 * g.sample(&mut rng))
                    .collect(),
            );
        }
        let v = mean_difference(&pos, &neg).unwrap();
        for (a, b) in v.iter().zip(&offset) {
            // standard error 0.3/sqrt(400) = 0.015
            assert!((a - b).abs() < 0.08, "{a} vs {b}");
        }
    }

    #[test]
    fn exact_on_a_hand_example_and_checks_shapes() {
        let pos = vec![vec![1.0, 2.0], vec![3.0, 6.0]];
        let neg = vec![vec![0.0, 1.0], vec![1.0, 1.0]];
        assert_eq!(mean_difference(&pos, &neg).unwrap(), vec![1.5, 3.0]);
        assert!(mean_difference(&pos, &neg[..1]).is_err());
        assert!(mean_difference(&[vec![1.0]], &[vec![1.0, 2.0]]).is_err());
    }
}
