//! Numbers checked where they enter the engine (the configuration's own numbers are checked by
//! `ModelConfig::from_json`): a safetensors checkpoint against its configuration (tensor dtypes,
//! block count), each weight tensor as it is loaded (no NaN or infinity), and input lengths
//! against the context. Every error names the file and
//! the field or tensor. Only checks: builds nothing and changes no value.
use std::path::Path;

use candle_core::{DType, Tensor};

use super::config::ModelConfig;
use crate::model::{ModelError, Result};

fn bad(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// The block index of an HF tensor name (`model.layers.7.mlp.up_proj.weight` → 7).
fn block_of(name: &str) -> Option<usize> {
    name.strip_prefix("model.layers.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Checks a safetensors checkpoint against its configuration before any weight is read: only
/// float tensors (an integer tensor is not a weight this engine can use), and no blocks beyond
/// `num_hidden_layers` (a config that says fewer layers than the checkpoint has would silently
/// drop the rest). `names` lists each tensor with its dtype and file.
pub(crate) fn checkpoint<'a>(
    names: impl IntoIterator<Item = (&'a str, safetensors::Dtype, &'a Path)>,
    config: &ModelConfig,
    config_path: &Path,
) -> Result<()> {
    use safetensors::Dtype as D;
    let mut deepest: Option<(usize, &str)> = None;
    for (name, dtype, file) in names {
        if !matches!(dtype, D::F16 | D::BF16 | D::F32 | D::F64) {
            return Err(bad(
                file,
                name,
                format!("stored as {dtype:?}: model weights must be F16, BF16, F32 or F64"),
            ));
        }
        if let Some(l) = block_of(name) {
            if deepest.is_none_or(|(d, _)| l > d) {
                deepest = Some((l, name));
            }
        }
    }
    if let Some((l, name)) = deepest {
        if l >= config.num_hidden_layers {
            return Err(bad(
                config_path,
                "num_hidden_layers",
                format!(
                    "{} disagrees with the checkpoint, which has block {l} (`{name}`)",
                    config.num_hidden_layers
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a weight tensor that holds NaN or an infinity, naming it (one cheap pass: `x·0` is
/// 0 for every finite `x`, NaN otherwise).
pub(crate) fn finite_weight(t: &Tensor, path: &Path, name: &str) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(bad(
            path,
            name,
            format!("stored as {:?}: model weights must be floats", t.dtype()),
        ));
    }
    let probe = t
        .affine(0.0, 0.0)
        .and_then(|z| z.sum_all())
        .and_then(|s| s.to_dtype(DType::F64))
        .and_then(|s| s.to_scalar::<f64>())
        .map_err(|e| bad(path, name, e.to_string()))?;
    if probe.is_finite() {
        Ok(())
    } else {
        Err(bad(
            path,
            name,
            "contains NaN or infinite values (a corrupt or badly converted checkpoint)",
        ))
    }
}

/// Refuses an input of `len` positions (cache included) longer than the model's context.
pub(crate) fn context(len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(ModelError::InvalidInput(format!(
            "the input is {len} tokens long but the model's context is {max} tokens \
             (max_position_embeddings); shorten the prompt or lower --max-new-tokens"
        )));
    }
    Ok(())
}
