//! Vector hygiene: a content hash of a vector's directions (independent of its metadata) and a
//! sign check — on held-out pairs, does the chosen side project above the rejected side on the
//! vector? A flipped or mislabelled vector shows a sign-check fraction below 0.5. Measurement
//! only; no training and no files written here.
use std::collections::BTreeMap;

use serde::Serialize;

use super::collect::{contrast_activations, Contrast};
use super::error::Result;
use super::SteeringVector;
use crate::jobs::ProgressSink;
use crate::model::Model;

/// FNV-1a 64 (hex) over every layer index (u64 LE) and its direction's f32 LE bytes, in layer
/// order: equal for the same directions whatever the metadata; not a security hash.
pub fn content_hash(v: &SteeringVector) -> String {
    let mut bytes = Vec::new();
    for (l, d) in &v.layers {
        bytes.extend_from_slice(&(*l as u64).to_le_bytes());
        for x in d {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    format!("{:016x}", crate::numeric::hash::fnv1a(&bytes))
}

/// The sign check of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LayerSign {
    /// Fraction of pairs whose chosen activation projects above the rejected one on `v`.
    pub fraction_above: f64,
    /// Mean of `(a_chosen − a_rejected)·v / ‖v‖` over pairs.
    pub mean_margin: f64,
    /// Pairs checked.
    pub pairs: usize,
}

/// Sign check from activations: rows `pos[i]`, `neg[i]` of pair `i`, direction `d`.
pub fn sign_from_rows(pos: &[Vec<f32>], neg: &[Vec<f32>], d: &[f32]) -> LayerSign {
    let n = pos.len().min(neg.len());
    let norm: f64 = d.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let mut above = 0usize;
    let mut margin = 0.0;
    for i in 0..n {
        let m: f64 = pos[i]
            .iter()
            .zip(&neg[i])
            .zip(d)
            .map(|((p, q), x)| (*p as f64 - *q as f64) * *x as f64)
            .sum::<f64>()
            / norm.max(f64::MIN_POSITIVE);
        if m > 0.0 {
            above += 1;
        }
        margin += m;
    }
    LayerSign {
        fraction_above: above as f64 / n.max(1) as f64,
        mean_margin: margin / n.max(1) as f64,
        pairs: n,
    }
}

/// The sign check of every layer of `v` on `pairs` (activations at the last token of prompt +
/// chosen and prompt + rejected, at the output of each steered block).
pub fn sign_check(
    model: &Model,
    v: &SteeringVector,
    pairs: &[Contrast],
    batch_size: usize,
    sink: &dyn ProgressSink,
) -> Result<BTreeMap<usize, LayerSign>> {
    v.check_model(model.hidden_size(), model.n_layers())?;
    let layers: Vec<usize> = v.layers.keys().copied().collect();
    let acts = contrast_activations(model, pairs, &layers, batch_size, sink)?;
    Ok(acts
        .into_iter()
        .map(|(l, (p, n))| (l, sign_from_rows(&p, &n, &v.layers[&l])))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steer::VectorMeta;

    #[test]
    fn sign_check_matches_hand_counts() {
        let d = [2.0f32, 0.0];
        // margins along (1, 0): +1, −2, +3
        let pos = vec![vec![1.0, 5.0], vec![0.0, 0.0], vec![4.0, 1.0]];
        let neg = vec![vec![0.0, 0.0], vec![2.0, 9.0], vec![1.0, 1.0]];
        let s = sign_from_rows(&pos, &neg, &d);
        assert_eq!(s.pairs, 3);
        assert!((s.fraction_above - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.mean_margin - 2.0 / 3.0).abs() < 1e-12);
        let flipped = sign_from_rows(&pos, &neg, &[-2.0, 0.0]);
        assert!((flipped.fraction_above - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn content_hash_ignores_metadata_and_sees_values() {
        let mk = |x: f32, method: &str| {
            SteeringVector::new(
                std::iter::once((3usize, vec![x, 1.0])).collect(),
                VectorMeta::new(method, "m", 2),
            )
            .unwrap()
        };
        assert_eq!(content_hash(&mk(0.5, "caa")), content_hash(&mk(0.5, "pca")));
        assert_ne!(
            content_hash(&mk(0.5, "caa")),
            content_hash(&mk(0.25, "caa"))
        );
        assert_eq!(content_hash(&mk(0.5, "caa")).len(), 16);
    }
}
