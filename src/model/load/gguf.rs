//! GGUF model files (llama.cpp's format): reads the header with candle's `gguf_file` reader,
//! turns the `{arch}.*` metadata into an HF-style `config.json` value, dequantizes every tensor
//! (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants), renames it to its HF name,
//! undoes llama.cpp's per-head Q/K row permutation (`llama` only: the other families use the
//! NEOX rotary layout, which llama.cpp stores as HF does), and builds the tokenizer from metadata.
//!
//! Architectures ([`SUPPORTED_GGUF_ARCHITECTURES`]): `llama` (also Mistral files, and Mixtral
//! files: `llama` with `expert_count` and expert tensors; Llama 3.1's `rope_freqs.weight` is
//! read as per-frequency RoPE factors), `qwen2` (q/k/v biases), `qwen3` (q/k norms),
//! `qwen3moe` (experts), `gemma2` and `gemma3` (their keys and norm names in `gguf_gemma.rs`),
//! `phi3` (fused `attn_qkv` or separate q/k/v, fused gate/up as `ffn_up`, LongRoPE factors as
//! `rope_factors_{long,short}.weight`, partial rotary from `rope.dimension_count`). Expert
//! tensors (`ffn_{gate,up,down}_exps`, `[experts, rows, cols]`) are split into one matrix per
//! expert under its HF name. This module must not build or run models: the engine loads the returned
//! tensors like an HF safetensors folder.
use crate::model::fast::quant::{self, QMatrix};
use crate::model::tokenizer::TextTokenizer;
use crate::model::{ModelError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// The contents of a GGUF file, ready for the engine.
#[derive(Debug)]
pub struct GgufContents {
    /// HF-style `config.json` equivalent (`model_type: "llama"`, `hidden_size`, ...).
    pub config: serde_json::Value,
    /// Dequantized tensors under their HF names (`model.layers.0.self_attn.q_proj.weight`, ...).
    pub tensors: HashMap<String, Tensor>,
    /// Weight matrices kept block-quantized (only from [`read_gguf_with`] asked to), under
    /// their HF names, Q/K rows un-permuted; these are absent from `tensors`.
    pub quantized: HashMap<String, QMatrix>,
    /// The tokenizer and chat template from the file's metadata.
    pub tokenizer: TextTokenizer,
    /// `general.name`, else the file stem.
    pub name: String,
}

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// The `general.architecture` values this loader reads.
pub const SUPPORTED_GGUF_ARCHITECTURES: &[&str] = &[
    "llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3",
];

/// The three stacked expert tensors of a mixture-of-experts block (`blk.{l}.ffn_*_exps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpertPart {
    Gate,
    Up,
    Down,
}

/// `(layer, part)` of a stacked expert tensor of an architecture with experts (`llama` for
/// Mixtral, `qwen3moe`), `None` for other names.
fn expert_tensor(arch: &str, gguf_name: &str) -> Option<(usize, ExpertPart)> {
    if arch != "llama" && arch != "qwen3moe" {
        return None;
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let part = match part {
        "ffn_gate_exps.weight" => ExpertPart::Gate,
        "ffn_up_exps.weight" => ExpertPart::Up,
        "ffn_down_exps.weight" => ExpertPart::Down,
        _ => return None,
    };
    Some((layer.parse().ok()?, part))
}

/// The HF name of expert `e`'s matrix `part` in block `l`.
fn expert_hf_name(arch: &str, l: usize, e: usize, part: ExpertPart) -> String {
    match arch {
        "llama" => {
            let leaf = match part {
                ExpertPart::Gate => "w1",
                ExpertPart::Up => "w3",
                ExpertPart::Down => "w2",
            };
            format!("model.layers.{l}.block_sparse_moe.experts.{e}.{leaf}.weight")
        }
        _ => {
            let leaf = match part {
                ExpertPart::Gate => "gate_proj",
                ExpertPart::Up => "up_proj",
                ExpertPart::Down => "down_proj",
            };
            format!("model.layers.{l}.mlp.experts.{e}.{leaf}.weight")
        }
    }
}

/// Names of the LongRoPE factor tensors of a `phi3` file (read into the config).
const ROPE_FACTOR_TENSORS: [&str; 2] = ["rope_factors_long.weight", "rope_factors_short.weight"];

fn bad(path: &Path, field: impl Into<String>, message: impl Into<String>) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>> {
    if !path.exists() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            what: "GGUF model file".into(),
        });
    }
    let f = std::fs::File::open(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(BufReader::new(f))
}

/// Reads only the header (metadata and tensor table) of a GGUF file. Rejects files without the
/// `GGUF` magic and headers that are truncated or corrupt, naming the file.
pub fn read_gguf_header(path: &Path) -> Result<Content> {
    let mut r = open(path)?;
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(|_| {
        bad(
            path,
            "header",
            "file is shorter than a GGUF header (4-byte magic)",
        )
    })?;
    if &magic != GGUF_MAGIC {
        return Err(bad(
            path,
            "header",
            format!(
                "not a GGUF file: magic is {:?}, expected \"GGUF\"",
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    super::gguf_check::check_gguf_header(path)?;
    r.rewind().map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Content::read(&mut r).map_err(|e| {
        bad(
            path,
            "header",
            format!("corrupt or truncated GGUF header: {e}"),
        )
    })
}

/// The HF tensor name of a GGUF tensor of a supported architecture (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`), or `None` for names those layouts lack
/// (`rope_freqs.weight` is not a weight of the model: [`read_gguf`] reads it into the config).
pub fn hf_tensor_name(gguf_name: &str) -> Option<String> {
    hf_tensor_name_for("llama", gguf_name)
}

/// [`hf_tensor_name`] for the architecture `arch` (Gemma's four norms per block have their own
/// names: see `gguf_gemma.rs`).
pub fn hf_tensor_name_for(arch: &str, gguf_name: &str) -> Option<String> {
    if arch == "gemma3" || arch == "gemma2" {
        if let Some(hf) = super::gguf_gemma::hf_norm_name(gguf_name) {
            return Some(hf);
        }
    }
    match gguf_name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let hf = match part {
        "attn_qkv" if arch == "phi3" && kind == "weight" => "self_attn.qkv_proj",
        "ffn_up" if arch == "phi3" && kind == "weight" => "mlp.gate_up_proj",
        "ffn_gate_inp" if arch == "llama" && kind == "weight" => "block_sparse_moe.gate",
        "ffn_gate_inp" if arch == "qwen3moe" && kind == "weight" => "mlp.gate",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" if kind == "weight" => "mlp.gate_proj",
        "ffn_up" if kind == "weight" => "mlp.up_proj",
        "ffn_down" if kind == "weight" => "mlp.down_proj",
        "attn_q_norm" if kind == "weight" => "self_attn.q_norm",
        "attn_k_norm" if kind == "weight" => "self_attn.k_norm",
        "attn_norm" if kind == "weight" => "input_layernorm",
        "ffn_norm" if kind == "weight" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

pub(super) fn md_int(content: &Content, path: &Path, key: &str) -> Result<Option<u64>> {
    use Value::*;
    let Some(v) = content.metadata.get(key) else {
        return Ok(None);
    };
    let x: Option<u64> = match v {
        U8(x) => Some(*x as u64),
        U16(x) => Some(*x as u64),
        U32(x) => Some(*x as u64),
        U64(x) => Some(*x),
        I8(x) => u64::try_from(*x).ok(),
        I16(x) => u64::try_from(*x).ok(),
        I32(x) => u64::try_from(*x).ok(),
        I64(x) => u64::try_from(*x).ok(),
        _ => None,
    };
    x.map(Some).ok_or_else(|| {
        bad(
            path,
            key,
            format!("expected a non-negative integer, got {v:?}"),
        )
    })
}

pub(super) fn md_float(content: &Content, path: &Path, key: &str) -> Result<Option<f64>> {
    use Value::*;
    let Some(v) = content.metadata.get(key) else {
        return Ok(None);
    };
    match v {
        F32(x) => Ok(Some(*x as f64)),
        F64(x) => Ok(Some(*x)),
        _ => md_int(content, path, key).map(|o| o.map(|x| x as f64)),
    }
}

pub(super) fn md_str<'a>(content: &'a Content, path: &Path, key: &str) -> Result<Option<&'a str>> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(v) => v
            .to_string()
            .map(|s| Some(s.as_str()))
            .map_err(|_| bad(path, key, "expected a string")),
    }
}

fn required(v: Option<u64>, path: &Path, key: &str) -> Result<u64> {
    v.ok_or_else(|| bad(path, key, "missing"))
}

/// The `general.architecture` of a parsed header (error if missing).
pub fn architecture(content: &Content, path: &Path) -> Result<String> {
    md_str(content, path, "general.architecture")?
        .map(String::from)
        .ok_or_else(|| bad(path, "general.architecture", "missing"))
}

/// The HF-style config of a GGUF header of a supported architecture (`model_type` is the
/// architecture). `vocab_size` is the embedding's row count; `tie_word_embeddings` is true when
/// there is no `output.weight`. Other architectures give
/// [`ModelError::UnsupportedArchitecture`]. A `rope_freqs.weight` tensor is data, not metadata:
/// [`read_gguf`] reads it into `rope_scaling`; here it only has to be well-formed.
pub fn gguf_config(content: &Content, path: &Path) -> Result<serde_json::Value> {
    let arch = architecture(content, path)?;
    if !SUPPORTED_GGUF_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(ModelError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            model_type: arch,
            supported: SUPPORTED_GGUF_ARCHITECTURES.join(", "),
        });
    }
    let k = |s: &str| format!("{arch}.{s}");
    let hidden = required(
        md_int(content, path, &k("embedding_length"))?,
        path,
        &k("embedding_length"),
    )?;
    let inter = match md_int(content, path, &k("feed_forward_length"))? {
        // A Qwen3-MoE file whose blocks are all sparse may omit the dense width.
        None if arch == "qwen3moe" => md_int(content, path, &k("expert_feed_forward_length"))?,
        v => v,
    };
    let inter = required(inter, path, &k("feed_forward_length"))?;
    let layers = required(
        md_int(content, path, &k("block_count"))?,
        path,
        &k("block_count"),
    )?;
    let heads = required(
        md_int(content, path, &k("attention.head_count"))?,
        path,
        &k("attention.head_count"),
    )?;
    if heads == 0 || hidden == 0 || layers == 0 {
        return Err(bad(
            path,
            "llama.*",
            format!("{arch}.embedding_length, block_count and attention.head_count must be > 0"),
        ));
    }
    let kv_heads = md_int(content, path, &k("attention.head_count_kv"))?.unwrap_or(heads);
    if kv_heads == 0 || heads % kv_heads != 0 {
        return Err(bad(
            path,
            k("attention.head_count_kv"),
            format!("{kv_heads} KV heads do not divide {heads} attention heads"),
        ));
    }
    let head_dim = match md_int(content, path, &k("attention.key_length"))? {
        Some(h) => h,
        None if hidden % heads == 0 => hidden / heads,
        None => {
            return Err(bad(
                path,
                k("attention.head_count"),
                format!("{heads} heads do not divide hidden size {hidden}"),
            ))
        }
    };
    if head_dim % 2 != 0 {
        return Err(bad(
            path,
            k("attention.key_length"),
            format!("head dim {head_dim} is odd"),
        ));
    }
    if let Some(vd) = md_int(content, path, &k("attention.value_length"))? {
        if vd != head_dim {
            return Err(bad(
                path,
                k("attention.value_length"),
                format!("{vd} differs from key_length {head_dim}: not supported"),
            ));
        }
    }
    let rotary = md_int(content, path, &k("rope.dimension_count"))?.unwrap_or(head_dim);
    if arch == "phi3" && (rotary == 0 || rotary > head_dim || !rotary.is_multiple_of(2)) {
        return Err(bad(
            path,
            k("rope.dimension_count"),
            format!("{rotary} rotary dimensions of head dim {head_dim}: must be even, 2 or more"),
        ));
    }
    if let Some(rd) = md_int(content, path, &k("rope.dimension_count"))?.filter(|_| arch != "phi3")
    {
        if rd != head_dim {
            return Err(bad(
                path,
                k("rope.dimension_count"),
                format!("partial rotary embedding ({rd} of {head_dim} dims) is not supported"),
            ));
        }
    }
    let eps = md_float(content, path, &k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
    let theta = md_float(content, path, &k("rope.freq_base"))?.unwrap_or(10_000.0);
    let ctx = md_int(content, path, &k("context_length"))?.unwrap_or(2048);
    let rope_scaling = match md_str(content, path, &k("rope.scaling.type"))? {
        None | Some("none") => serde_json::Value::Null,
        Some("linear") => {
            let f = md_float(content, path, &k("rope.scaling.factor"))?.ok_or_else(|| {
                bad(
                    path,
                    k("rope.scaling.factor"),
                    "missing for linear rope scaling",
                )
            })?;
            serde_json::json!({ "type": "linear", "rope_type": "linear", "factor": f })
        }
        Some(other) => {
            return Err(bad(
                path,
                k("rope.scaling.type"),
                format!("rope scaling `{other}` is not supported"),
            ))
        }
    };
    for name in ROPE_FACTOR_TENSORS {
        if let Some(info) = content.tensor_infos.get(name) {
            if arch != "phi3" {
                return Err(bad(path, name, format!("not part of the {arch} layout")));
            }
            if info.shape.dims() != [rotary as usize / 2] {
                return Err(bad(
                    path,
                    name,
                    format!(
                        "shape {:?}, expected [{}] (one factor per rotary frequency)",
                        info.shape.dims(),
                        rotary / 2
                    ),
                ));
            }
        }
    }
    if let Some(info) = content.tensor_infos.get("rope_freqs.weight") {
        if info.shape.dims() != [head_dim as usize / 2] {
            return Err(bad(
                path,
                "rope_freqs.weight",
                format!(
                    "shape {:?}, expected [{}] (one factor per rotary frequency)",
                    info.shape.dims(),
                    head_dim / 2
                ),
            ));
        }
        if !rope_scaling.is_null() {
            return Err(bad(
                path,
                "rope_freqs.weight",
                format!(
                    "per-frequency factors together with {} are not supported",
                    k("rope.scaling.type")
                ),
            ));
        }
    }
    let embed = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| bad(path, "token_embd.weight", "missing tensor"))?;
    let edims = embed.shape.dims();
    if edims.len() != 2 || edims[1] as u64 != hidden {
        return Err(bad(
            path,
            "token_embd.weight",
            format!("shape {edims:?} does not match [vocab, {hidden}]"),
        ));
    }
    let vocab = edims[0] as u64;
    if let Some(v) = md_int(content, path, &k("vocab_size"))? {
        if v != vocab {
            return Err(bad(
                path,
                k("vocab_size"),
                format!("{v} differs from token_embd.weight's {vocab} rows"),
            ));
        }
    }
    let tied = !content.tensor_infos.contains_key("output.weight");
    let tok_id = |key: &str| -> Result<serde_json::Value> {
        Ok(md_int(content, path, key)?
            .map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null))
    };
    let experts = md_int(content, path, &k("expert_count"))?.unwrap_or(0);
    let model_type = match arch.as_str() {
        "llama" if experts > 0 => "mixtral",
        "qwen3moe" => "qwen3_moe",
        a => a,
    };
    let hf_class = match model_type {
        "qwen2" => "Qwen2ForCausalLM",
        "qwen3" => "Qwen3ForCausalLM",
        "qwen3_moe" => "Qwen3MoeForCausalLM",
        "gemma2" => "Gemma2ForCausalLM",
        "gemma3" => "Gemma3ForCausalLM",
        "phi3" => "Phi3ForCausalLM",
        "mixtral" => "MixtralForCausalLM",
        _ => "LlamaForCausalLM",
    };
    let mut config = serde_json::json!({
        "model_type": model_type,
        "architectures": [hf_class],
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "rope_scaling": rope_scaling,
        "vocab_size": vocab,
        "max_position_embeddings": ctx,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "attention_bias": content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        "mlp_bias": false,
        "bos_token_id": tok_id("tokenizer.ggml.bos_token_id")?,
        "eos_token_id": tok_id("tokenizer.ggml.eos_token_id")?,
        "pad_token_id": tok_id("tokenizer.ggml.padding_token_id")?,
    });
    if arch == "gemma3" || arch == "gemma2" {
        super::gguf_gemma::add_config(content, path, &arch, &mut config)?;
    }
    add_family_config(content, path, &arch, experts, rotary, &mut config)?;
    Ok(config)
}

/// A bool metadata value, `None` when absent.
fn md_bool(content: &Content, path: &Path, key: &str) -> Result<Option<bool>> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(path, key, format!("expected a bool, got {v:?}"))),
    }
}

/// The Phi-3 and mixture-of-experts fields of the HF-style `config` (see the module docs).
fn add_family_config(
    content: &Content,
    path: &Path,
    arch: &str,
    experts: u64,
    rotary: u64,
    config: &mut serde_json::Value,
) -> Result<()> {
    let k = |s: &str| format!("{arch}.{s}");
    let layers = config["num_hidden_layers"].as_u64().unwrap_or(0) as usize;
    let head_dim = config["head_dim"].as_u64().unwrap_or(1).max(1);
    let obj = config
        .as_object_mut()
        .ok_or_else(|| bad(path, "-", "config is not an object"))?;
    if arch == "phi3" {
        if rotary != head_dim {
            obj.insert(
                "partial_rotary_factor".into(),
                (rotary as f64 / head_dim as f64).into(),
            );
        }
        if let Some(w) = md_int(content, path, &k("attention.sliding_window"))?.filter(|&w| w > 0) {
            obj.insert("sliding_window".into(), w.into());
        }
    }
    if experts == 0 {
        if arch == "qwen3moe" {
            return Err(bad(
                path,
                k("expert_count"),
                "missing (a qwen3moe file has experts)",
            ));
        }
        return Ok(());
    }
    if arch != "llama" && arch != "qwen3moe" {
        return Err(bad(
            path,
            k("expert_count"),
            format!("experts are not supported for {arch}"),
        ));
    }
    let used = required(
        md_int(content, path, &k("expert_used_count"))?,
        path,
        &k("expert_used_count"),
    )?;
    obj.insert("num_experts_per_tok".into(), used.into());
    if arch == "llama" {
        obj.insert("num_local_experts".into(), experts.into());
        return Ok(());
    }
    obj.insert("num_experts".into(), experts.into());
    let inner = required(
        md_int(content, path, &k("expert_feed_forward_length"))?,
        path,
        &k("expert_feed_forward_length"),
    )?;
    obj.insert("moe_intermediate_size".into(), inner.into());
    // llama.cpp always renormalises Qwen3-MoE's top-k weights unless the file says otherwise.
    let norm = md_bool(content, path, &k("expert_weights_norm"))?.unwrap_or(true);
    obj.insert("norm_topk_prob".into(), norm.into());
    let dense: Vec<usize> = (0..layers)
        .filter(|l| {
            !content
                .tensor_infos
                .contains_key(&format!("blk.{l}.ffn_gate_inp.weight"))
        })
        .collect();
    obj.insert("mlp_only_layers".into(), dense.into());
    obj.insert("decoder_sparse_step".into(), 1.into());
    Ok(())
}

/// Undoes llama.cpp's Q/K permutation: the rows of each head were reordered from HF's
/// "first half / second half" rotary layout to interleaved pairs. `t` is [rows, in] or [rows].
pub fn unpermute_qk(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) {
        candle_core::bail!("{rows} rows cannot be split into {n_head} heads of even size");
    }
    let half = rows / n_head / 2;
    let mut shape = vec![n_head, half, 2];
    shape.extend_from_slice(&dims[1..]);
    t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// The row order [`unpermute_qk`] produces: entry `i` is the stored row that becomes row `i`.
pub fn unpermute_qk_rows(rows: usize, n_head: usize) -> candle_core::Result<Vec<usize>> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) {
        candle_core::bail!("{rows} rows cannot be split into {n_head} heads of even size");
    }
    let hd = rows / n_head;
    let half = hd / 2;
    // Output row (h, j, i) is stored row (h, i, j).
    Ok((0..rows)
        .map(|r| {
            let (h, rest) = (r / hd, r % hd);
            let (j, i) = (rest / half, rest % half);
            h * hd + i * 2 + j
        })
        .collect())
}

/// Reads a GGUF file of a supported architecture: config, dequantized HF-named tensors (Q/K
/// un-permuted for `llama`) in `dtype` on `device`, tokenizer and name. Errors name the file and the
/// key/tensor at fault; a tokenizer larger than the embedding table is rejected.
pub fn read_gguf(path: &Path, device: &Device, dtype: DType) -> Result<GgufContents> {
    read_gguf_with(path, device, dtype, false)
}

/// [`read_gguf`], keeping the weight matrices (linear layers, embedding, LM head) of a
/// [`quant::SUPPORTED`] block type block-quantized when `keep_quantized` (in
/// [`GgufContents::quantized`]; Q/K rows are reordered block row by block row).
pub fn read_gguf_with(
    path: &Path,
    device: &Device,
    dtype: DType,
    keep_quantized: bool,
) -> Result<GgufContents> {
    let mut content = read_gguf_header(path)?;
    let mut config = gguf_config(&content, path)?;
    let arch = architecture(&content, path)?;
    let tokenizer = TextTokenizer::from_gguf_metadata(&content, path)?;
    // The vocabulary arrays (262k strings, scores and types for Gemma) are not needed again,
    // and building the tokenizer left freed heap behind: give both back before the weights
    // arrive, so the load's peak is the weights plus the tokenizer, not plus its scaffolding.
    content.metadata.retain(|k, _| !k.starts_with("tokenizer."));
    super::release_freed_heap();
    let vocab = config["vocab_size"].as_u64().unwrap_or(0) as usize;
    if tokenizer.vocab_size() > vocab {
        return Err(bad(
            path,
            "tokenizer.ggml.tokens",
            format!(
                "the tokenizer has {} tokens but the model's embedding has only {vocab} rows",
                tokenizer.vocab_size()
            ),
        ));
    }
    let heads = config["num_attention_heads"].as_u64().unwrap_or(1) as usize;
    let kv_heads = config["num_key_value_heads"].as_u64().unwrap_or(1) as usize;
    let layers = config["num_hidden_layers"].as_u64().unwrap_or(0) as usize;

    // Check names and that every tensor lies inside the file before reading any data.
    let file_len = std::fs::metadata(path)
        .map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .len();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in &names {
        let info = &content.tensor_infos[*name];
        let hf = match hf_tensor_name_for(&arch, name) {
            Some(hf) => hf,
            None if name.as_str() == "rope_freqs.weight" => String::new(),
            None if ROPE_FACTOR_TENSORS.contains(&name.as_str()) => String::new(),
            None if expert_tensor(&arch, name).is_some() => {
                let (l, _) = expert_tensor(&arch, name).expect("checked");
                if config.get("num_experts_per_tok").is_none() {
                    return Err(bad(
                        path,
                        name.as_str(),
                        format!("an expert tensor, but {arch}.expert_count is missing or 0"),
                    ));
                }
                format!("model.layers.{l}.")
            }
            None => {
                return Err(bad(
                    path,
                    name.as_str(),
                    format!("tensor not part of the {arch} layout (unsupported variant?)"),
                ))
            }
        };
        if let Some(l) = hf
            .strip_prefix("model.layers.")
            .and_then(|r| r.split('.').next())
            .and_then(|l| l.parse::<usize>().ok())
        {
            if l >= layers {
                return Err(bad(
                    path,
                    name.as_str(),
                    format!("layer {l} but block_count is {layers}"),
                ));
            }
        }
        let elems = info.shape.elem_count();
        let bs = info.ggml_dtype.block_size();
        if elems % bs != 0 {
            return Err(bad(
                path,
                name.as_str(),
                format!(
                    "{elems} elements are not a whole number of {:?} blocks of {bs}",
                    info.ggml_dtype
                ),
            ));
        }
        let size = (elems / bs * info.ggml_dtype.type_size()) as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(size);
        if end > file_len {
            return Err(bad(
                path,
                name.as_str(),
                format!("tensor data ends at byte {end} but the file has {file_len} bytes (truncated file?)"),
            ));
        }
    }
    // Every expected tensor is present with the shape the config implies.
    let hidden = config["hidden_size"].as_u64().unwrap_or(0) as usize;
    let inter = config["intermediate_size"].as_u64().unwrap_or(0) as usize;
    let head_dim = config["head_dim"].as_u64().unwrap_or(0) as usize;
    let n_experts = config
        .get("num_local_experts")
        .or_else(|| config.get("num_experts"))
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize;
    let expert_inner = config
        .get("moe_intermediate_size")
        .and_then(|v| v.as_u64())
        .map_or(inter, |v| v as usize);
    let (q_rows, kv_rows) = (heads * head_dim, kv_heads * head_dim);
    let has = |n: &str| content.tensor_infos.contains_key(n);
    let mut expected: Vec<(String, Vec<usize>)> = vec![("output_norm.weight".into(), vec![hidden])];
    if has("output.weight") {
        expected.push(("output.weight".into(), vec![vocab, hidden]));
    }
    if arch == "phi3" && ROPE_FACTOR_TENSORS.iter().any(|n| has(n)) {
        // One without the other would leave half of LongRoPE undefined.
        for n in ROPE_FACTOR_TENSORS {
            if !has(n) {
                return Err(bad(
                    path,
                    n,
                    "missing tensor (the other LongRoPE factors are present)",
                ));
            }
        }
    }
    for l in 0..layers {
        let mut parts: Vec<(&str, Vec<usize>)> = vec![
            ("attn_output", vec![hidden, q_rows]),
            ("attn_norm", vec![hidden]),
            ("ffn_norm", vec![hidden]),
        ];
        if arch == "phi3" && has(&format!("blk.{l}.attn_qkv.weight")) {
            parts.push(("attn_qkv", vec![q_rows + 2 * kv_rows, hidden]));
        } else {
            parts.push(("attn_q", vec![q_rows, hidden]));
            parts.push(("attn_k", vec![kv_rows, hidden]));
            parts.push(("attn_v", vec![kv_rows, hidden]));
        }
        let sparse = n_experts > 0 && has(&format!("blk.{l}.ffn_gate_inp.weight"));
        if arch == "phi3" {
            parts.push(("ffn_up", vec![2 * inter, hidden]));
            parts.push(("ffn_down", vec![hidden, inter]));
        } else if sparse || (n_experts > 0 && arch == "llama") {
            // Mixtral: every block is sparse; its router is required.
            parts.push(("ffn_gate_inp", vec![n_experts, hidden]));
            parts.push(("ffn_gate_exps", vec![n_experts, expert_inner, hidden]));
            parts.push(("ffn_up_exps", vec![n_experts, expert_inner, hidden]));
            parts.push(("ffn_down_exps", vec![n_experts, hidden, expert_inner]));
        } else {
            parts.push(("ffn_gate", vec![inter, hidden]));
            parts.push(("ffn_up", vec![inter, hidden]));
            parts.push(("ffn_down", vec![hidden, inter]));
        }
        for (part, shape) in parts {
            expected.push((format!("blk.{l}.{part}.weight"), shape));
        }
        if arch == "qwen3" || arch == "qwen3moe" || arch == "gemma3" {
            for part in ["attn_q_norm", "attn_k_norm"] {
                expected.push((format!("blk.{l}.{part}.weight"), vec![head_dim]));
            }
        }
        if arch == "gemma3" || arch == "gemma2" {
            for part in ["post_attention_norm", "post_ffw_norm"] {
                expected.push((format!("blk.{l}.{part}.weight"), vec![hidden]));
            }
        }
        if arch == "qwen2" {
            for (part, rows) in [("attn_q", q_rows), ("attn_k", kv_rows), ("attn_v", kv_rows)] {
                expected.push((format!("blk.{l}.{part}.bias"), vec![rows]));
            }
        }
        for (part, rows) in [
            ("attn_q", q_rows),
            ("attn_k", kv_rows),
            ("attn_v", kv_rows),
            ("attn_output", hidden),
        ] {
            let n = format!("blk.{l}.{part}.bias");
            if content.tensor_infos.contains_key(&n) {
                expected.push((n, vec![rows]));
            }
        }
    }
    for (n, shape) in expected {
        match content.tensor_infos.get(&n) {
            None => return Err(bad(path, n, "missing tensor")),
            Some(info) if info.shape.dims() != shape.as_slice() => {
                return Err(bad(
                    path,
                    n,
                    format!(
                        "shape {:?} does not match {shape:?} implied by the {arch}.* metadata",
                        info.shape.dims()
                    ),
                ))
            }
            Some(_) => {}
        }
    }

    let mut reader = open(path)?;
    let mut tensors = HashMap::with_capacity(names.len());
    let mut quantized = HashMap::new();
    let permuted = arch == "llama";
    let mut rope_factors: HashMap<&str, Vec<f64>> = HashMap::new();
    for name in names {
        let ctx = |e: candle_core::Error| bad(path, name.as_str(), e.to_string());
        // A weight matrix held quantized is read straight into its blocks (no second copy).
        let keep_hf = content
            .tensor_infos
            .get(name)
            .filter(|i| keep_quantized && quant::supported(i.ggml_dtype))
            .and_then(|i| {
                let (rows, cols) = i.shape.dims2().ok()?;
                cols.is_multiple_of(i.ggml_dtype.block_size())
                    .then_some((i, rows, cols))
            })
            .filter(|_| expert_tensor(&arch, name).is_none())
            .and_then(|i| {
                let hf = hf_tensor_name_for(&arch, name).filter(|n| n.ends_with(".weight"))?;
                Some((i, hf))
            });
        if let Some(((info, rows, cols), hf)) = keep_hf {
            let qctx = |e: ModelError| bad(path, name.as_str(), e.to_string());
            let offset = content.tensor_data_offset.saturating_add(info.offset);
            let mut m = QMatrix::read_from(&mut reader, offset, info.ggml_dtype, rows, cols)
                .map_err(qctx)?;
            // Held quantized, the tensor never passes the dense NaN scan: its block scales
            // are checked instead (the values are finite exactly when the scales are).
            if let Some(b) = m.first_nonfinite_block().map_err(qctx)? {
                return Err(bad(
                    path,
                    hf.as_str(),
                    format!(
                        "contains NaN or infinite values (block {b} of `{name}` has a NaN or \
                         infinite scale; a corrupt or badly converted checkpoint)"
                    ),
                ));
            }
            if permuted && hf.contains(".q_proj.") {
                m = m
                    .permute_rows(&unpermute_qk_rows(m.dims().0, heads).map_err(ctx)?)
                    .map_err(qctx)?;
            } else if permuted && hf.contains(".k_proj.") {
                m = m
                    .permute_rows(&unpermute_qk_rows(m.dims().0, kv_heads).map_err(ctx)?)
                    .map_err(qctx)?;
            }
            quantized.insert(hf, m);
            continue;
        }
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(ctx)?;
        if let Some((l, part)) = expert_tensor(&arch, name) {
            // `[experts, rows, cols]`: one matrix per expert, its bytes a contiguous slice.
            let (e, rows, cols) = q.shape().dims3().map_err(ctx)?;
            let bs = q.dtype().block_size();
            if keep_quantized && quant::supported(q.dtype()) && cols.is_multiple_of(bs) {
                let qctx = |e: ModelError| bad(path, name.as_str(), e.to_string());
                let data = q.data().map_err(ctx)?;
                let per = data.len() / e.max(1);
                for ei in 0..e {
                    let m =
                        QMatrix::from_bytes(q.dtype(), &data[ei * per..(ei + 1) * per], rows, cols)
                            .map_err(qctx)?;
                    quantized.insert(expert_hf_name(&arch, l, ei, part), m);
                }
            } else {
                let t = q.dequantize(&Device::Cpu).map_err(ctx)?;
                for ei in 0..e {
                    let one = t
                        .get(ei)
                        .and_then(|x| x.to_dtype(dtype))
                        .and_then(|x| x.to_device(device))
                        .map_err(ctx)?;
                    tensors.insert(expert_hf_name(&arch, l, ei, part), one);
                }
            }
            continue;
        }
        let mut t = q.dequantize(&Device::Cpu).map_err(ctx)?;
        let Some(hf) = hf_tensor_name_for(&arch, name) else {
            // rope_freqs.weight or Phi-3's rope_factors_{long,short}.weight (the only other
            // names past the check above): per-frequency divisors of the rotary frequencies.
            let factors: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).map_err(ctx)?;
            if let Some(f) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
                return Err(bad(
                    path,
                    name.as_str(),
                    format!("factor {f} is not a positive number"),
                ));
            }
            if let Some(n) = ROPE_FACTOR_TENSORS.iter().find(|n| **n == name.as_str()) {
                rope_factors.insert(*n, factors.iter().map(|&f| f as f64).collect());
                continue;
            }
            config["rope_scaling"] = serde_json::json!({
                "rope_type": "rope_freqs",
                "factors": factors.iter().map(|&f| f as f64).collect::<Vec<f64>>(),
            });
            continue;
        };
        if permuted && hf.contains(".q_proj.") {
            t = unpermute_qk(&t, heads).map_err(ctx)?;
        } else if permuted && hf.contains(".k_proj.") {
            t = unpermute_qk(&t, kv_heads).map_err(ctx)?;
        }
        let t = t
            .to_dtype(dtype)
            .map_err(ctx)?
            .to_device(device)
            .map_err(ctx)?;
        tensors.insert(hf, t);
    }
    if let (Some(long), Some(short)) = (
        rope_factors.remove("rope_factors_long.weight"),
        rope_factors.remove("rope_factors_short.weight"),
    ) {
        // Phi-3's LongRoPE as llama.cpp's converter stores it; the attention factor, when
        // absent, is derived from the two context lengths by the config parser.
        let orig_key = format!("{arch}.rope.scaling.original_context_length");
        let orig = required(md_int(&content, path, &orig_key)?, path, &orig_key)?;
        let mut scaling = serde_json::json!({
            "rope_type": "longrope",
            "long_factor": long,
            "short_factor": short,
            "original_max_position_embeddings": orig,
        });
        if let Some(a) = md_float(&content, path, &format!("{arch}.rope.scaling.attn_factor"))? {
            scaling["attention_factor"] = a.into();
        }
        config["rope_scaling"] = scaling;
    }
    let name = md_str(&content, path, "general.name")?
        .map(String::from)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    Ok(GgufContents {
        config,
        tensors,
        quantized,
        tokenizer,
        name,
    })
}

/// Dequantizes one tensor by its GGUF name, as stored (no renaming or un-permutation), as F32 on
/// the CPU. For inspection and tests.
pub fn dequantize_raw(path: &Path, name: &str) -> Result<Tensor> {
    let content = read_gguf_header(path)?;
    let mut reader = open(path)?;
    let ctx = |e: candle_core::Error| bad(path, name, e.to_string());
    let q = content
        .tensor(&mut reader, name, &Device::Cpu)
        .map_err(ctx)?;
    q.dequantize(&Device::Cpu).map_err(ctx)
}

/// The ggml type name of each tensor (`Q4_1`, `F32`, ...), for `info`-style displays.
pub fn tensor_types(content: &Content) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = content
        .tensor_infos
        .iter()
        .map(|(n, i)| (n.clone(), format!("{:?}", i.ggml_dtype)))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_tensor_name("blk.12.attn_q.weight").unwrap(),
            "model.layers.12.self_attn.q_proj.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(hf_tensor_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(
            hf_tensor_name("blk.2.attn_k_norm.weight").unwrap(),
            "model.layers.2.self_attn.k_norm.weight"
        );
        assert!(hf_tensor_name("blk.0.ffn_gate_exps.weight").is_none());
        assert!(hf_tensor_name("rope_freqs.weight").is_none());
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // llama.cpp's convert script: w.reshape(h, 2, rows/h/2, in).swapaxes(1, 2).reshape(rows, in).
        let (h, hd, inp) = (3usize, 4usize, 2usize);
        let rows = h * hd;
        let hf: Vec<f32> = (0..rows * inp).map(|x| x as f32).collect();
        let mut gguf = vec![0f32; rows * inp];
        for head in 0..h {
            for i in 0..hd / 2 {
                for j in 0..2 {
                    // permuted row (head, i, j) comes from HF row (head, j, i)
                    let dst = head * hd + i * 2 + j;
                    let src = head * hd + j * (hd / 2) + i;
                    for c in 0..inp {
                        gguf[dst * inp + c] = hf[src * inp + c];
                    }
                }
            }
        }
        let t = Tensor::from_vec(gguf, (rows, inp), &Device::Cpu).unwrap();
        let back = unpermute_qk(&t, h)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(back, hf);
    }
}
