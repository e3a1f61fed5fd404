//! `sae:DIR`: the features of a `steerlab sae run` output folder as continuous factors, read
//! from `DIR/activations.safetensors` and matched to the data by pair id; labels from
//! `DIR/report.json`. Reads files only; must not run a model or fit anything.
use super::{clip, Precomputed};
use crate::data::Judgement;
use crate::dissect::error::DissectError;
use crate::dissect::factors::{FactorInfo, FactorKind, PairValue};
use std::collections::HashMap;
use std::path::Path;

/// SAE features from a `steerlab sae run` output folder: feature j of a pair is its
/// activation on e(A) − e(B) (signed, already pairwise), encoded as a continuous factor.
/// Labels come from `report.json` (the LLM description, else the top n-grams) when present.
pub struct SaeFactors(pub(super) Precomputed);

impl SaeFactors {
    /// Reads `DIR/activations.safetensors` (tensor `activations` `[n, M]`, metadata
    /// `pair_ids`) and keeps the rows whose pair id occurs in `data`. `id` is the selecting token.
    pub fn load(id: &str, dir: &Path, data: &[Judgement]) -> Result<Self, DissectError> {
        let path = dir.join("activations.safetensors");
        let io = |m: String| DissectError::Source(format!("{}: {m}", path.display()));
        let bytes = std::fs::read(&path).map_err(|e| {
            io(format!(
                "{e} (expected the output folder of `steerlab sae run`)"
            ))
        })?;
        crate::sae::output::check_complete(dir).map_err(|e| DissectError::Source(e.to_string()))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| io(e.to_string()))?;
        let ids: Vec<String> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("pair_ids"))
            .ok_or_else(|| io("no `pair_ids` in the metadata".into()))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| io(format!("metadata `pair_ids`: {e}")))
            })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| io(e.to_string()))?;
        let t = st
            .tensor("activations")
            .map_err(|e| io(format!("tensor `activations`: {e}")))?;
        let shape = t.shape().to_vec();
        if t.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != ids.len() {
            return Err(io(format!(
                "tensor `activations` must be F32 [pairs = {}, features], found {:?} {:?}",
                ids.len(),
                t.dtype(),
                shape
            )));
        }
        let m = shape[1];
        let acts: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let labels = sae_labels(&dir.join("report.json"), m);
        let factors: Vec<FactorInfo> = (0..m)
            .map(|j| {
                FactorInfo::new(
                    &format!("sae_f{j}"),
                    &labels[j],
                    id,
                    FactorKind::Continuous,
                    &format!(
                        "activation of SAE feature {j} ({}) on e(A) - e(B)",
                        dir.display()
                    ),
                )
            })
            .collect();
        let wanted: std::collections::HashSet<&str> = data.iter().map(|j| j.id.as_str()).collect();
        let mut values = HashMap::new();
        for (r, pid) in ids.iter().enumerate() {
            if wanted.contains(pid.as_str()) {
                let row = &acts[r * m..(r + 1) * m];
                if let Some(bad) = row.iter().position(|v| !v.is_finite()) {
                    return Err(DissectError::BadFactor {
                        id: pid.clone(),
                        factor: format!("sae_f{bad}"),
                        message: format!("activation in {} is not finite", path.display()),
                    });
                }
                values.insert(
                    pid.clone(),
                    row.iter()
                        .map(|v| PairValue::Comparison(f64::from(*v)))
                        .collect(),
                );
            }
        }
        if values.is_empty() {
            return Err(DissectError::Empty(format!(
                "none of the {} pair ids in {} occurs in the data (was the SAE run on this data set?)",
                ids.len(),
                path.display()
            )));
        }
        Ok(Self(Precomputed {
            id: id.to_string(),
            factors,
            values,
        }))
    }

    /// Pairs of the data the activations file covers.
    pub fn n_matched(&self) -> usize {
        self.0.values.len()
    }
}

/// Feature labels from an SAE `report.json`: description, else top n-grams, else "SAE f{j}".
fn sae_labels(report: &Path, m: usize) -> Vec<String> {
    let mut labels: Vec<String> = (0..m).map(|j| format!("SAE f{j}")).collect();
    let Ok(text) = std::fs::read_to_string(report) else {
        return labels;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return labels;
    };
    for f in v["features"].as_array().into_iter().flatten() {
        let Some(j) = f["index"].as_u64().map(|j| j as usize).filter(|&j| j < m) else {
            continue;
        };
        if let Some(d) = f["description"].as_str().filter(|d| !d.trim().is_empty()) {
            labels[j] = format!("f{j}: {}", clip(d.trim(), 48));
        } else {
            let grams: Vec<&str> = f["ngrams_toward"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g["text"].as_str())
                .take(2)
                .collect();
            if !grams.is_empty() {
                labels[j] = format!("f{j}: {}", clip(&grams.join(", "), 48));
            }
        }
    }
    labels
}
