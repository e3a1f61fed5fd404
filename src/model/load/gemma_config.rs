//! The fields of a Gemma 3 text config (`gemma3_text`, or the `gemma3` config a GGUF file is
//! turned into) that other families lack: the sliding/global layer pattern, the two RoPE bases,
//! `query_pre_attn_scalar`, soft-caps, the activation, and whether norm weights still need
//! their `+ 1`. Both config layouts are read: transformers ≥ 5 (`layer_types`, per-kind
//! `rope_parameters`) and the classic one (`sliding_window_pattern`, `rope_theta`,
//! `rope_local_base_freq`, `rope_scaling`). Only parses and validates.
use std::path::Path;

use super::config::{parse_scaling, RopeScaling};
use crate::model::{ModelError, Result};

/// Gemma 3's own config fields, validated.
#[derive(Debug, Clone)]
pub(crate) struct GemmaFields {
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub local_rope_theta: Option<f64>,
    pub attn_logit_softcapping: Option<f64>,
    pub sliding_window: usize,
    pub sliding_layers: Vec<bool>,
    pub query_pre_attn_scalar: f64,
    pub final_logit_softcapping: Option<f64>,
    pub norm_weight_offset: f64,
}

fn bad(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// A positive finite number at `key`, `default` when absent or null.
fn positive(path: &Path, v: &serde_json::Value, key: &str, default: f64) -> Result<f64> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(x) => x
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0)
            .ok_or_else(|| bad(path, key, format!("not a positive number: {x}"))),
    }
}

/// An optional positive number (a soft-cap): absent or null is `None`.
fn optional_cap(path: &Path, v: &serde_json::Value, key: &str) -> Result<Option<f64>> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => positive(path, v, key, 0.0).map(Some),
    }
}

impl GemmaFields {
    /// Reads the Gemma fields of `value` (a config with `num_hidden_layers = layers`); `path`
    /// names the file in errors.
    /// Gemma 2 (`gemma2`) differs: soft-capped attention allowed, one RoPE base, and the
    /// default pattern alternates (even layers sliding).
    pub fn read(
        value: &serde_json::Value,
        path: &Path,
        layers: usize,
        gemma2: bool,
    ) -> Result<Self> {
        for key in ["hidden_activation", "hidden_act"] {
            if let Some(act) = value.get(key).and_then(|a| a.as_str()) {
                if act != "gelu_pytorch_tanh" && act != "gelu_tanh" {
                    return Err(bad(
                        path,
                        key,
                        format!("unsupported activation `{act}` (Gemma: gelu_pytorch_tanh)"),
                    ));
                }
            }
        }
        let attn_cap = optional_cap(path, value, "attn_logit_softcapping")?;
        if attn_cap.is_some() && !gemma2 {
            return Err(bad(
                path,
                "attn_logit_softcapping",
                "soft-capped attention scores are not supported for gemma3 (set it to null)",
            ));
        }
        let sliding_window = positive(path, value, "sliding_window", 4096.0)?;
        if sliding_window.fract() != 0.0 || sliding_window > u32::MAX as f64 {
            return Err(bad(path, "sliding_window", "not a whole number of tokens"));
        }
        let sliding_layers = match value.get("layer_types") {
            Some(serde_json::Value::Array(kinds)) => {
                if kinds.len() != layers {
                    return Err(bad(
                        path,
                        "layer_types",
                        format!("{} entries for {layers} layers", kinds.len()),
                    ));
                }
                kinds
                    .iter()
                    .enumerate()
                    .map(|(i, k)| match k.as_str() {
                        Some("sliding_attention") => Ok(true),
                        Some("full_attention") => Ok(false),
                        _ => Err(bad(
                            path,
                            &format!("layer_types[{i}]"),
                            format!("`{k}` is neither sliding_attention nor full_attention"),
                        )),
                    })
                    .collect::<Result<Vec<bool>>>()?
            }
            Some(serde_json::Value::Null) | None if gemma2 => {
                (0..layers).map(|l| l % 2 == 0).collect()
            }
            Some(serde_json::Value::Null) | None => {
                let pattern = positive(path, value, "sliding_window_pattern", 6.0)?;
                if pattern.fract() != 0.0 {
                    return Err(bad(path, "sliding_window_pattern", "not a whole number"));
                }
                let p = pattern as usize;
                (0..layers).map(|l| (l + 1) % p != 0).collect()
            }
            Some(other) => {
                return Err(bad(
                    path,
                    "layer_types",
                    format!("expected a list, got {other}"),
                ))
            }
        };
        let (rope_theta, rope_scaling, local_rope_theta) = match value.get("rope_parameters") {
            _ if gemma2 => {
                let (theta, scaling) = match value.get("rope_parameters") {
                    Some(p) if p.is_object() => (
                        positive(path, p, "rope_theta", 10_000.0)?,
                        parse_scaling(path, p, "rope_parameters")?,
                    ),
                    _ => (
                        positive(path, value, "rope_theta", 10_000.0)?,
                        match value.get("rope_scaling") {
                            Some(v) => parse_scaling(path, v, "rope_scaling")?,
                            None => None,
                        },
                    ),
                };
                (theta, scaling, None)
            }
            Some(p) if p.is_object() && p.get("full_attention").is_some() => {
                let full = &p["full_attention"];
                let local = p
                    .get("sliding_attention")
                    .unwrap_or(&serde_json::Value::Null);
                let local_theta = positive(path, local, "rope_theta", 10_000.0)?;
                if let Some(Some(_)) = local
                    .is_object()
                    .then(|| parse_scaling(path, local, "rope_parameters.sliding_attention"))
                    .transpose()?
                {
                    return Err(bad(
                        path,
                        "rope_parameters.sliding_attention",
                        "RoPE scaling on the sliding layers is not supported",
                    ));
                }
                (
                    positive(path, full, "rope_theta", 1_000_000.0)?,
                    parse_scaling(path, full, "rope_parameters.full_attention")?,
                    Some(local_theta),
                )
            }
            _ => (
                positive(path, value, "rope_theta", 1_000_000.0)?,
                match value.get("rope_scaling") {
                    Some(v) => parse_scaling(path, v, "rope_scaling")?,
                    None => None,
                },
                Some(positive(path, value, "rope_local_base_freq", 10_000.0)?),
            ),
        };
        let offset = match value.get("steerlab_norm_weights_include_one") {
            Some(serde_json::Value::Bool(true)) => 0.0,
            Some(serde_json::Value::Bool(false)) | None => 1.0,
            Some(other) => {
                return Err(bad(
                    path,
                    "steerlab_norm_weights_include_one",
                    format!("expected a bool, got {other}"),
                ))
            }
        };
        Ok(GemmaFields {
            rope_theta,
            rope_scaling,
            local_rope_theta,
            sliding_window: sliding_window as usize,
            sliding_layers,
            query_pre_attn_scalar: positive(path, value, "query_pre_attn_scalar", 256.0)?,
            final_logit_softcapping: optional_cap(path, value, "final_logit_softcapping")?,
            norm_weight_offset: offset,
            attn_logit_softcapping: attn_cap,
        })
    }
}
