//! HF `config.json` parsing for the supported decoder families (llama, mistral, qwen2, qwen3,
//! gemma2, gemma3 text models, phi3, mixtral, qwen3_moe; Gemma's own fields are read by
//! `gemma_config.rs`, Phi-3's rotary fields and the mixture-of-experts fields by
//! `family_config.rs`).
//!
//! Reads both the classic layout (`rope_theta` + `rope_scaling`) and the transformers ≥ 5
//! layout (`rope_parameters`). Only parses and validates: no tensors, no model building.
use std::path::Path;

use serde::Deserialize;

use crate::model::{ModelError, Result};

/// The HF `model_type` values this engine reads.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "phi3",
    "mixtral",
    "qwen3_moe",
];

/// The architecture family of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama 1/2/3 (incl. `rope_scaling` "llama3"), also SmolLM2.
    Llama,
    /// Mistral (llama layout, optional sliding window).
    Mistral,
    /// Qwen2 / Qwen2.5 (q/k/v projections carry a bias).
    Qwen2,
    /// Qwen3 (per-head RMSNorm on q and k, explicit `head_dim`).
    Qwen3,
    /// Gemma 2: Gemma's block without q/k norms, with soft-capped attention scores and
    /// alternating sliding/global layers.
    Gemma2,
    /// Gemma 3 text models (`gemma3_text`; GGUF `gemma3`): norms around attention and MLP,
    /// `(1 + w)` RMSNorm, GeGLU, scaled embeddings, sliding/global layers.
    Gemma3,
    /// Phi-3 (`phi3`): the Llama layer with fused `qkv_proj` and `gate_up_proj`, LongRoPE
    /// scaling and optionally a partial rotary embedding.
    Phi3,
    /// Mixtral: the Mistral layer with a sparse mixture-of-experts MLP (softmax over the
    /// top-k router logits).
    Mixtral,
    /// Qwen3-MoE (`qwen3_moe`): the Qwen3 layer with a sparse mixture-of-experts MLP (softmax
    /// over all router logits, then top-k, renormalised if `norm_topk_prob`).
    #[serde(rename = "qwen3_moe")]
    Qwen3Moe,
}

impl Architecture {
    /// The HF `model_type` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Gemma2 => "gemma2",
            Architecture::Gemma3 => "gemma3",
            Architecture::Phi3 => "phi3",
            Architecture::Mixtral => "mixtral",
            Architecture::Qwen3Moe => "qwen3_moe",
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How rotary frequencies are rescaled for long contexts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum RopeScaling {
    /// Llama 3.1 style: low frequencies divided by `factor`, a smooth band in between.
    Llama3 {
        /// Overall scaling factor.
        factor: f64,
        /// Wavelengths longer than `original / low_freq_factor` are fully scaled.
        low_freq_factor: f64,
        /// Wavelengths shorter than `original / high_freq_factor` are untouched.
        high_freq_factor: f64,
        /// The pre-training context length.
        original_max_position_embeddings: f64,
    },
    /// Positions divided by `factor` (all frequencies divided by `factor`).
    Linear {
        /// Scaling factor.
        factor: f64,
    },
    /// Each frequency divided by its own factor: a GGUF file's `rope_freqs.weight` (llama.cpp
    /// stores Llama 3.1's scaling this way). In a config: `{"rope_type": "rope_freqs",
    /// "factors": [...]}`, one positive factor per frequency (`head_dim / 2`).
    Factors {
        /// The divisors, lowest index = highest frequency.
        factors: Vec<f64>,
    },
    /// Phi-3's LongRoPE (`longrope`, formerly `su`): each frequency divided by its own factor,
    /// `short_factor` while the sequence fits `original_max_position_embeddings`, `long_factor`
    /// beyond; cos and sin multiplied by `attention_factor` (transformers' rule).
    LongRope {
        /// Divisors for sequences within the original context (one per rotary frequency).
        short_factor: Vec<f64>,
        /// Divisors for longer sequences.
        long_factor: Vec<f64>,
        /// The pre-training context length: the switch point.
        original_max_position_embeddings: usize,
        /// Multiplies cos and sin (hence attention scores by its square).
        attention_factor: f64,
    },
}

/// A sparse mixture-of-experts MLP (Mixtral, Qwen3-MoE): per token, the router's top-k
/// experts, weighted by the router's softmax.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MoeConfig {
    /// Experts per MoE block.
    pub num_experts: usize,
    /// Experts each token is routed to.
    pub top_k: usize,
    /// Inner width of each expert's gated MLP.
    pub expert_intermediate_size: usize,
    /// Renormalise the top-k weights to sum to 1 (always for Mixtral).
    pub norm_topk_prob: bool,
    /// Which blocks have the MoE MLP (the others a dense MLP of `intermediate_size`).
    pub sparse_layers: Vec<bool>,
}

/// A parsed, validated model configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelConfig {
    /// Architecture family.
    pub architecture: Architecture,
    /// Residual stream width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Rows of the embedding table.
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Maximum context the model was configured for.
    pub max_position_embeddings: usize,
    /// The LM head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Dimensions of each head that RoPE rotates (`head_dim` unless Phi-3's
    /// `partial_rotary_factor` says fewer); the rest pass through.
    pub rotary_dim: usize,
    /// The mixture-of-experts MLP (Mixtral, Qwen3-MoE), `None` for dense models.
    pub moe: Option<MoeConfig>,
    /// Bias on q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Bias on the MLP projections.
    pub mlp_bias: bool,
    /// Per-head RMSNorm on queries and keys (Qwen3).
    pub qk_norm: bool,
    /// Sliding attention window (Mistral), if any.
    pub sliding_window: Option<usize>,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (generation stops at any of them).
    pub eos_token_ids: Vec<u32>,
    /// Padding token id.
    pub pad_token_id: Option<u32>,
    /// Which layers attend through `sliding_window` (Gemma's sliding/global pattern); empty
    /// when every layer is alike (then `sliding_window`, if any, applies to all: Mistral).
    pub sliding_layers: Vec<bool>,
    /// RoPE base of the sliding layers when it differs from `rope_theta` (Gemma 3), unscaled.
    pub local_rope_theta: Option<f64>,
    /// Attention scores are scaled by `query_pre_attn_scalar^-1/2` instead of `head_dim^-1/2`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Attention scores soft-capped as `c * tanh(scores / c)` before the mask (Gemma 2).
    pub attn_logit_softcapping: Option<f64>,
    /// Final logits soft-capped as `c * tanh(logits / c)`.
    pub final_logit_softcapping: Option<f64>,
    /// The MLP's gate activation.
    pub activation: Activation,
    /// Embeddings multiplied by this (Gemma: `sqrt(hidden_size)`).
    pub embed_scale: Option<f64>,
    /// Added to every RMSNorm weight on load (Gemma's `(1 + w)` norms: 1 for HF checkpoints, 0
    /// for GGUF files, whose converter stored `1 + w`).
    pub norm_weight_offset: f64,
}

/// The activation of a gated MLP `down(act(gate(x)) * up(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// SiLU (SwiGLU: Llama, Mistral, Qwen).
    Silu,
    /// GELU, tanh approximation (GeGLU: Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

/// The raw fields we read; everything optional so that we can name what is missing.
#[derive(Debug, Deserialize)]
struct Raw {
    model_type: Option<String>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    hidden_act: Option<String>,
    sliding_window: Option<serde_json::Value>,
    use_sliding_window: Option<bool>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
    pad_token_id: Option<serde_json::Value>,
}

fn bad(path: &Path, field: &str, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn need<T>(path: &Path, field: &str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| bad(path, field, "missing"))
}

fn token_ids(path: &Path, field: &str, v: &Option<serde_json::Value>) -> Result<Vec<u32>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .filter(|&x| x <= u32::MAX as u64)
            .map(|x| vec![x as u32])
            .ok_or_else(|| bad(path, field, format!("not a token id: {n}"))),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .filter(|&x| x <= u32::MAX as u64)
                    .map(|x| x as u32)
                    .ok_or_else(|| bad(path, field, format!("not a token id: {x}")))
            })
            .collect(),
        Some(other) => Err(bad(
            path,
            field,
            format!("expected a token id or a list, got {other}"),
        )),
    }
}

fn f64_field(path: &Path, obj: &serde_json::Value, key: &str, parent: &str) -> Result<f64> {
    obj.get(key)
        .and_then(|v| v.as_f64())
        .ok_or_else(|| bad(path, &format!("{parent}.{key}"), "missing or not a number"))
}

pub(super) fn parse_scaling(
    path: &Path,
    v: &serde_json::Value,
    parent: &str,
) -> Result<Option<RopeScaling>> {
    if v.is_null() {
        return Ok(None);
    }
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
        .ok_or_else(|| bad(path, &format!("{parent}.rope_type"), "missing"))?;
    match kind {
        "default" => Ok(None),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: f64_field(path, v, "factor", parent)?,
            low_freq_factor: f64_field(path, v, "low_freq_factor", parent)?,
            high_freq_factor: f64_field(path, v, "high_freq_factor", parent)?,
            original_max_position_embeddings: f64_field(
                path,
                v,
                "original_max_position_embeddings",
                parent,
            )?,
        })),
        "linear" => Ok(Some(RopeScaling::Linear {
            factor: f64_field(path, v, "factor", parent)?,
        })),
        "longrope" | "su" => {
            let factors = |key: &str| -> Result<Vec<f64>> {
                let field = format!("{parent}.{key}");
                v.get(key)
                    .and_then(|f| f.as_array())
                    .ok_or_else(|| bad(path, &field, "missing or not a list"))?
                    .iter()
                    .map(|x| {
                        x.as_f64()
                            .filter(|f| f.is_finite() && *f > 0.0)
                            .ok_or_else(|| bad(path, &field, format!("not a positive number: {x}")))
                    })
                    .collect()
            };
            let orig = f64_field(path, v, "original_max_position_embeddings", parent)?;
            if !(orig >= 1.0 && orig.fract() == 0.0 && orig <= u32::MAX as f64) {
                return Err(bad(
                    path,
                    &format!("{parent}.original_max_position_embeddings"),
                    format!("{orig}: not a positive whole number of tokens"),
                ));
            }
            Ok(Some(RopeScaling::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                original_max_position_embeddings: orig as usize,
                attention_factor: f64_field(path, v, "attention_factor", parent)?,
            }))
        }
        "rope_freqs" => {
            let field = format!("{parent}.factors");
            let factors = v
                .get("factors")
                .and_then(|f| f.as_array())
                .ok_or_else(|| bad(path, &field, "missing or not a list"))?
                .iter()
                .map(|x| {
                    x.as_f64()
                        .filter(|f| f.is_finite() && *f > 0.0)
                        .ok_or_else(|| bad(path, &field, format!("not a positive number: {x}")))
                })
                .collect::<Result<Vec<f64>>>()?;
            Ok(Some(RopeScaling::Factors { factors }))
        }
        other => Err(bad(
            path,
            &format!("{parent}.rope_type"),
            format!(
                "unsupported RoPE scaling `{other}` (supported: default, linear, llama3, longrope, rope_freqs)"
            ),
        )),
    }
}

impl ModelConfig {
    /// Parses an HF-style `config.json` value; `path` names the file in error messages.
    pub fn from_json(value: &serde_json::Value, path: &Path) -> Result<Self> {
        let raw: Raw =
            serde_json::from_value(value.clone()).map_err(|e| bad(path, "-", e.to_string()))?;
        let model_type = need(path, "model_type", raw.model_type.clone())?;
        let architecture =
            match model_type.as_str() {
                "llama" => Architecture::Llama,
                "mistral" => Architecture::Mistral,
                "qwen2" => Architecture::Qwen2,
                "qwen3" => Architecture::Qwen3,
                "gemma2" => Architecture::Gemma2,
                "gemma3_text" => Architecture::Gemma3,
                "gemma3" if value.get("text_config").is_some() => return Err(bad(
                    path,
                    "model_type",
                    "a multimodal Gemma 3 checkpoint (`gemma3` with a `text_config`): steerlab \
                     reads text models only (`gemma3_text`, or a `gemma3` GGUF file)",
                )),
                "gemma3" => Architecture::Gemma3,
                "phi3" => Architecture::Phi3,
                "mixtral" => Architecture::Mixtral,
                "qwen3_moe" => Architecture::Qwen3Moe,
                _ => {
                    return Err(ModelError::UnsupportedArchitecture {
                        path: path.to_path_buf(),
                        model_type,
                        supported: SUPPORTED_MODEL_TYPES.join(", "),
                    })
                }
            };
        let hidden_size = need(path, "hidden_size", raw.hidden_size)?;
        let num_attention_heads = need(path, "num_attention_heads", raw.num_attention_heads)?;
        let num_hidden_layers = need(path, "num_hidden_layers", raw.num_hidden_layers)?;
        let num_key_value_heads = raw.num_key_value_heads.unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || num_key_value_heads == 0 || hidden_size == 0 {
            return Err(bad(
                path,
                "num_attention_heads",
                "heads and hidden_size must be positive",
            ));
        }
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(bad(
                path,
                "num_key_value_heads",
                format!(
                    "{num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"
                ),
            ));
        }
        let gemma = match architecture {
            Architecture::Gemma2 | Architecture::Gemma3 => {
                Some(super::gemma_config::GemmaFields::read(
                    value,
                    path,
                    num_hidden_layers,
                    architecture == Architecture::Gemma2,
                )?)
            }
            _ => None,
        };
        let head_dim = match raw.head_dim.or(gemma.as_ref().map(|_| 256)) {
            Some(d) => d,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(bad(
                        path,
                        "head_dim",
                        "missing, and hidden_size is not divisible by num_attention_heads",
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(bad(
                path,
                "head_dim",
                format!("{head_dim} must be even for RoPE"),
            ));
        }
        if let (Some(act), None) = (&raw.hidden_act, &gemma) {
            if act != "silu" {
                return Err(bad(
                    path,
                    "hidden_act",
                    format!("unsupported activation `{act}` (only silu)"),
                ));
            }
        }
        let rotary_dim = match architecture {
            Architecture::Phi3 => super::family_config::phi3_rotary_dim(value, path, head_dim)?,
            _ => head_dim,
        };
        // Phi-3's LongRoPE reads two fields outside its scaling object.
        let raw_rope_parameters = raw
            .rope_parameters
            .as_ref()
            .map(|p| super::family_config::longrope_defaults(p, value, path))
            .transpose()?;
        let raw_rope_scaling = raw
            .rope_scaling
            .as_ref()
            .map(|p| super::family_config::longrope_defaults(p, value, path))
            .transpose()?;
        // transformers >= 5 moves rope_theta and rope_scaling into `rope_parameters`.
        let (rope_theta, rope_scaling) = match &raw_rope_parameters {
            _ if gemma.is_some() => {
                let g = gemma.as_ref().expect("checked");
                (g.rope_theta, g.rope_scaling.clone())
            }
            Some(p) if !p.is_null() => {
                let theta = p
                    .get("rope_theta")
                    .and_then(|v| v.as_f64())
                    .or(raw.rope_theta)
                    .unwrap_or(10_000.0);
                (theta, parse_scaling(path, p, "rope_parameters")?)
            }
            _ => {
                let scaling = match &raw_rope_scaling {
                    Some(v) => parse_scaling(path, v, "rope_scaling")?,
                    None => None,
                };
                (raw.rope_theta.unwrap_or(10_000.0), scaling)
            }
        };
        if let Some(RopeScaling::LongRope {
            short_factor,
            long_factor,
            ..
        }) = &rope_scaling
        {
            for (field, f) in [("short_factor", short_factor), ("long_factor", long_factor)] {
                if f.len() != rotary_dim / 2 {
                    return Err(bad(
                        path,
                        &format!("rope_scaling.{field}"),
                        format!(
                            "{} factors, but {rotary_dim} rotary dimensions have {} frequencies",
                            f.len(),
                            rotary_dim / 2
                        ),
                    ));
                }
            }
        }
        if let Some(RopeScaling::Factors { factors }) = &rope_scaling {
            if factors.len() != head_dim / 2 {
                return Err(bad(
                    path,
                    "rope_scaling.factors",
                    format!(
                        "{} factors, but head_dim {head_dim} has {} frequencies",
                        factors.len(),
                        head_dim / 2
                    ),
                ));
            }
        }
        let attention_bias = raw.attention_bias.unwrap_or(false);
        let (qkv_bias, o_bias, qk_norm) = match architecture {
            Architecture::Llama | Architecture::Mistral | Architecture::Mixtral => {
                (attention_bias, attention_bias, false)
            }
            Architecture::Phi3 => (false, false, false),
            Architecture::Qwen2 => (true, false, false),
            Architecture::Gemma2 => (attention_bias, attention_bias, false),
            Architecture::Qwen3 | Architecture::Qwen3Moe | Architecture::Gemma3 => {
                (attention_bias, attention_bias, true)
            }
        };
        let sliding_window = match architecture {
            Architecture::Gemma2 | Architecture::Gemma3 => gemma.as_ref().map(|g| g.sliding_window),
            Architecture::Mistral | Architecture::Mixtral | Architecture::Phi3 => {
                match &raw.sliding_window {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or_else(|| bad(path, "sliding_window", "not an integer"))?
                            as usize,
                    ),
                }
            }
            _ => {
                if raw.use_sliding_window == Some(true) {
                    return Err(bad(
                        path,
                        "use_sliding_window",
                        "sliding-window attention is only supported for mistral, mixtral and phi3",
                    ));
                }
                None
            }
        };
        let intermediate_size = need(path, "intermediate_size", raw.intermediate_size)?;
        let moe = super::family_config::moe_fields(
            value,
            path,
            architecture,
            num_hidden_layers,
            intermediate_size,
        )?;
        let config = ModelConfig {
            architecture,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rotary_dim,
            moe,
            vocab_size: need(path, "vocab_size", raw.vocab_size)?,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(gemma.is_some()),
            qkv_bias,
            o_bias,
            mlp_bias: raw.mlp_bias.unwrap_or(false)
                && matches!(architecture, Architecture::Llama | Architecture::Mistral),
            qk_norm,
            sliding_window,
            bos_token_id: token_ids(path, "bos_token_id", &raw.bos_token_id)?
                .first()
                .copied(),
            eos_token_ids: token_ids(path, "eos_token_id", &raw.eos_token_id)?,
            pad_token_id: token_ids(path, "pad_token_id", &raw.pad_token_id)?
                .first()
                .copied(),
            sliding_layers: gemma
                .as_ref()
                .map(|g| g.sliding_layers.clone())
                .unwrap_or_default(),
            local_rope_theta: gemma.as_ref().and_then(|g| g.local_rope_theta),
            attn_logit_softcapping: gemma.as_ref().and_then(|g| g.attn_logit_softcapping),
            query_pre_attn_scalar: gemma.as_ref().map(|g| g.query_pre_attn_scalar),
            final_logit_softcapping: gemma.as_ref().and_then(|g| g.final_logit_softcapping),
            activation: match &gemma {
                Some(_) => Activation::GeluTanh,
                None => Activation::Silu,
            },
            embed_scale: gemma.as_ref().map(|_| (hidden_size as f64).sqrt()),
            norm_weight_offset: gemma.as_ref().map_or(0.0, |g| g.norm_weight_offset),
        };
        config.check_numbers(path)?;
        Ok(config)
    }

    /// Reads and parses a `config.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ModelError::MissingFile {
                    path: path.to_path_buf(),
                    what: "model config".into(),
                }
            } else {
                ModelError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(path, &format!("line {}", e.line()), e.to_string()))?;
        Self::from_json(&value, path)
    }

    /// Whether layer `l` attends through the sliding window only.
    pub fn layer_is_sliding(&self, l: usize) -> bool {
        match self.sliding_layers.get(l) {
            Some(&s) => s,
            None => self.sliding_layers.is_empty() && self.sliding_window.is_some(),
        }
    }

    /// RoPE inverse frequencies of the sliding layers when they have their own base (Gemma 3:
    /// unscaled), else `None` (every layer uses [`ModelConfig::rope_inv_freq`]).
    pub fn local_rope_inv_freq(&self) -> Option<Vec<f64>> {
        let theta = self.local_rope_theta?;
        let dim = self.head_dim;
        Some(
            (0..dim / 2)
                .map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64))
                .collect(),
        )
    }

    /// RoPE inverse frequencies (length `head_dim / 2`), with scaling applied (LongRoPE: the
    /// short factors). With a partial rotary embedding the frequencies past `rotary_dim / 2`
    /// are 0: those dimensions pass through (see `arch/phi3.rs` for the head layout).
    pub fn rope_inv_freq(&self) -> Vec<f64> {
        self.rope_inv_freq_for_len(0)
    }

    /// [`ModelConfig::rope_inv_freq`] for a call whose positions end at `len` (LongRoPE
    /// switches to its long factors past `original_max_position_embeddings`, as transformers
    /// does for the sequence length it sees).
    pub fn rope_inv_freq_for_len(&self, len: usize) -> Vec<f64> {
        let mut f = self.scaled_rotary_freqs(len);
        f.resize(self.head_dim / 2, 0.0);
        f
    }

    /// The factor cos and sin are multiplied by (LongRoPE's `attention_factor`, else 1).
    pub fn rope_attention_factor(&self) -> f64 {
        match &self.rope_scaling {
            Some(RopeScaling::LongRope {
                attention_factor, ..
            }) => *attention_factor,
            _ => 1.0,
        }
    }

    /// The `rotary_dim / 2` scaled frequencies.
    fn scaled_rotary_freqs(&self, len: usize) -> Vec<f64> {
        let dim = self.rotary_dim;
        let base: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / dim as f64))
            .collect();
        match &self.rope_scaling {
            None => base,
            Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
            Some(RopeScaling::Factors { factors }) => {
                base.iter().zip(factors).map(|(f, s)| f / s).collect()
            }
            Some(RopeScaling::LongRope {
                short_factor,
                long_factor,
                original_max_position_embeddings,
                ..
            }) => {
                let factors = match len > *original_max_position_embeddings {
                    true => long_factor,
                    false => short_factor,
                };
                base.iter().zip(factors).map(|(f, s)| f / s).collect()
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            }) => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}

// Numbers from a file, checked where they enter (issue 17).
impl ModelConfig {
    /// Checks the numbers of a parsed configuration: sizes and context at least 1, RoPE base and
    /// scaling factors finite and positive, RMSNorm epsilon finite and not negative, a sliding
    /// window of at least one token.
    fn check_numbers(&self, path: &Path) -> Result<()> {
        let c = self;
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
        if c.rotary_dim == 0 || c.rotary_dim > c.head_dim || !c.rotary_dim.is_multiple_of(2) {
            return Err(bad(
                path,
                "partial_rotary_factor",
                format!(
                    "gives {} rotary dimensions of head_dim {}: must be even, 2 or more",
                    c.rotary_dim, c.head_dim
                ),
            ));
        }
        match &c.rope_scaling {
            None | Some(RopeScaling::Factors { .. }) => {}
            Some(RopeScaling::LongRope {
                short_factor,
                long_factor,
                original_max_position_embeddings,
                attention_factor,
            }) => {
                positive(path, "rope_scaling.attention_factor", *attention_factor)?;
                if *original_max_position_embeddings == 0 {
                    return Err(bad(
                        path,
                        "rope_scaling.original_max_position_embeddings",
                        "0: must be at least 1",
                    ));
                }
                for (field, f) in [("short_factor", short_factor), ("long_factor", long_factor)] {
                    for x in f {
                        positive(path, &format!("rope_scaling.{field}"), *x)?;
                    }
                }
            }
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
        let mut freqs = c.scaled_rotary_freqs(0);
        freqs.extend(c.scaled_rotary_freqs(usize::MAX));
        if let Some(i) = freqs.iter().position(|f| !(f.is_finite() && *f > 0.0)) {
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
