//! Applying a saved SAE to new inputs (`steerlab sae encode`, the Features panel's "apply to
//! this dataset"): embed new pairs the way the SAE's training data was embedded, encode their
//! differences, and write `inputs`, `activations` and `reconstructions` to one safetensors file
//! so any tool (SAELens included) can check the encoding. Also runs any SAELens SAE on given
//! input rows.
//!
//! Must not train or interpret; embedding goes through [`super::pipeline::embed_pairs`], the
//! same function `steerlab sae run` uses.
use super::embed::{f32_safetensors, Embedder};
use super::error::SaeError;
use super::link::SaeFolder;
use super::model::Sae;
use super::pipeline::{embed_pairs, PairSet, RunOptions};
use super::saelens::{self, SaelensSae};
use crate::jobs::ProgressSink;
use std::collections::HashMap;
use std::path::Path;

/// A saved SAE of either kind.
#[derive(Debug, Clone)]
pub enum AnySae {
    /// steerlab's signed SAE (features are signed; `sae run` folders).
    Signed(Sae),
    /// A SAELens SAE from elsewhere (`standard`, `topk`, `jumprelu`).
    Saelens(SaelensSae),
}

impl AnySae {
    /// Reads an SAE folder: steerlab's own (either layout) as [`AnySae::Signed`], any other
    /// SAELens folder as [`AnySae::Saelens`].
    pub fn read(dir: &Path) -> Result<Self, SaeError> {
        let cfg = saelens::read_cfg(dir)?;
        let steerlab = cfg.get("architecture").and_then(|v| v.as_str()) == Some("batchtopk")
            || saelens::steerlab_keys(&cfg)
                .and_then(|m| m.get("format"))
                .and_then(|v| v.as_str())
                == Some(saelens::SIGNED_PAIRS);
        if steerlab {
            Ok(AnySae::Signed(super::output::read_sae(dir)?))
        } else {
            Ok(AnySae::Saelens(saelens::read_saelens(dir)?))
        }
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        match self {
            AnySae::Signed(s) => s.d_in,
            AnySae::Saelens(s) => s.d_in,
        }
    }

    /// Number of features (steerlab's signed features count once).
    pub fn d_sae(&self) -> usize {
        match self {
            AnySae::Signed(s) => s.d_sae,
            AnySae::Saelens(s) => s.d_sae,
        }
    }

    /// Activations `[rows, d_sae]` of rows `x` (`[rows, d_in]`).
    pub fn encode(&self, x: &[f32]) -> Vec<f32> {
        match self {
            AnySae::Signed(s) => s.encode(x),
            AnySae::Saelens(s) => s.encode(x),
        }
    }

    /// Reconstructions `[rows, d_in]` of activations `a`.
    pub fn decode(&self, a: &[f32]) -> Vec<f32> {
        match self {
            AnySae::Signed(s) => s.decode(a),
            AnySae::Saelens(s) => s.decode(a),
        }
    }
}

/// Inputs, activations and reconstructions of some rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Row ids (pair ids, or `0..n` for given rows).
    pub ids: Vec<String>,
    /// Input width.
    pub d_in: usize,
    /// Number of features.
    pub d_sae: usize,
    /// `[rows, d_in]`.
    pub inputs: Vec<f32>,
    /// `[rows, d_sae]`.
    pub activations: Vec<f32>,
    /// `[rows, d_in]`: `decode(activations)`.
    pub reconstructions: Vec<f32>,
}

/// Encodes and decodes `inputs` (`[ids.len(), sae.d_in()]`, finite).
pub fn encode_rows(sae: &AnySae, ids: Vec<String>, inputs: Vec<f32>) -> Result<Encoded, SaeError> {
    let d = sae.d_in();
    if inputs.len() != ids.len() * d {
        return Err(SaeError::Data(format!(
            "{} input values for {} rows of width {d}: the SAE's input width is {d}",
            inputs.len(),
            ids.len()
        )));
    }
    if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
        return Err(SaeError::Data(format!(
            "input row {} holds a non-finite value ({})",
            i / d,
            inputs[i]
        )));
    }
    let activations = sae.encode(&inputs);
    let reconstructions = sae.decode(&activations);
    Ok(Encoded {
        ids,
        d_in: d,
        d_sae: sae.d_sae(),
        inputs,
        activations,
        reconstructions,
    })
}

/// Embeds `pairs` with `embedder` as the SAE in `folder` was trained (response only or with
/// the prompt, as its `cfg.json` says) and encodes the differences e(A) − e(B). The embedder
/// must be the one the SAE names (portable ids compared) and of its width.
pub fn encode_pairs(
    folder: &SaeFolder,
    pairs: &PairSet,
    embedder: &dyn Embedder,
    sink: &dyn ProgressSink,
) -> Result<Encoded, SaeError> {
    if pairs.is_empty() {
        return Err(SaeError::Data("no pairs to encode".into()));
    }
    let want = saelens::portable_embedder_id(&folder.embedder);
    let have = saelens::portable_embedder_id(&embedder.id());
    if want != have {
        return Err(SaeError::Config(format!(
            "{}: the SAE was trained on `{want}` embeddings, but the embedder given is `{have}`",
            folder.dir.display()
        )));
    }
    if embedder.dim() != folder.sae.d_in {
        return Err(SaeError::Config(format!(
            "the embedder's width {} does not match the SAE's input width {}",
            embedder.dim(),
            folder.sae.d_in
        )));
    }
    let cfg = saelens::read_cfg(&folder.dir)?;
    let include_prompt = saelens::steerlab_keys(&cfg)
        .and_then(|m| m.get("include_prompt"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let opts = RunOptions {
        include_prompt,
        data_hash: None,
        ..RunOptions::default()
    };
    let (ea, eb, _) = embed_pairs(pairs, embedder, &opts, sink)?;
    let deltas: Vec<f32> = ea.iter().zip(&eb).map(|(a, b)| a - b).collect();
    encode_rows(
        &AnySae::Signed(folder.sae.clone()),
        pairs.ids.clone(),
        deltas,
    )
}

/// Writes `inputs`, `activations` and `reconstructions` (F32) with the row ids and the SAE
/// folder's name in the metadata, atomically.
pub fn write_encoded(path: &Path, e: &Encoded, sae_dir: &Path) -> Result<(), SaeError> {
    let n = e.ids.len();
    let ids = serde_json::to_string(&e.ids).map_err(|e| SaeError::file(path, e))?;
    let meta = HashMap::from([
        ("pair_ids".to_string(), ids),
        (
            "sae".to_string(),
            sae_dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        (
            "rows".to_string(),
            "inputs: e(A) - e(B) per pair (or the given rows); activations: the SAE's encoding \
             (signed for steerlab SAEs); reconstructions: decode(activations)"
                .to_string(),
        ),
    ]);
    let bytes = f32_safetensors(
        &[
            ("inputs", &e.inputs, vec![n, e.d_in]),
            ("activations", &e.activations, vec![n, e.d_sae]),
            ("reconstructions", &e.reconstructions, vec![n, e.d_in]),
        ],
        Some(meta),
    )
    .map_err(|e| SaeError::file(path, e))?;
    crate::report::write_atomic(path, &bytes).map_err(|e| SaeError::file(path, e))
}

/// Reads the F32 tensor `inputs` (`[rows, width]`) of a safetensors file, with row ids from
/// its `pair_ids` metadata when present (else `0..rows`).
pub fn read_inputs(path: &Path) -> Result<(Vec<String>, Vec<f32>, usize), SaeError> {
    let bytes = std::fs::read(path).map_err(|e| SaeError::file(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| SaeError::file(path, e))?;
    let t = st.tensor("inputs").map_err(|_| {
        SaeError::file(path, "tensor `inputs` missing (expected F32 [rows, width])")
    })?;
    let &[rows, width] = t.shape() else {
        return Err(SaeError::file(
            path,
            format!(
                "tensor `inputs` has shape {:?}, expected [rows, width]",
                t.shape()
            ),
        ));
    };
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(SaeError::file(
            path,
            format!("tensor `inputs` has dtype {:?}, expected F32", t.dtype()),
        ));
    }
    let x: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| SaeError::file(path, e))?;
    let ids = match header.metadata().as_ref().and_then(|m| m.get("pair_ids")) {
        Some(s) => {
            let ids: Vec<String> = serde_json::from_str(s)
                .map_err(|e| SaeError::file(path, format!("metadata pair_ids: {e}")))?;
            if ids.len() != rows {
                return Err(SaeError::file(
                    path,
                    format!("metadata pair_ids has {} ids for {rows} rows", ids.len()),
                ));
            }
            ids
        }
        None => (0..rows).map(|i| i.to_string()).collect(),
    };
    Ok((ids, x, width))
}
