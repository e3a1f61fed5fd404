//! Numbers checked where they enter the engine: a parsed configuration (positive, finite,
//! consistent), a safetensors checkpoint against its configuration (tensor dtypes, block count),
//! and each weight tensor as it is loaded (no NaN or infinity). Every error names the file and
//! the field or tensor. Only checks: builds nothing and changes no value.
use std::path::Path;

use candle_core::{DType, Tensor};

use super::config::{ModelConfig, RopeScaling};
use crate::model::{ModelError, Result};

fn bad(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn positive(path: &Path, field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(bad(
            path,
            field,
            format!("{v}: must be a finite number above 0"),
        ))
    }
}

/// Checks the numbers of a parsed configuration: sizes and context at least 1, RoPE base and
/// scaling factors finite and positive, RMSNorm epsilon finite and not negative, a sliding
/// window of at least one token.
pub(crate) fn config(c: &ModelConfig, path: &Path) -> Result<()> {
    for (field, v) in [
        ("num_hidden_layers", c.num_hidden_layers),
        ("intermediate_size", c.intermediate_size),
        ("vocab_size", c.vocab_size),
        ("head_dim", c.head_dim),
        ("max_position_embeddings", c.max_position_embeddings),
    ] {
        if v == 0 {
            return Err(bad(path, field, "0: must be at least 1"));
        }
    }
    if c.sliding_window == Some(0) {
        return Err(bad(
            path,
            "sliding_window",
            "0: a window must hold at least one token (null turns it off)",
        ));
    }
    positive(path, "rope_theta", c.rope_theta)?;
    if !(c.rms_norm_eps.is_finite() && c.rms_norm_eps >= 0.0) {
        return Err(bad(
            path,
            "rms_norm_eps",
            format!("{}: must be a finite number, 0 or more", c.rms_norm_eps),
        ));
    }
    match &c.rope_scaling {
        None | Some(RopeScaling::Factors { .. }) => {}
        Some(RopeScaling::Linear { factor }) => positive(path, "rope_scaling.factor", *factor)?,
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            positive(path, "rope_scaling.factor", *factor)?;
            positive(path, "rope_scaling.low_freq_factor", *low_freq_factor)?;
            positive(path, "rope_scaling.high_freq_factor", *high_freq_factor)?;
            positive(
                path,
                "rope_scaling.original_max_position_embeddings",
                *original_max_position_embeddings,
            )?;
            if high_freq_factor <= low_freq_factor {
                return Err(bad(
                    path,
                    "rope_scaling.high_freq_factor",
                    format!(
                        "{high_freq_factor} must be above low_freq_factor {low_freq_factor} \
                         (the smoothing band divides by their difference)"
                    ),
                ));
            }
        }
    }
    // Each inverse frequency must come out finite and positive (a huge base underflows).
    if let Some(i) = c
        .rope_inv_freq()
        .iter()
        .position(|f| !(f.is_finite() && *f > 0.0))
    {
        return Err(bad(
            path,
            "rope_theta",
            format!(
                "{}: RoPE frequency {i} is not a finite positive number",
                c.rope_theta
            ),
        ));
    }
    Ok(())
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
