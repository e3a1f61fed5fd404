//! `vector:FILE@LAYER`: the projection of a pair's mean-pooled residual-stream difference on a
//! steering vector, computed once with the loaded model. Must not fit anything or draw UI.
use super::{non_ties, Precomputed};
use crate::data::Judgement;
use crate::dissect::error::DissectError;
use crate::dissect::factors::{FactorInfo, FactorKind, PairValue};
use crate::jobs::ProgressSink;
use crate::model::Model;
use std::path::Path;

/// The projection of a pair's mean-pooled residual difference on a steering vector: with
/// e(x) the residual stream after block L averaged over the response's tokens (response text
/// only, as the SAE's `llm` embedder reads it), the factor is (e(A) − e(B)) · v / ‖v‖
/// (continuous; positive when A lies further along the vector).
pub struct VectorFactors(pub(super) Precomputed);

impl VectorFactors {
    /// Loads the vector, embeds both responses of every non-tie pair with `model` and projects.
    pub fn compute(
        id: &str,
        model: &Model,
        path: &Path,
        layer: Option<usize>,
        data: &[Judgement],
        sink: &dyn ProgressSink,
    ) -> Result<Self, DissectError> {
        let v = crate::steer::SteeringVector::load_any(path)
            .map_err(|e| DissectError::Source(format!("{}: {e}", path.display())))?;
        let layer = match layer {
            Some(l) => l,
            None if v.layers.len() == 1 => *v.layers.keys().next().expect("one layer"),
            None => {
                return Err(DissectError::BadOption(format!(
                    "{} has layers {:?}: name one as vector:FILE@LAYER",
                    path.display(),
                    v.layers.keys().collect::<Vec<_>>()
                )))
            }
        };
        let dir = v.layers.get(&layer).ok_or_else(|| {
            DissectError::BadOption(format!(
                "{} has no direction for layer {layer} (it has {:?})",
                path.display(),
                v.layers.keys().collect::<Vec<_>>()
            ))
        })?;
        if dir.len() != model.hidden_size() {
            return Err(DissectError::BadOption(format!(
                "{}: width {} does not match the model's hidden size {}",
                path.display(),
                dir.len(),
                model.hidden_size()
            )));
        }
        let norm = dir
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(DissectError::BadOption(format!(
                "{}: the layer-{layer} direction is zero",
                path.display()
            )));
        }
        let tok = model
            .tokenizer()
            .ok_or_else(|| DissectError::Source("the model has no tokenizer".into()))?;
        let pairs = non_ties(data);
        let mut texts: Vec<&str> = Vec::with_capacity(2 * pairs.len());
        for j in &pairs {
            texts.push(&j.response_a);
            texts.push(&j.response_b);
        }
        let emb = crate::sae::llm::LlmEmbedder::new(model, tok, layer)
            .map_err(|e| DissectError::Source(e.to_string()))?;
        let rows = crate::sae::Embedder::embed(&emb, &texts, sink).map_err(|e| {
            if sink.is_cancelled() {
                DissectError::Cancelled
            } else {
                DissectError::Source(format!("embedding responses at layer {layer}: {e}"))
            }
        })?;
        let proj = |r: &[f32]| -> f64 {
            r.iter()
                .zip(dir)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                / norm
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vector".into());
        let factor = FactorInfo::new(
            &format!("vec_{stem}_L{layer}"),
            &format!("{} @L{layer}", v.display_name()),
            id,
            FactorKind::Continuous,
            &format!(
                "(e(A) - e(B)) . v / |v|: e = mean-pooled residual after block {layer}, v = {}",
                path.display()
            ),
        );
        let values = pairs
            .iter()
            .enumerate()
            .map(|(i, j)| {
                (
                    j.id.clone(),
                    vec![PairValue::Responses(
                        proj(&rows[2 * i]),
                        proj(&rows[2 * i + 1]),
                    )],
                )
            })
            .collect();
        Ok(Self(Precomputed {
            id: id.to_string(),
            factors: vec![factor],
            values,
        }))
    }
}
