//! BERT sentence encoder (all-MiniLM-L6-v2 and other sentence-transformers BERT folders):
//! candle-transformers' `bert` model (it matched steerlab's own encoder exactly, see
//! docs/design/model-reach.md), then mean pooling over real (non-padding) tokens and L2
//! normalisation, as sentence-transformers does.
//!
//! Inference only: no hooks, no gradients, no steering. Padding from `tokenizer.json` is
//! replaced by batch-longest padding masked out of attention and pooling.
use crate::model::{ModelError, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert as ct;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The fields of a BERT `config.json` this encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Longest position the model has embeddings for.
    pub max_position_embeddings: usize,
    /// Token type vocabulary (2 for BERT).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Activation (`gelu` is the exact erf GELU).
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

/// A loaded BERT sentence encoder with its tokenizer.
pub struct BertEncoder {
    cfg: BertConfig,
    bert: ct::BertModel,
    tokenizer: Tokenizer,
    max_len: usize,
    device: Device,
    dir: PathBuf,
}

fn bad(path: &Path, field: &str, message: impl std::fmt::Display) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

fn read(path: &Path, what: &str) -> Result<String> {
    if !path.exists() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl BertEncoder {
    /// Loads a sentence-transformers BERT folder (`config.json`, `model.safetensors`,
    /// `tokenizer.json`, optional `sentence_bert_config.json` giving `max_seq_length`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: BertConfig = serde_json::from_str(&read(&cfg_path, "BERT config")?)
            .map_err(|e| bad(&cfg_path, "-", e))?;
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(bad(
                &cfg_path,
                "num_attention_heads",
                "does not divide hidden_size",
            ));
        }
        if cfg.hidden_act != "gelu" {
            return Err(bad(
                &cfg_path,
                "hidden_act",
                format!("`{}` is not supported (gelu only)", cfg.hidden_act),
            ));
        }
        let mut max_len = cfg.max_position_embeddings;
        let st_cfg = dir.join("sentence_bert_config.json");
        if st_cfg.exists() {
            let v: serde_json::Value =
                serde_json::from_str(&read(&st_cfg, "sentence-transformers config")?)
                    .map_err(|e| bad(&st_cfg, "-", e))?;
            if let Some(m) = v.get("max_seq_length").and_then(|m| m.as_u64()) {
                max_len = max_len.min(m as usize);
            }
        }
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.exists() {
            return Err(ModelError::MissingFile {
                path: tok_path,
                what: "tokenizer".into(),
            });
        }
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| bad(&tok_path, "-", e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id: 0,
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| bad(&tok_path, "truncation", e))?;

        let w_path = dir.join("model.safetensors");
        if !w_path.exists() {
            return Err(ModelError::MissingFile {
                path: w_path,
                what: "BERT weights".into(),
            });
        }
        let tensors =
            candle_core::safetensors::load(&w_path, device).map_err(|e| bad(&w_path, "-", e))?;
        // Some exports prefix every tensor with `bert.`.
        let prefixed = tensors.keys().any(|k| k.starts_with("bert."));
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let vb = if prefixed { vb.pp("bert") } else { vb };
        let ct_cfg = ct::Config {
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            num_hidden_layers: cfg.num_hidden_layers,
            num_attention_heads: cfg.num_attention_heads,
            intermediate_size: cfg.intermediate_size,
            hidden_act: ct::HiddenAct::Gelu,
            hidden_dropout_prob: 0.0,
            max_position_embeddings: cfg.max_position_embeddings,
            type_vocab_size: cfg.type_vocab_size,
            initializer_range: 0.02,
            layer_norm_eps: cfg.layer_norm_eps,
            pad_token_id: 0,
            position_embedding_type: ct::PositionEmbeddingType::Absolute,
            use_cache: false,
            classifier_dropout: None,
            model_type: None,
        };
        let bert = ct::BertModel::load(vb, &ct_cfg).map_err(|e| bad(&w_path, "tensor", e))?;
        Ok(Self {
            cfg,
            bert,
            tokenizer,
            max_len,
            device: device.clone(),
            dir: dir.to_path_buf(),
        })
    }

    /// Output width (384 for MiniLM).
    pub fn dim(&self) -> usize {
        self.cfg.hidden_size
    }

    /// Longest input in tokens; longer texts are truncated.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The folder the encoder was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embeds texts in batches of `batch_size`: unit-norm mean-pooled sentence embeddings,
    /// one row per text, in input order. Texts of similar token length share a batch.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        use crate::data::batching::{BatchBudget, BatchPlan};
        let lens = self.token_lens(texts)?;
        let plan = BatchPlan::by_length(&lens, BatchBudget::rows(batch_size));
        let mut per_batch = Vec::with_capacity(plan.len());
        for idx in plan.batches() {
            let batch: Vec<&str> = idx.iter().map(|&i| texts[i]).collect();
            per_batch.push(self.embed_batch(&batch)?);
        }
        plan.scatter(per_batch)
            .map_err(|e| ModelError::InvalidInput(format!("embedding: {e}")))
    }

    /// Number of tokens of each text as embedded (special tokens included, truncated to
    /// [`Self::max_len`]; the tokenizer's batch padding not counted).
    pub fn token_lens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        Ok(self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|&&m| m != 0).count())
            .collect())
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let b = enc.len();
        let t = enc
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = Vec::with_capacity(b * t);
        let mut types = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        for e in &enc {
            let n = e.get_ids().len();
            ids.extend(e.get_ids().iter().copied());
            ids.extend(std::iter::repeat_n(0u32, t - n));
            types.extend(e.get_type_ids().iter().copied());
            types.extend(std::iter::repeat_n(0u32, t - n));
            mask.extend(e.get_attention_mask().iter().map(|&m| m as f32));
            mask.extend(std::iter::repeat_n(0f32, t - n));
        }
        let dev = &self.device;
        let ids = Tensor::from_vec(ids, (b, t), dev)?;
        let types = Tensor::from_vec(types, (b, t), dev)?;
        let mask = Tensor::from_vec(mask, (b, t), dev)?;
        let x = self.bert.forward(&ids, &types, Some(&mask))?;
        // Mean over real tokens, then L2 normalise.
        let m = mask.unsqueeze(2)?;
        let summed = x.broadcast_mul(&m)?.sum(1)?;
        let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&count)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}
