//! The `gemma3` and `gemma2` GGUF architectures as llama.cpp's converter writes them: the norm
//! tensor names of a Gemma block (`post_attention_norm`, `ffn_norm` = HF
//! `pre_feedforward_layernorm`, `post_ffw_norm`) and the config fields read from the `gemma3.*`
//! / `gemma2.*` keys the way llama.cpp reads them: the sliding window and its layer pattern
//! (`attention.sliding_window_pattern`, a period or one bool per layer; default 6 for Gemma 3,
//! 2 for Gemma 2: even layers sliding), the sliding layers' RoPE base (Gemma 3:
//! `rope.freq_base_swa`, default 10000; Gemma 2 has one base), the attention scale
//! (`head_dim^-1/2`; `(hidden / heads)^-1/2` for the 27B models, 62 layers for Gemma 3 and 46
//! for Gemma 2), Gemma 2's attention soft-cap (`attn_logit_softcapping`), an optional final
//! soft-cap, and norm weights stored as `1 + w`. Must not read tensor data.
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use super::gguf::{md_float, md_int};
use crate::model::{ModelError, Result};

fn bad(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// The HF name of a Gemma block norm (`blk.3.post_ffw_norm.weight` →
/// `model.layers.3.post_feedforward_layernorm.weight`), `None` for other names.
pub(super) fn hf_norm_name(gguf_name: &str) -> Option<String> {
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match part {
        "post_attention_norm.weight" => "post_attention_layernorm",
        "ffn_norm.weight" => "pre_feedforward_layernorm",
        "post_ffw_norm.weight" => "post_feedforward_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.weight"))
}

/// Adds the Gemma fields to the HF-style `config` built from the common `{arch}.*` keys
/// (`arch`: `gemma3` or `gemma2`).
pub(super) fn add_config(
    content: &Content,
    path: &Path,
    arch: &str,
    config: &mut serde_json::Value,
) -> Result<()> {
    let gemma2 = arch == "gemma2";
    let k = |s: &str| format!("{arch}.{s}");
    let layers = config["num_hidden_layers"].as_u64().unwrap_or(0) as usize;
    let hidden = config["hidden_size"].as_u64().unwrap_or(0);
    let heads = config["num_attention_heads"].as_u64().unwrap_or(1).max(1);
    let head_dim = config["head_dim"].as_u64().unwrap_or(0);
    let window = md_int(content, path, &k("attention.sliding_window"))?.unwrap_or(0);
    let pattern_key = &k("attention.sliding_window_pattern");
    let sliding: Vec<bool> = if window == 0 {
        vec![false; layers]
    } else {
        match content.metadata.get(pattern_key) {
            Some(Value::Array(a)) => {
                if a.len() != layers {
                    return Err(bad(
                        path,
                        pattern_key,
                        format!("{} entries for {layers} blocks", a.len()),
                    ));
                }
                a.iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Bool(b) => Ok(*b),
                        other => Err(bad(
                            path,
                            &format!("{pattern_key}[{i}]"),
                            format!("expected a bool, got {other:?}"),
                        )),
                    })
                    .collect::<Result<Vec<bool>>>()?
            }
            _ => {
                let default = if gemma2 { 2 } else { 6 };
                let period = md_int(content, path, pattern_key)?.unwrap_or(default);
                if period == 0 {
                    return Err(bad(path, pattern_key, "must be positive"));
                }
                // llama.cpp's set_swa_pattern: the last layer of each period is global.
                (0..layers as u64)
                    .map(|l| l % period < period - 1)
                    .collect()
            }
        }
    };
    let kinds: Vec<&str> = sliding
        .iter()
        .map(|&s| match s {
            true => "sliding_attention",
            false => "full_attention",
        })
        .collect();
    let big = if gemma2 { 46 } else { 62 };
    let scalar = if layers == big {
        hidden / heads
    } else {
        head_dim
    };
    let obj = config
        .as_object_mut()
        .ok_or_else(|| bad(path, "-", "config is not an object"))?;
    obj.remove("hidden_act");
    obj.insert("hidden_activation".into(), "gelu_pytorch_tanh".into());
    obj.insert("layer_types".into(), kinds.into());
    obj.insert("sliding_window".into(), window.max(1).into());
    if gemma2 {
        obj.insert(
            "attn_logit_softcapping".into(),
            match md_float(content, path, &k("attn_logit_softcapping"))? {
                Some(c) if c != 0.0 => c.into(),
                _ => serde_json::Value::Null,
            },
        );
    } else {
        obj.insert(
            "rope_local_base_freq".into(),
            md_float(content, path, &k("rope.freq_base_swa"))?
                .unwrap_or(10_000.0)
                .into(),
        );
    }
    obj.insert("query_pre_attn_scalar".into(), scalar.into());
    obj.insert(
        "final_logit_softcapping".into(),
        match md_float(content, path, &k("final_logit_softcapping"))? {
            Some(c) if c != 0.0 => c.into(),
            _ => serde_json::Value::Null,
        },
    );
    obj.insert("steerlab_norm_weights_include_one".into(), true.into());
    Ok(())
}
