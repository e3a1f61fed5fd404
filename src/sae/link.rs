//! The link between features and steering (issue 5, item 9). With the `llm` embedder at layer
//! L the SAE is trained on differences of mean-pooled residuals after block L, so a feature's
//! decoder row is a direction in that residual stream: [`feature_vector`] turns it into a
//! native steering vector at L (scaled to the feature's typical size, provenance in the
//! metadata), and [`project_vector`] answers "what does this vector change?" by comparing a
//! steering direction with every feature's decoder direction.
//!
//! Reads SAE folders and vectors, writes nothing; must not train, embed or run a model.
use super::error::SaeError;
use super::model::Sae;
use super::pipeline::SaeReport;
use crate::steer::vector::VectorMeta;
use crate::steer::SteeringVector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use super::embed::{parse_llm_embedder, LlmSite};

/// An SAE output folder read back: the SAE, its embedder and dataset, and the report if present.
#[derive(Debug, Clone)]
pub struct SaeFolder {
    /// The folder.
    pub dir: PathBuf,
    /// The SAE.
    pub sae: Sae,
    /// Embedder id (`cfg.json` `hook_name`).
    pub embedder: String,
    /// Dataset name (`cfg.json` `steerlab.dataset`), `-` when unknown.
    pub dataset: String,
    /// `report.json`, when the folder has one.
    pub report: Option<SaeReport>,
}

impl SaeFolder {
    /// Reads `cfg.json`, `sae_weights.safetensors` and (optionally) `report.json` from `dir`.
    pub fn read(dir: &Path) -> Result<Self, SaeError> {
        let sae = super::output::read_sae(dir)?;
        let cfg_path = dir.join("cfg.json");
        let cfg = super::saelens::read_cfg(dir)?;
        let st = super::saelens::steerlab_keys(&cfg);
        // The embedder id: `metadata.steerlab.embedder` (SAELens form), else `hook_name` (the
        // layout before it).
        let embedder = st
            .and_then(|m| m.get("embedder"))
            .or_else(|| cfg.get("hook_name"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                SaeError::file(
                    &cfg_path,
                    "metadata.steerlab.embedder: missing or not a string",
                )
            })?
            .to_string();
        let dataset = st
            .and_then(|m| m.get("dataset"))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("-")
            .to_string();
        let rp = dir.join("report.json");
        let report = if rp.exists() {
            let text = std::fs::read_to_string(&rp).map_err(|e| SaeError::file(&rp, e))?;
            Some(serde_json::from_str(&text).map_err(|e| SaeError::file(&rp, e))?)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            sae,
            embedder,
            dataset,
            report,
        })
    }

    /// The residual site of the embedder, or an error saying why a decoder direction is not a
    /// residual direction (another embedder).
    pub fn llm_site(&self) -> Result<LlmSite, SaeError> {
        parse_llm_embedder(&self.embedder).ok_or_else(|| {
            SaeError::Config(format!(
                "{}: the SAE was trained on `{}` embeddings; only an SAE trained with \
                 `--embedder llm:LAYER` has decoder directions in a model's residual stream",
                self.dir.display(),
                self.embedder
            ))
        })
    }
}

/// How long the steering vector of a feature is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum VectorScale {
    /// The feature's mean |activation| where it is active (from `report.json`): adding the
    /// vector at every position shifts the pooled residual by the feature's typical size.
    MeanActive,
    /// Unit norm.
    Unit,
    /// A given norm.
    Norm(f32),
}

/// The steering vector of feature `feature`: its decoder direction at the SAE's layer, scaled
/// by `scale`. The metadata records the SAE folder, the feature, the scale and the dataset.
pub fn feature_vector(
    folder: &SaeFolder,
    feature: usize,
    scale: VectorScale,
) -> Result<SteeringVector, SaeError> {
    let site = folder.llm_site()?;
    let sae = &folder.sae;
    if feature >= sae.d_sae {
        return Err(SaeError::Config(format!(
            "feature {feature} does not exist (the SAE in {} has {} features, 0..{})",
            folder.dir.display(),
            sae.d_sae,
            sae.d_sae - 1
        )));
    }
    let (norm, how) = match scale {
        VectorScale::Unit => (1.0f32, "unit".to_string()),
        VectorScale::Norm(n) => {
            if !n.is_finite() || n <= 0.0 {
                return Err(SaeError::Config(format!(
                    "the vector norm must be a positive number, got {n}"
                )));
            }
            (n, format!("norm {n}"))
        }
        VectorScale::MeanActive => {
            let rep = folder.report.as_ref().ok_or_else(|| {
                SaeError::file(
                    folder.dir.join("report.json"),
                    "missing: needed for the mean-activation scale (give a norm instead)",
                )
            })?;
            let f = rep
                .features
                .iter()
                .find(|f| f.index == feature)
                .ok_or_else(|| {
                    SaeError::file(
                        folder.dir.join("report.json"),
                        format!("has no entry for feature {feature}"),
                    )
                })?;
            if f.mean_abs_active <= 0.0 || !f.mean_abs_active.is_finite() {
                return Err(SaeError::Data(format!(
                    "feature {feature} never fires on the training data (mean |activation| \
                     {}); give a norm instead",
                    f.mean_abs_active
                )));
            }
            let n = f.mean_abs_active as f32;
            (n, format!("mean |activation| {n:.4}"))
        }
    };
    let dir: Vec<f32> = sae.direction(feature).iter().map(|v| v * norm).collect();
    let mut meta = VectorMeta::new(
        format!("sae(feature {feature} of {}, {how})", folder.dir.display()),
        site.model.clone(),
        sae.d_in,
    );
    meta.dataset = folder.dataset.clone();
    SteeringVector::new(BTreeMap::from([(site.layer, dir)]), meta)
        .map_err(|e| SaeError::Data(e.to_string()))
}

/// How a direction relates to one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureProjection {
    /// Latent index.
    pub feature: usize,
    /// Cosine between the direction and the feature's (unit) decoder direction.
    pub cosine: f64,
    /// Component of the direction along the decoder direction (dot product).
    pub projection: f64,
    /// Change of the feature's pre-activation when an embedding difference moves by the
    /// direction (`v · W_enc[:, j]`).
    pub encoder_response: f64,
}

/// Projects direction `v` (width `sae.d_in`) on every feature; sorted by |cosine|, largest
/// first (ties by index).
pub fn project_vector(sae: &Sae, v: &[f32]) -> Result<Vec<FeatureProjection>, SaeError> {
    if v.len() != sae.d_in {
        return Err(SaeError::Data(format!(
            "vector width {} does not match the SAE's input width {}",
            v.len(),
            sae.d_in
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(SaeError::Data(
            "vector contains NaN or infinite values".into(),
        ));
    }
    let enc = super::dense::matmul(v, 1, sae.d_in, false, &sae.w_enc, sae.d_sae, false);
    let mut out: Vec<FeatureProjection> = (0..sae.d_sae)
        .map(|j| {
            let d = sae.direction(j);
            FeatureProjection {
                feature: j,
                cosine: super::dense::cosine(d, v),
                projection: d.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum(),
                encoder_response: enc[j] as f64,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.cosine
            .abs()
            .total_cmp(&a.cosine.abs())
            .then(a.feature.cmp(&b.feature))
    });
    Ok(out)
}

/// The result of projecting a steering vector on an SAE's features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorProjection {
    /// The vector's layer that was projected.
    pub layer: usize,
    /// Norm of that layer's direction.
    pub norm: f64,
    /// Features, largest |cosine| first.
    pub features: Vec<FeatureProjection>,
    /// Fraction of the direction's squared norm inside the span of the decoder directions
    /// (least squares); the rest is invisible to the SAE.
    pub explained: f64,
    /// Warnings (e.g. the vector was made on a differently named model).
    pub notes: Vec<String>,
}

/// Projects a steering vector on the features of an `llm`-embedder SAE: the vector's direction
/// at the SAE's layer (or at `layer` when given) against every decoder direction.
pub fn project_steering_vector(
    folder: &SaeFolder,
    v: &SteeringVector,
    layer: Option<usize>,
) -> Result<VectorProjection, SaeError> {
    let mut notes = Vec::new();
    let layer = match layer {
        Some(l) => l,
        None => folder.llm_site()?.layer,
    };
    if let Ok(site) = folder.llm_site() {
        if site.layer != layer {
            notes.push(format!(
                "the SAE reads layer {} but layer {layer} of the vector was projected",
                site.layer
            ));
        }
        if !v.meta.model.is_empty() && v.meta.model != site.model {
            notes.push(format!(
                "the vector was made on `{}`, the SAE's embeddings came from `{}`",
                v.meta.model, site.model
            ));
        }
    }
    let dir = v.layers.get(&layer).ok_or_else(|| {
        let have: Vec<String> = v.layers.keys().map(|l| l.to_string()).collect();
        SaeError::Data(format!(
            "the vector has no direction at layer {layer} (it has layers {})",
            have.join(", ")
        ))
    })?;
    let features = project_vector(&folder.sae, dir)?;
    let norm = dir
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    Ok(VectorProjection {
        layer,
        norm,
        explained: span_fraction(&folder.sae, dir),
        features,
        notes,
    })
}

/// Fraction of ‖v‖² captured by the least-squares projection of `v` on the span of the decoder
/// rows (normal equations with a tiny ridge, solved by Gaussian elimination).
fn span_fraction(sae: &Sae, v: &[f32]) -> f64 {
    let m = sae.d_sae;
    let vv: f64 = v.iter().map(|x| (*x as f64).powi(2)).sum();
    if vv == 0.0 {
        return 0.0;
    }
    let mut g = vec![0.0f64; m * m];
    let mut b = vec![0.0f64; m];
    for i in 0..m {
        let di = sae.direction(i);
        b[i] = di.iter().zip(v).map(|(x, y)| *x as f64 * *y as f64).sum();
        for j in 0..m {
            let dj = sae.direction(j);
            g[i * m + j] = di.iter().zip(dj).map(|(x, y)| *x as f64 * *y as f64).sum();
        }
        g[i * m + i] += 1e-9;
    }
    let Some(c) = crate::numeric::linalg::gauss_solve(g, b.clone(), m) else {
        return f64::NAN;
    };
    // ‖P v‖² = cᵀ b for the least-squares coefficients c.
    (c.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / vv).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedder_ids_parse() {
        assert_eq!(
            parse_llm_embedder("llm:SmolLM2-135M-Instruct:resid_post:15"),
            Some(LlmSite {
                model: "SmolLM2-135M-Instruct".into(),
                layer: 15
            })
        );
        assert_eq!(
            parse_llm_embedder("llm:org:name:resid_post:3").map(|s| s.model),
            Some("org:name".into())
        );
        assert_eq!(parse_llm_embedder("minilm:/x/y"), None);
        assert_eq!(parse_llm_embedder("llm:m:resid_pre:3"), None);
        assert_eq!(parse_llm_embedder("llm:m:resid_post:x"), None);
    }

    #[test]
    fn span_fraction_of_orthonormal_rows() {
        // Decoder rows e0, e1 in R^3: v = (3, 4, 12) keeps (9 + 16) / 169 of its squared norm.
        let sae = Sae {
            d_in: 3,
            d_sae: 2,
            w_enc: vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            b_enc: vec![0.0; 2],
            w_dec: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            b_dec: vec![0.0; 3],
            threshold: 0.0,
            k: 1,
            prefixes: vec![2],
        };
        let f = span_fraction(&sae, &[3.0, 4.0, 12.0]);
        assert!((f - 25.0 / 169.0).abs() < 1e-9, "{f}");
        let p = project_vector(&sae, &[3.0, 4.0, 12.0]).unwrap();
        assert_eq!(p[0].feature, 1);
        assert!((p[0].cosine - 4.0 / 13.0).abs() < 1e-6);
        assert!((p[0].projection - 4.0).abs() < 1e-6);
        assert!((p[1].encoder_response - 3.0).abs() < 1e-6);
    }
}
