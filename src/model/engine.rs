//! The hooked [`Model`]: loading (HF folders; GGUF through `gguf.rs`), batched forward passes
//! with interventions, partial forwards for cached training, and model metadata.
//! Generation lives in `generate.rs`. Must not contain steering or training logic.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::block::{check_dtype, Block, LayerCache, Step, Weights};
use super::config::{Architecture, ModelConfig};
use super::fused::GradOps;
use super::hooks::{HookPoint, Hooks, PosCtx};
use super::ops::{attention_mask, rope_tables, Linear, OpMode, RmsNorm};
use super::tokenizer::TextTokenizer;
use super::{gguf, llama, qwen2, qwen3, ModelError, Result};

/// Where and in which precision to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Device the weights live on.
    pub device: Device,
    /// Storage and compute dtype (norms and softmax always run in f32).
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

impl LoadOptions {
    /// Parses user strings such as `("cuda:1", "bf16")`; see [`parse_device`] and [`parse_dtype`].
    pub fn parse(device: &str, dtype: &str) -> Result<Self> {
        Ok(Self {
            device: parse_device(device)?,
            dtype: parse_dtype(dtype)?,
        })
    }
}

/// Parses `cpu`, `cuda` or `cuda:N`. CUDA needs a build with the `cuda` cargo feature.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match s.as_str() {
        "cuda" | "gpu" => 0,
        _ => match s.strip_prefix("cuda:").map(|n| n.parse::<usize>()) {
            Some(Ok(n)) => n,
            _ => {
                return Err(ModelError::InvalidInput(format!(
                    "unknown device `{s}` (use cpu, cuda or cuda:N)"
                )))
            }
        },
    };
    cuda_device(ordinal)
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    let dev = Device::new_cuda(ordinal)
        .map_err(|e| ModelError::InvalidInput(format!("cannot open CUDA device {ordinal}: {e}")))?;
    if std::env::var("STEERLAB_CUDA_POOL_RELEASE").map_or(true, |v| v == "0") {
        keep_pool_memory(ordinal);
    }
    Ok(dev)
}

/// Keeps freed GPU memory in the device's stream-ordered pool across synchronisations (CUDA's
/// default release threshold of 0 hands it back to the driver at every synchronisation, so each
/// training step maps its working memory again). Best effort: a failure only costs speed.
/// `STEERLAB_CUDA_POOL_RELEASE=1` keeps CUDA's default.
#[cfg(feature = "cuda")]
fn keep_pool_memory(ordinal: usize) {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let Ok(ordinal) = i32::try_from(ordinal) else {
        return;
    };
    // SAFETY: plain driver calls on the device just opened (so the driver is initialised);
    // `pool` and `threshold` outlive the calls that write or read them.
    unsafe {
        let mut dev: sys::CUdevice = 0;
        if sys::cuDeviceGet(&mut dev, ordinal) != sys::CUresult::CUDA_SUCCESS {
            return;
        }
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        if sys::cuDeviceGetDefaultMemPool(&mut pool, dev) != sys::CUresult::CUDA_SUCCESS {
            return;
        }
        let mut threshold = u64::MAX;
        let _ = sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        );
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Err(ModelError::InvalidInput(format!(
        "cuda:{ordinal} requested, but this steerlab was built without CUDA support \
         (rebuild with `--features cuda`)"
    )))
}

/// Parses `f32`, `bf16` or `f16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" | "half" => Ok(DType::F16),
        other => Err(ModelError::InvalidInput(format!(
            "unknown dtype `{other}` (use f32, bf16 or f16)"
        ))),
    }
}

/// A short name for a device (`cpu`, `cuda:0`, `metal:0`).
pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// A short name for a dtype (`f32`, `bf16`, ...).
pub fn dtype_name(d: DType) -> String {
    d.as_str().to_string()
}

/// A description of a loaded model (serialisable for `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// Architecture family (`llama`, `mistral`, `qwen2`, `qwen3`).
    pub architecture: String,
    /// Display name (folder or file stem).
    pub name: String,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Rows of the embedding table.
    pub vocab_size: usize,
    /// Number of parameters (tied embeddings counted once).
    pub n_params: usize,
    /// Device (`cpu`, `cuda:0`).
    pub device: String,
    /// Dtype (`f32`, `bf16`, `f16`).
    pub dtype: String,
}

/// Token ids of several sequences, right-padded to a common length, with an attention mask.
#[derive(Debug, Clone)]
pub struct Batch {
    ids: Tensor,
    mask: Tensor,
    lens: Vec<usize>,
    prompt_lens: Option<Vec<usize>>,
    max_id: u32,
}

impl Batch {
    /// Builds a batch from sequences (each non-empty), right-padding with `pad_id`.
    pub fn from_sequences(seqs: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Batch> {
        if seqs.is_empty() {
            return Err(ModelError::InvalidInput("empty batch: no sequences".into()));
        }
        if let Some(i) = seqs.iter().position(|s| s.is_empty()) {
            return Err(ModelError::InvalidInput(format!(
                "sequence {i} of the batch is empty"
            )));
        }
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let b = seqs.len();
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad_id, t - s.len()));
            mask.extend(std::iter::repeat_n(1f32, s.len()));
            mask.extend(std::iter::repeat_n(0f32, t - s.len()));
        }
        let max_id = seqs
            .iter()
            .flat_map(|s| s.iter().copied())
            .max()
            .unwrap_or(0);
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t), device)?,
            lens: seqs.iter().map(|s| s.len()).collect(),
            prompt_lens: None,
            max_id,
        })
    }

    /// Marks the first `lens[b]` tokens of sequence `b` as prompt (for `Positions::PromptOnly`
    /// and `GeneratedOnly`).
    pub fn with_prompt_lens(mut self, lens: Vec<usize>) -> Result<Batch> {
        if lens.len() != self.lens.len() {
            return Err(ModelError::InvalidInput(format!(
                "{} prompt lengths for a batch of {} sequences",
                lens.len(),
                self.lens.len()
            )));
        }
        self.prompt_lens = Some(lens);
        Ok(self)
    }

    /// Token ids `[B, T]` (u32).
    pub fn ids(&self) -> &Tensor {
        &self.ids
    }

    /// Attention mask `[B, T]` (f32: 1 = token, 0 = padding).
    pub fn attention_mask(&self) -> &Tensor {
        &self.mask
    }

    /// Unpadded length of each sequence.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// Prompt lengths, if set.
    pub fn prompt_lens(&self) -> Option<&[usize]> {
        self.prompt_lens.as_deref()
    }

    /// Number of sequences.
    pub fn batch_size(&self) -> usize {
        self.lens.len()
    }

    /// Padded length.
    pub fn seq_len(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }

    fn key_valid(&self) -> Option<Vec<Vec<bool>>> {
        let t = self.seq_len();
        if self.lens.iter().all(|&l| l == t) {
            return None;
        }
        Some(
            self.lens
                .iter()
                .map(|&l| (0..t).map(|i| i < l).collect())
                .collect(),
        )
    }

    fn pos_ctx(&self) -> PosCtx {
        PosCtx {
            batch: self.batch_size(),
            len: self.seq_len(),
            offset: 0,
            prompt_lens: self.prompt_lens.clone(),
        }
    }
}

/// A loaded decoder-only transformer whose residual stream can be read and written.
pub struct Model {
    config: ModelConfig,
    config_json: serde_json::Value,
    name: String,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    inv_freq: Vec<f64>,
    device: Device,
    dtype: DType,
    n_params: usize,
    tokenizer: Option<TextTokenizer>,
    grad_ops: GradOps,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info()).finish()
    }
}

/// What `build` needs besides the weights.
struct Parts {
    config: ModelConfig,
    config_json: serde_json::Value,
    name: String,
    /// The tokenizer and the file it came from (for error messages).
    tokenizer: Option<(TextTokenizer, PathBuf)>,
}

fn read_json(path: &Path, what: &str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
                what: what.to_string(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadFile {
        path: path.to_path_buf(),
        field: format!("line {}", e.line()),
        message: e.to_string(),
    })
}

/// The safetensors files of an HF folder and, for sharded checkpoints, which file holds
/// each tensor.
fn weight_files(dir: &Path) -> Result<(Vec<PathBuf>, HashMap<String, PathBuf>, PathBuf)> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok((vec![single.clone()], HashMap::new(), single));
    }
    let index_path = dir.join("model.safetensors.index.json");
    if !index_path.is_file() {
        return Err(ModelError::MissingFile {
            path: single,
            what: "weights (model.safetensors or model.safetensors.index.json)".into(),
        });
    }
    let index = read_json(&index_path, "safetensors index")?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::BadFile {
            path: index_path.clone(),
            field: "weight_map".into(),
            message: "missing or not an object".into(),
        })?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut sources = HashMap::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::BadFile {
            path: index_path.clone(),
            field: format!("weight_map.{name}"),
            message: "not a file name".into(),
        })?;
        let p = dir.join(file);
        if !files.contains(&p) {
            if !p.is_file() {
                return Err(ModelError::MissingFile {
                    path: p,
                    what: format!("shard listed in {}", index_path.display()),
                });
            }
            files.push(p.clone());
        }
        sources.insert(name.clone(), p);
    }
    Ok((files, sources, index_path))
}

impl Model {
    /// Loads a model from an HF folder (`config.json` + safetensors) or a `.gguf` file.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Model> {
        if !path.exists() {
            return Err(ModelError::MissingFile {
                path: path.to_path_buf(),
                what: "model (an HF folder or a .gguf file)".into(),
            });
        }
        if path.is_dir() {
            return Self::load_hf_dir(path, opts);
        }
        let is_gguf = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if is_gguf {
            check_dtype(opts.dtype)?;
            let c = gguf::read_gguf(path, &opts.device, opts.dtype)?;
            let config = ModelConfig::from_json(&c.config, path)?;
            let vb = VarBuilder::from_tensors(c.tensors, opts.dtype, &opts.device);
            let weights = Weights::new(vb, HashMap::new(), path.to_path_buf());
            let parts = Parts {
                config,
                config_json: c.config,
                name: c.name,
                tokenizer: Some((c.tokenizer, path.to_path_buf())),
            };
            return Self::build(parts, &weights, opts.device.clone(), opts.dtype);
        }
        Err(ModelError::BadFile {
            path: path.to_path_buf(),
            field: "-".into(),
            message:
                "expected an HF model folder (config.json + model.safetensors) or a .gguf file"
                    .into(),
        })
    }

    fn load_hf_dir(dir: &Path, opts: &LoadOptions) -> Result<Model> {
        check_dtype(opts.dtype)?;
        let cfg_path = dir.join("config.json");
        let config_json = read_json(&cfg_path, "model config")?;
        let config = ModelConfig::from_json(&config_json, &cfg_path)?;
        let (files, sources, default_source) = weight_files(dir)?;
        for f in &files {
            // Safety: the file is memory-mapped read-only; steerlab never writes model files
            // while they are loaded.
            unsafe { candle_core::safetensors::MmapedSafetensors::new(f) }.map_err(|e| {
                ModelError::BadFile {
                    path: f.clone(),
                    field: "-".into(),
                    message: format!("not a valid safetensors file: {e}"),
                }
            })?;
        }
        // Safety: as above.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }?;
        let vb = VarBuilder::from_backend(Box::new(st), opts.dtype, opts.device.clone());
        let weights = Weights::new(vb, sources, default_source);
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let tokenizer = if dir.join("tokenizer.json").is_file() {
            Some((TextTokenizer::from_hf_dir(dir)?, dir.join("tokenizer.json")))
        } else {
            None
        };
        let parts = Parts {
            config,
            config_json,
            name,
            tokenizer,
        };
        Self::build(parts, &weights, opts.device.clone(), opts.dtype)
    }

    /// Builds a model from an HF-style config and tensors with HF names (tests, converters).
    /// `name` stands in for a file name in error messages.
    pub fn from_parts(
        config_json: &serde_json::Value,
        tensors: HashMap<String, Tensor>,
        tokenizer: Option<TextTokenizer>,
        name: &str,
        device: &Device,
        dtype: DType,
    ) -> Result<Model> {
        check_dtype(dtype)?;
        let src = PathBuf::from(name);
        let config = ModelConfig::from_json(config_json, &src)?;
        let vb = VarBuilder::from_tensors(tensors, dtype, device);
        let weights = Weights::new(vb, HashMap::new(), src.clone());
        let parts = Parts {
            config,
            config_json: config_json.clone(),
            name: name.to_string(),
            tokenizer: tokenizer.map(|t| (t, src)),
        };
        Self::build(parts, &weights, device.clone(), dtype)
    }

    fn build(parts: Parts, w: &Weights, device: Device, dtype: DType) -> Result<Model> {
        let Parts {
            config,
            config_json,
            name,
            tokenizer,
        } = parts;
        let (v, h) = (config.vocab_size, config.hidden_size);
        if let Some((tok, path)) = &tokenizer {
            if tok.vocab_size() > v {
                return Err(ModelError::BadFile {
                    path: path.clone(),
                    field: "vocab".into(),
                    message: format!(
                        "the tokenizer has {} tokens but the model's embedding has only {v} rows",
                        tok.vocab_size()
                    ),
                });
            }
        }
        let tokenizer = tokenizer.map(|(t, _)| t);
        let embed = w.get((v, h), "model.embed_tokens.weight")?;
        let blocks = (0..config.num_hidden_layers)
            .map(|l| match config.architecture {
                Architecture::Llama | Architecture::Mistral => llama::load_block(w, &config, l),
                Architecture::Qwen2 => qwen2::load_block(w, &config, l),
                Architecture::Qwen3 => qwen3::load_block(w, &config, l),
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = w.rms_norm("model.norm", h, config.rms_norm_eps)?;
        let (lm_head, head_params) = if config.tie_word_embeddings {
            (Linear::new(embed.clone(), None), 0)
        } else {
            let l = w.linear("lm_head", h, v, false)?;
            let n = l.n_params();
            (l, n)
        };
        let n_params = embed.elem_count()
            + blocks.iter().map(|b| b.n_params()).sum::<usize>()
            + norm.weight.elem_count()
            + head_params;
        let inv_freq = config.rope_inv_freq();
        Ok(Model {
            config,
            config_json,
            name,
            embed,
            blocks,
            norm,
            lm_head,
            inv_freq,
            device,
            dtype,
            n_params,
            tokenizer,
            grad_ops: GradOps::default(),
        })
    }

    /// Metadata for display and `--json`.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            architecture: self.config.architecture.to_string(),
            name: self.name.clone(),
            n_layers: self.config.num_hidden_layers,
            hidden_size: self.config.hidden_size,
            vocab_size: self.config.vocab_size,
            n_params: self.n_params,
            device: device_name(&self.device),
            dtype: dtype_name(self.dtype),
        }
    }

    /// The parsed configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The HF-style `config.json` the model was built from.
    pub fn config_json(&self) -> &serde_json::Value {
        &self.config_json
    }

    /// The tokenizer, when the model came with one (HF `tokenizer.json`, GGUF metadata).
    pub fn tokenizer(&self) -> Option<&TextTokenizer> {
        self.tokenizer.as_ref()
    }

    /// The model's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weight/compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of blocks.
    pub fn n_layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    /// Residual width.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub(crate) fn check_ids(&self, max_id: u32) -> Result<()> {
        if max_id as usize >= self.config.vocab_size {
            return Err(ModelError::InvalidInput(format!(
                "token id {max_id} is outside the model's vocabulary ({} entries)",
                self.config.vocab_size
            )));
        }
        Ok(())
    }

    /// Which ops gradient-carrying passes use (default: [`GradOps::Block`], measured fastest on
    /// CPU and on par on the GPU, with the least memory; see BENCHMARKS.md). Results agree
    /// within float rounding; `Composed` exists as the reference and for profiling.
    pub fn set_grad_ops(&mut self, ops: GradOps) {
        self.grad_ops = ops;
    }

    /// The ops gradient-carrying passes use.
    pub fn grad_ops(&self) -> GradOps {
        self.grad_ops
    }

    pub(crate) fn op_mode(&self, hooks: &Hooks, input: Option<&Tensor>) -> OpMode {
        let grad = hooks.needs_grad() || input.is_some_and(|x| x.track_op());
        let composed = hooks.forces_composed() || self.grad_ops == GradOps::Composed;
        if self.dtype == DType::F64 || (grad && composed) {
            OpMode::Composed
        } else if grad {
            OpMode::FusedGrad
        } else {
            OpMode::Fused
        }
    }

    /// Token embeddings `[B, T, hidden]` for ids `[B, T]`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.config.hidden_size,
        ))?)
    }

    /// Logits from final-norm hidden states `[..., hidden]`: f32 (f64 for an f64 model).
    pub fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        let out = if self.dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let fused_grad = self.grad_ops != GradOps::Composed && self.dtype != DType::F64;
        let mode = if hidden.track_op() && fused_grad {
            OpMode::FusedGrad
        } else {
            OpMode::Fused
        };
        super::profile::mark(hidden.device(), "head: final norm, embeddings, rest");
        let logits = self.lm_head.forward_mode(hidden, mode)?;
        super::profile::mark(hidden.device(), "head: lm head matmul");
        let logits = logits.to_dtype(out)?;
        super::profile::mark(hidden.device(), "head: logits to f32");
        Ok(logits)
    }

    /// `log softmax(lm_head(hidden))[i, targets[i]]` `[N]` for final-norm hidden states `[N,
    /// hidden]` and `targets` `[N]` (u32): f32 (f64 for an f64 model), differentiable. Except
    /// with [`GradOps::Composed`] (or f64), the head and the log-softmax are one node
    /// ([`super::fused::head_logprobs`]).
    pub fn target_logprobs(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if self.grad_ops == GradOps::Composed
            || self.dtype == DType::F64
            || self.lm_head.bias.is_some()
        {
            let logits = self.lm_head(hidden)?;
            let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
            return Ok(logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?);
        }
        let logits = self.lm_head.forward_mode(&hidden.detach(), OpMode::Fused)?;
        Ok(super::fused::head_logprobs_from(
            hidden,
            logits,
            &self.lm_head.weight,
            targets,
        )?)
    }

    /// Applies the final RMSNorm to a residual `[..., hidden]`.
    pub fn final_norm(&self, resid: &Tensor, hooks: &Hooks) -> Result<Tensor> {
        self.norm.forward(resid, self.op_mode(hooks, Some(resid)))
    }

    /// Runs blocks `range` on `x` (absolute positions start at `pos.offset`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_blocks(
        &self,
        range: std::ops::Range<usize>,
        mut x: Tensor,
        pos: &PosCtx,
        key_valid: Option<&[Vec<bool>]>,
        hooks: &mut Hooks,
        mode: OpMode,
        mut cache: Option<&mut Vec<LayerCache>>,
    ) -> Result<Tensor> {
        let (b, t) = (pos.batch, pos.len);
        let mask = attention_mask(
            b,
            t,
            pos.offset,
            key_valid,
            self.config.sliding_window,
            &self.device,
        )?;
        let (cos, sin) = rope_tables(&self.inv_freq, pos.offset, t, self.dtype, &self.device)?;
        let step = Step {
            cos: &cos,
            sin: &sin,
            mask: mask.as_ref(),
            mode,
            grad_ops: self.grad_ops,
            pos,
        };
        for l in range {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c[l]);
            x = self.blocks[l].forward(l, x, &step, hooks, layer_cache)?;
        }
        Ok(x)
    }

    /// Full forward pass: logits `[B, T, vocab]` (f32; f64 for an f64 model). Interventions in `hooks` are applied;
    /// captured tensors replace those of any previous call.
    pub fn forward(&self, batch: &Batch, hooks: &mut Hooks) -> Result<Tensor> {
        let h = self.forward_hidden(batch, hooks)?;
        self.lm_head(&h)
    }

    /// Like [`Model::forward`] but stops before the LM head: final-norm hidden states
    /// `[B, T, hidden]` (model dtype). Use with [`Model::lm_head`] to score selected positions.
    pub fn forward_hidden(&self, batch: &Batch, hooks: &mut Hooks) -> Result<Tensor> {
        self.prepare(batch, hooks)?;
        let x = self.embed(batch.ids())?;
        let mode = self.op_mode(hooks, None);
        let kv = batch.key_valid();
        let x = self.run_blocks(
            0..self.n_layers(),
            x,
            &batch.pos_ctx(),
            kv.as_deref(),
            hooks,
            mode,
            None,
        )?;
        self.norm.forward(&x, mode)
    }

    /// Runs blocks `0..layer` and returns the residual entering block `layer` (equal to
    /// `blocks.{layer-1}.hook_resid_post` before its interventions). Hooks must lie strictly
    /// inside those blocks; `ResidPost(layer - 1)` belongs to [`Model::forward_from`].
    pub fn forward_to(&self, layer: usize, batch: &Batch, hooks: &mut Hooks) -> Result<Tensor> {
        if layer > self.n_layers() {
            return Err(ModelError::BadHook(format!(
                "forward_to({layer}): the model has {} layers",
                self.n_layers()
            )));
        }
        self.prepare(batch, hooks)?;
        for (p, _) in hooks.interventions() {
            if p.layer() >= layer || *p == HookPoint::ResidPost(layer.wrapping_sub(1)) {
                return Err(ModelError::BadHook(format!(
                    "{p}: not run by forward_to({layer}) (hooks there belong to forward_from)"
                )));
            }
        }
        let x = self.embed(batch.ids())?;
        let mode = self.op_mode(hooks, None);
        let kv = batch.key_valid();
        self.run_blocks(
            0..layer,
            x,
            &batch.pos_ctx(),
            kv.as_deref(),
            hooks,
            mode,
            None,
        )
    }

    /// Resumes a forward pass at block `layer` from a cached residual `resid_pre` `[B, T,
    /// hidden]` (as returned by [`Model::forward_to`]): applies hooks at
    /// `ResidPost(layer - 1)`, then blocks `layer..`, and returns logits `[B, T, vocab]` (f32).
    /// Hooks before that point are rejected. Differentiable w.r.t. `resid_pre` and added `Var`s.
    pub fn forward_from(
        &self,
        layer: usize,
        resid_pre: &Tensor,
        batch: &Batch,
        hooks: &mut Hooks,
    ) -> Result<Tensor> {
        let h = self.forward_hidden_from(layer, resid_pre, batch, hooks)?;
        self.lm_head(&h)
    }

    /// [`Model::forward_from`] stopping before the LM head (final-norm hidden states).
    pub fn forward_hidden_from(
        &self,
        layer: usize,
        resid_pre: &Tensor,
        batch: &Batch,
        hooks: &mut Hooks,
    ) -> Result<Tensor> {
        if layer > self.n_layers() {
            return Err(ModelError::BadHook(format!(
                "forward_from({layer}): the model has {} layers",
                self.n_layers()
            )));
        }
        self.prepare(batch, hooks)?;
        hooks.check_not_before(layer)?;
        let want = (batch.batch_size(), batch.seq_len(), self.hidden_size());
        if resid_pre.dims() != [want.0, want.1, want.2] {
            return Err(ModelError::InvalidInput(format!(
                "forward_from: residual has shape {:?}, expected {want:?}",
                resid_pre.dims()
            )));
        }
        let mode = self.op_mode(hooks, Some(resid_pre));
        let pos = batch.pos_ctx();
        let mut x = resid_pre.to_dtype(self.dtype)?;
        if layer > 0 {
            x = hooks.apply(HookPoint::ResidPost(layer - 1), x, &pos)?;
        }
        let kv = batch.key_valid();
        let x = self.run_blocks(
            layer..self.n_layers(),
            x,
            &pos,
            kv.as_deref(),
            hooks,
            mode,
            None,
        )?;
        self.norm.forward(&x, mode)
    }

    fn prepare(&self, batch: &Batch, hooks: &mut Hooks) -> Result<()> {
        self.check_ids(batch.max_id)?;
        hooks.validate(self.n_layers(), self.hidden_size())?;
        hooks.clear_captured();
        Ok(())
    }
}
