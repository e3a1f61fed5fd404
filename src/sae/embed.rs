//! Text embedders for feature discovery and the on-disk embedding cache. An [`Embedder`] turns
//! texts into fixed-width vectors; the cache keys them by a hash of (dataset content, embedder
//! id, options) so re-runs skip the model.
use super::error::SaeError;
use crate::data::batching::{BatchBudget, BatchPlan};
use crate::jobs::{Progress, ProgressSink};
use crate::model::arch::bert::BertEncoder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Something that embeds texts into `dim()`-wide vectors.
pub trait Embedder {
    /// A stable identifier (model path/name, layer, pooling) used in cache keys and reports.
    fn id(&self) -> String;
    /// Output width.
    fn dim(&self) -> usize;
    /// Embeds `texts` in order; reports progress and stops with an error when cancelled.
    fn embed(&self, texts: &[&str], sink: &dyn ProgressSink) -> Result<Vec<Vec<f32>>, SaeError>;
}

/// The MiniLM (BERT) sentence embedder: unit-norm mean-pooled sentence embeddings.
pub struct MiniLmEmbedder {
    enc: BertEncoder,
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl MiniLmEmbedder {
    /// Loads a sentence-transformers BERT folder on the CPU.
    pub fn load(dir: &Path) -> Result<Self, SaeError> {
        Ok(Self {
            enc: BertEncoder::load(dir, &candle_core::Device::Cpu)?,
            batch_size: 32,
        })
    }
}

impl Embedder for MiniLmEmbedder {
    fn id(&self) -> String {
        format!("minilm:{}", self.enc.dir().display())
    }
    fn dim(&self) -> usize {
        self.enc.dim()
    }
    fn embed(&self, texts: &[&str], sink: &dyn ProgressSink) -> Result<Vec<Vec<f32>>, SaeError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // Sorted by token length over the whole input (not only within each progress chunk),
        // so every batch pads little; rows go back to input order.
        let lens = self.enc.token_lens(texts)?;
        let plan = BatchPlan::by_length(&lens, BatchBudget::rows(texts.len()));
        let order = plan.batches().first().cloned().unwrap_or_default();
        let sorted: Vec<&str> = order.iter().map(|&i| texts[i]).collect();
        let rows = embed_in_chunks(&sorted, self.batch_size * 4, sink, |chunk| {
            Ok(self.enc.embed(chunk, self.batch_size)?)
        })?;
        plan.scatter([rows])
            .map_err(|e| SaeError::Data(format!("embedding: {e}")))
    }
}

/// Runs `f` over chunks of `texts`, reporting progress and checking for cancellation.
pub fn embed_in_chunks(
    texts: &[&str],
    chunk: usize,
    sink: &dyn ProgressSink,
    mut f: impl FnMut(&[&str]) -> Result<Vec<Vec<f32>>, SaeError>,
) -> Result<Vec<Vec<f32>>, SaeError> {
    let mut out = Vec::with_capacity(texts.len());
    for c in texts.chunks(chunk.max(1)) {
        if sink.is_cancelled() {
            return Err(SaeError::Data("cancelled while embedding".into()));
        }
        out.extend(f(c)?);
        sink.report(Progress::new(
            "embedding",
            out.len() as u64,
            Some(texts.len() as u64),
        ));
    }
    Ok(out)
}

/// 64-bit FNV-1a hash (stable across runs and platforms; used for cache keys only).
pub use crate::numeric::hash::fnv1a;

/// The cache file for a key: `<steerlab home>/cache/embeddings/<16 hex digits>.safetensors`.
pub fn cache_path(key: u64) -> PathBuf {
    crate::paths::steerlab_home()
        .join("cache")
        .join("embeddings")
        .join(format!("{key:016x}.safetensors"))
}

/// The cache key of (dataset content hash, embedder id, options string).
pub fn cache_key(data_hash: u64, embedder_id: &str, options: &str) -> u64 {
    let mut bytes = data_hash.to_le_bytes().to_vec();
    bytes.extend_from_slice(embedder_id.as_bytes());
    bytes.push(0x1f);
    bytes.extend_from_slice(options.as_bytes());
    fnv1a(&bytes)
}

/// Reads cached A/B embeddings (`[n, d]` each); None when absent or of another shape.
pub fn read_cache(path: &Path, n: usize, d: usize) -> Option<(Vec<f32>, Vec<f32>)> {
    let bytes = std::fs::read(path).ok()?;
    let st = safetensors::SafeTensors::deserialize(&bytes).ok()?;
    let get = |name: &str| -> Option<Vec<f32>> {
        let t = st.tensor(name).ok()?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape() != [n, d] {
            return None;
        }
        Some(
            t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    };
    Some((get("a")?, get("b")?))
}

/// Writes A/B embeddings to the cache atomically.
pub fn write_cache(path: &Path, a: &[f32], b: &[f32], n: usize, d: usize) -> Result<(), SaeError> {
    let bytes = f32_safetensors(&[("a", a, vec![n, d]), ("b", b, vec![n, d])], None)
        .map_err(|e| SaeError::file(path, e))?;
    crate::report::write_atomic(path, &bytes).map_err(|e| SaeError::file(path, e))
}

/// Serialises named F32 tensors (row-major data, shape) with optional metadata.
pub fn f32_safetensors(
    tensors: &[(&str, &[f32], Vec<usize>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, d, _)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, _, shape), b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (name.to_string(), v))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, metadata)
}

/// Where an `llm` embedder reads: the model's name and the block whose output is pooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmSite {
    /// Model name as the embedder recorded it.
    pub model: String,
    /// 0-based block index (`blocks.{layer}.hook_resid_post`).
    pub layer: usize,
}

/// Parses an embedder id written by [`super::llm::LlmEmbedder`]
/// (`llm:<model name>:resid_post:<layer>`); None for other embedders (MiniLM, test embedders).
pub fn parse_llm_embedder(id: &str) -> Option<LlmSite> {
    let rest = id.strip_prefix("llm:")?;
    let mut parts = rest.rsplitn(3, ':');
    let layer = parts.next()?.parse().ok()?;
    if parts.next()? != "resid_post" {
        return None;
    }
    Some(LlmSite {
        model: parts.next()?.to_string(),
        layer,
    })
}
