//! The config fields of Phi-3 and the mixture-of-experts families that the common parser
//! (`config.rs`) hands over: Phi-3's partial rotary embedding and the defaults of its LongRoPE
//! scaling (fields that live outside the scaling object in older configs), and the router and
//! expert fields of Mixtral (`num_local_experts`, `num_experts_per_tok`) and Qwen3-MoE
//! (`num_experts`, `moe_intermediate_size`, `norm_topk_prob`, `decoder_sparse_step`,
//! `mlp_only_layers`). Only parses and validates.
use std::path::Path;

use super::config::{Architecture, MoeConfig};
use crate::model::{ModelError, Result};

fn bad(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// A whole number ≥ 1 at `key` of `v`, `None` when absent or null.
fn count(path: &Path, v: &serde_json::Value, key: &str) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .filter(|&n| n >= 1 && n <= u32::MAX as u64)
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad(path, key, format!("not a whole number of at least 1: {x}"))),
    }
}

/// The rotated dimensions of each head: `head_dim * partial_rotary_factor` (read from
/// `rope_parameters` or the top level, default 1), as transformers truncates it.
pub(super) fn phi3_rotary_dim(
    value: &serde_json::Value,
    path: &Path,
    head_dim: usize,
) -> Result<usize> {
    let factor = value
        .get("rope_parameters")
        .and_then(|p| p.get("partial_rotary_factor"))
        .or_else(|| value.get("partial_rotary_factor"));
    let f = match factor {
        None | Some(serde_json::Value::Null) => return Ok(head_dim),
        Some(x) => x
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1.0)
            .ok_or_else(|| {
                bad(
                    path,
                    "partial_rotary_factor",
                    format!("{x}: must be a number in (0, 1]"),
                )
            })?,
    };
    // transformers truncates `head_dim * factor`; round what float error puts a hair below.
    let x = head_dim as f64 * f;
    Ok(match (x - x.round()).abs() < 1e-6 {
        true => x.round() as usize,
        false => x.floor() as usize,
    })
}

/// `scaling` (a `rope_scaling` or `rope_parameters` object) with LongRoPE's defaults filled
/// in from the rest of `config`: `original_max_position_embeddings` from the top level, and
/// `attention_factor` as transformers computes it (`sqrt(1 + ln(s) / ln(original))` with `s`
/// the scaling object's `factor` or `max_position_embeddings / original`, 1 when `s ≤ 1`).
/// Other scaling types come back unchanged.
pub(super) fn longrope_defaults(
    scaling: &serde_json::Value,
    config: &serde_json::Value,
    path: &Path,
) -> Result<serde_json::Value> {
    let kind = scaling
        .get("rope_type")
        .or_else(|| scaling.get("type"))
        .and_then(|t| t.as_str());
    if !matches!(kind, Some("longrope") | Some("su")) {
        return Ok(scaling.clone());
    }
    let mut out = scaling.clone();
    let obj = out
        .as_object_mut()
        .ok_or_else(|| bad(path, "rope_scaling", "not an object"))?;
    let key = "original_max_position_embeddings";
    let orig = match obj.get(key).filter(|v| !v.is_null()) {
        Some(v) => v.clone(),
        None => config
            .get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .ok_or_else(|| bad(path, key, "missing (LongRoPE needs the original context)"))?,
    };
    obj.insert(key.into(), orig.clone());
    if obj.get("attention_factor").is_none_or(|v| v.is_null()) {
        let o = orig
            .as_f64()
            .filter(|o| o.is_finite() && *o >= 1.0)
            .ok_or_else(|| bad(path, key, format!("{orig}: not a positive number")))?;
        let factor = match obj.get("factor").and_then(|f| f.as_f64()) {
            Some(f) => f,
            None => {
                let max = config
                    .get("max_position_embeddings")
                    .and_then(|m| m.as_f64())
                    .ok_or_else(|| bad(path, "max_position_embeddings", "missing"))?;
                max / o
            }
        };
        if !(factor.is_finite() && factor > 0.0) {
            return Err(bad(
                path,
                "rope_scaling.factor",
                format!("{factor}: must be a finite number above 0"),
            ));
        }
        let a = match factor <= 1.0 || o <= 1.0 {
            true => 1.0,
            false => (1.0 + factor.ln() / o.ln()).sqrt(),
        };
        obj.insert("attention_factor".into(), a.into());
    }
    Ok(out)
}

/// The mixture-of-experts fields of a Mixtral or Qwen3-MoE config (`None` for dense
/// families), validated: at least one expert, `1 ≤ top_k ≤ experts`, Qwen3-MoE's
/// `mlp_only_layers` inside the model.
pub(super) fn moe_fields(
    value: &serde_json::Value,
    path: &Path,
    arch: Architecture,
    layers: usize,
    intermediate_size: usize,
) -> Result<Option<MoeConfig>> {
    let (experts_key, experts, inner, norm, sparse_layers) = match arch {
        Architecture::Mixtral => (
            "num_local_experts",
            count(path, value, "num_local_experts")?,
            intermediate_size,
            true,
            vec![true; layers],
        ),
        Architecture::Qwen3Moe => {
            // transformers 5 writes `num_local_experts`; the hub's configs say `num_experts`.
            let (key, n) = match count(path, value, "num_experts")? {
                Some(n) => ("num_experts", Some(n)),
                None => (
                    "num_local_experts",
                    count(path, value, "num_local_experts")?,
                ),
            };
            let inner = count(path, value, "moe_intermediate_size")?
                .ok_or_else(|| bad(path, "moe_intermediate_size", "missing"))?;
            let norm = match value.get("norm_topk_prob") {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(bad(
                        path,
                        "norm_topk_prob",
                        format!("expected a bool, got {other}"),
                    ))
                }
            };
            let step = count(path, value, "decoder_sparse_step")?.unwrap_or(1);
            let mut dense = vec![false; layers];
            if let Some(list) = value.get("mlp_only_layers").filter(|v| !v.is_null()) {
                let list = list
                    .as_array()
                    .ok_or_else(|| bad(path, "mlp_only_layers", "not a list"))?;
                for x in list {
                    match x.as_u64() {
                        Some(l) if (l as usize) < layers => dense[l as usize] = true,
                        _ => {
                            return Err(bad(
                                path,
                                "mlp_only_layers",
                                format!("{x} is not a layer of the model (0..{layers})"),
                            ))
                        }
                    }
                }
            }
            // transformers: sparse unless listed, and only every `decoder_sparse_step`-th layer.
            let sparse = (0..layers)
                .map(|l| !dense[l] && (l + 1) % step == 0)
                .collect();
            (key, n, inner, norm, sparse)
        }
        _ => return Ok(None),
    };
    let num_experts = experts.ok_or_else(|| bad(path, experts_key, "missing"))?;
    let top_k = count(path, value, "num_experts_per_tok")?
        .ok_or_else(|| bad(path, "num_experts_per_tok", "missing"))?;
    if top_k > num_experts {
        return Err(bad(
            path,
            "num_experts_per_tok",
            format!("{top_k} is more than the {num_experts} experts"),
        ));
    }
    Ok(Some(MoeConfig {
        num_experts,
        top_k,
        expert_intermediate_size: inner,
        norm_topk_prob: norm,
        sparse_layers,
    }))
}
