//! The loaded LLM as an embedder (mean-pooled residual stream after a chosen block, padding
//! and the first token masked) and as the text generator that describes and judges features.
use super::embed::Embedder;
use super::error::SaeError;
use super::interpret::TextGenerator;
use crate::data::batching::{BatchBudget, BatchPlan};
use crate::data::Message;
use crate::jobs::{Progress, ProgressSink};
use crate::model::{Batch, GenerateOptions, HookPoint, Hooks, Model, TextTokenizer};
use candle_core::DType;
use std::path::Path;

/// Loads the tokenizer that belongs to a model file or folder (GGUF metadata or
/// `tokenizer.json`).
pub fn load_tokenizer(path: &Path) -> Result<TextTokenizer, SaeError> {
    if path.is_dir() {
        Ok(TextTokenizer::from_hf_dir(path)?)
    } else {
        let content = crate::model::load::gguf::read_gguf_header(path)?;
        Ok(TextTokenizer::from_gguf_metadata(&content, path)?)
    }
}

/// Mean-pooled hidden state of an LLM at `blocks.{layer}.hook_resid_post`, over each text's
/// tokens except the first (the attention sink) and the padding.
pub struct LlmEmbedder<'a> {
    model: &'a Model,
    tok: &'a TextTokenizer,
    layer: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Longest input in tokens (longer texts keep their first tokens); at most 512 and the
    /// model's context.
    pub max_tokens: usize,
}

impl<'a> LlmEmbedder<'a> {
    /// An embedder reading the residual stream after block `layer` (0-based).
    pub fn new(model: &'a Model, tok: &'a TextTokenizer, layer: usize) -> Result<Self, SaeError> {
        if layer >= model.n_layers() {
            return Err(SaeError::Config(format!(
                "layer {layer} does not exist: the model has {} layers (0..{})",
                model.n_layers(),
                model.n_layers() - 1
            )));
        }
        Ok(Self {
            model,
            tok,
            layer,
            batch_size: 8,
            max_tokens: 512.min(model.config().max_position_embeddings.max(1)),
        })
    }

    /// The block whose output is pooled.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// The same embedder reading another block's output (for [`Self::embed_layers`]'s cache
    /// keys and reports).
    pub fn at_layer(&self, layer: usize) -> Result<LlmEmbedder<'a>, SaeError> {
        let mut e = LlmEmbedder::new(self.model, self.tok, layer)?;
        e.batch_size = self.batch_size;
        e.max_tokens = self.max_tokens;
        Ok(e)
    }

    /// Embeds `texts` at each of `layers` with one forward pass per batch (up to the deepest
    /// layer; the others are captured on the way). Returns `[layer][text][hidden]` in the order
    /// of `layers`; each layer's rows equal what [`Embedder::embed`] gives at that layer.
    pub fn embed_layers(
        &self,
        layers: &[usize],
        texts: &[&str],
        sink: &dyn ProgressSink,
    ) -> Result<Vec<Vec<Vec<f32>>>, SaeError> {
        let n_layers = self.model.n_layers();
        if layers.is_empty() {
            return Err(SaeError::Config("no layers to embed".into()));
        }
        if let Some(&l) = layers.iter().find(|&&l| l >= n_layers) {
            return Err(SaeError::Config(format!(
                "layer {l} does not exist: the model has {n_layers} layers (0..{})",
                n_layers - 1
            )));
        }
        let seqs = self.token_ids(texts)?;
        // Texts of similar token length share a batch (little padding); each text's pooled
        // state does not depend on its batch-mates. Results go back to input order.
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let plan = BatchPlan::by_length(&lens, BatchBudget::rows(self.batch_size));
        let mut per_batch = Vec::with_capacity(plan.len());
        let mut done = 0usize;
        for idx in plan.batches() {
            if sink.is_cancelled() {
                return Err(SaeError::Data("cancelled while embedding".into()));
            }
            let chunk: Vec<Vec<u32>> = idx.iter().map(|&i| seqs[i].clone()).collect();
            let per_layer = self.embed_batch(layers, &chunk)?;
            // one row per text: its embeddings at every requested layer
            per_batch.push(
                (0..idx.len())
                    .map(|r| per_layer.iter().map(|l| l[r].clone()).collect::<Vec<_>>())
                    .collect::<Vec<_>>(),
            );
            done += idx.len();
            sink.report(Progress::new(
                "embedding",
                done as u64,
                Some(texts.len() as u64),
            ));
        }
        let rows = plan
            .scatter(per_batch)
            .map_err(|e| SaeError::Data(format!("embedding: {e}")))?;
        let mut out = vec![Vec::with_capacity(texts.len()); layers.len()];
        for row in rows {
            for (layer_out, e) in out.iter_mut().zip(row) {
                layer_out.push(e);
            }
        }
        Ok(out)
    }

    /// Token ids of each text as embedded: BOS added, truncated to `max_tokens`, never empty.
    fn token_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, SaeError> {
        let pad = self.pad_id();
        texts
            .iter()
            .map(|t| {
                let mut ids = self.tok.encode(t, true)?;
                ids.truncate(self.max_tokens);
                if ids.is_empty() {
                    ids.push(pad);
                }
                Ok(ids)
            })
            .collect()
    }

    fn pad_id(&self) -> u32 {
        self.tok
            .pad_token_id()
            .or_else(|| self.tok.eos_token_ids().first().copied())
            .unwrap_or(0)
    }

    /// One batch at several layers: `[layer][text][hidden]`.
    fn embed_batch(
        &self,
        layers: &[usize],
        seqs: &[Vec<u32>],
    ) -> Result<Vec<Vec<Vec<f32>>>, SaeError> {
        let batch = Batch::from_sequences(seqs, self.pad_id(), self.model.device())?;
        let deepest = *layers.iter().max().expect("checked non-empty");
        let mut hooks = Hooks::new();
        for &l in layers {
            if l != deepest {
                hooks.capture(HookPoint::ResidPost(l));
            }
        }
        let last = self.model.forward_to(deepest + 1, &batch, &mut hooks)?;
        // Pool over the real tokens except the first: the first position carries the model's
        // attention-sink "massive activation" (hundreds of times the other positions' norm on
        // SmolLM2), whose 1/length share would otherwise dominate every pooled difference.
        let lens = batch.lens();
        let t = last.dim(1)?;
        let mut m = vec![0.0f32; lens.len() * t];
        for (r, &len) in lens.iter().enumerate() {
            let from = usize::from(len >= 2);
            for p in from..len.min(t) {
                m[r * t + p] = 1.0;
            }
        }
        let mask = candle_core::Tensor::from_vec(m, (lens.len(), t, 1), last.device())?;
        let count = mask.sum(1)?.clamp(1.0, f64::MAX)?;
        let mut out = Vec::with_capacity(layers.len());
        for &l in layers {
            let resid = if l == deepest {
                last.clone()
            } else {
                hooks
                    .captured(HookPoint::ResidPost(l))
                    .cloned()
                    .ok_or_else(|| SaeError::Data(format!("layer {l} was not captured")))?
            };
            let summed = resid.to_dtype(DType::F32)?.broadcast_mul(&mask)?.sum(1)?;
            out.push(summed.broadcast_div(&count)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }
}

impl Embedder for LlmEmbedder<'_> {
    fn id(&self) -> String {
        format!("llm:{}:resid_post:{}", self.model.name(), self.layer)
    }
    fn dim(&self) -> usize {
        self.model.hidden_size()
    }
    fn embed(&self, texts: &[&str], sink: &dyn ProgressSink) -> Result<Vec<Vec<f32>>, SaeError> {
        let mut per_layer = self.embed_layers(&[self.layer], texts, sink)?;
        Ok(per_layer.pop().expect("one layer requested"))
    }
}

/// The LLM as a greedy chat completer for feature descriptions and judgements.
pub struct LlmGenerator<'a> {
    model: &'a Model,
    tok: &'a TextTokenizer,
}

impl<'a> LlmGenerator<'a> {
    /// A generator over a loaded model and its tokenizer.
    pub fn new(model: &'a Model, tok: &'a TextTokenizer) -> Self {
        Self { model, tok }
    }
}

impl TextGenerator for LlmGenerator<'_> {
    fn complete(&self, user: &str, max_tokens: usize) -> Result<String, SaeError> {
        let text = if self.tok.has_chat_template() {
            self.tok
                .apply_chat_template(&[Message::new("user", user)], true)?
        } else {
            format!("{user}\n")
        };
        let ids = self.tok.encode(&text, !self.tok.has_chat_template())?;
        let opts = GenerateOptions {
            max_new_tokens: max_tokens,
            ..Default::default()
        };
        let out = self
            .model
            .generate(&ids, &opts, &Hooks::new(), &mut |_, _| true)?;
        Ok(self.tok.decode(&out, true)?)
    }
}
