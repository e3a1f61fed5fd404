//! The hooked [`Model`]: built from what `model::load` read, batched forward passes with
//! interventions, partial forwards for cached training, the LM head, and model metadata. Each
//! pass makes its one execution choice ([`Exec`]) here and runs the decoder of `model::arch`
//! with it. Generation lives in `generate.rs`, batches in `batch.rs`. Must not contain steering
//! or training logic, and must not pick kernels op by op.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::arch::decoder::{Block, LayerCache, Step};
use super::arch::ops::{attention_mask, rope_tables, rope_tables_scaled, Linear, RmsNorm, Weight};
use super::batch::Batch;
use super::fast::quant::QMatrix;
use super::fast::{grad, profile, Exec, GradOps, Packs};
use super::hooks::{HookPoint, Hooks, PosCtx};
use super::load::config::ModelConfig;
use super::load::{self, device_name, dtype_name, LoadOptions, Source, Weights};
use super::tokenizer::TextTokenizer;
use super::{arch, ModelError, Result};

/// A description of a loaded model (serialisable for `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// Architecture family (`llama`, `mistral`, `qwen2`, `qwen3`, `gemma2`, `gemma3`, `phi3`,
    /// `mixtral`, `qwen3_moe`).
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
    /// Attention pattern: `global`, `sliding W` (every layer) or `N sliding (W) / M global`.
    pub attention: String,
    /// Mixture of experts, e.g. `8 experts, top 2` (`, on 47 of 48 layers` when some blocks
    /// are dense); absent for dense models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts: Option<String>,
}

/// A loaded decoder-only transformer whose residual stream can be read and written.
pub struct Model {
    config: ModelConfig,
    config_json: serde_json::Value,
    name: String,
    embed: Weight,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    inv_freq: Vec<f64>,
    /// RoPE frequencies of the sliding layers when they have their own base (Gemma 3).
    local_inv_freq: Option<Vec<f64>>,
    device: Device,
    dtype: DType,
    n_params: usize,
    tokenizer: Option<TextTokenizer>,
    grad_ops: GradOps,
    /// The packed weights of the CPU inference kernels (built on first use).
    packs: Packs,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info()).finish()
    }
}

impl Model {
    /// Loads a model from an HF folder (`config.json` + safetensors) or a `.gguf` file.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let (source, weights) = load::open(path, opts)?;
        Self::build(source, &weights, opts.device.clone(), opts.dtype)
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
        let (source, weights) =
            load::from_tensors(config_json, tensors, tokenizer, name, device, dtype)?;
        Self::build(source, &weights, device.clone(), dtype)
    }

    /// [`Model::from_parts`] with weight matrices held block-quantized (`quantized`, HF names;
    /// an f32 model on the CPU): random-init benchmarks of shapes whose f32 weights would not
    /// fit in memory.
    pub fn from_quantized_parts(
        config_json: &serde_json::Value,
        tensors: HashMap<String, Tensor>,
        quantized: HashMap<String, QMatrix>,
        tokenizer: Option<TextTokenizer>,
        name: &str,
    ) -> Result<Model> {
        let (dev, dtype) = (Device::Cpu, DType::F32);
        let (source, weights) =
            load::from_tensors(config_json, tensors, tokenizer, name, &dev, dtype)?;
        Self::build(source, &weights.with_quantized(quantized), dev, dtype)
    }

    fn build(source: Source, w: &Weights, device: Device, dtype: DType) -> Result<Model> {
        let Source {
            config,
            config_json,
            name,
            tokenizer,
        } = source;
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
        let embed = w.weight((v, h), "model.embed_tokens.weight")?;
        let blocks = (0..config.num_hidden_layers)
            .map(|l| arch::load_block(w, &config, l))
            .collect::<Result<Vec<_>>>()?;
        let norm = w.rms_norm("model.norm", h, config.rms_norm_eps)?;
        let (lm_head, head_params) = if config.tie_word_embeddings {
            (
                Linear {
                    weight: embed.clone(),
                    bias: None,
                },
                0,
            )
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
        let local_inv_freq = config.local_rope_inv_freq();
        let norm = arch::gemma3::shifted(norm, config.norm_weight_offset)?;
        Ok(Model {
            config,
            config_json,
            name,
            embed,
            blocks,
            norm,
            lm_head,
            inv_freq,
            local_inv_freq,
            device,
            dtype,
            n_params,
            tokenizer,
            grad_ops: GradOps::default(),
            packs: Packs::default(),
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
            attention: self.attention_pattern(),
            experts: self.config.moe.as_ref().map(|m| {
                let sparse = m.sparse_layers.iter().filter(|&&s| s).count();
                let mut s = format!("{} experts, top {}", m.num_experts, m.top_k);
                if sparse < m.sparse_layers.len() {
                    s += &format!(", on {sparse} of {} layers", m.sparse_layers.len());
                }
                s
            }),
        }
    }

    /// The attention pattern in words (see [`ModelInfo::attention`]).
    pub fn attention_pattern(&self) -> String {
        let c = &self.config;
        let n = c.num_hidden_layers;
        let sliding = (0..n).filter(|&l| c.layer_is_sliding(l)).count();
        match (c.sliding_window, sliding) {
            (None, _) | (_, 0) => "global".into(),
            (Some(w), s) if s == n => format!("sliding {w}"),
            (Some(w), s) => format!("{s} sliding ({w}) / {} global", n - s),
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

    /// The execution choice of a pass with `hooks` on `input` (if the pass starts from one):
    /// made once, at the top of each forward.
    pub(crate) fn exec(&self, hooks: &Hooks, input: Option<&Tensor>) -> Exec {
        let grad = hooks.needs_grad() || input.is_some_and(|x| x.track_op());
        Exec::choose(self.dtype, grad, hooks.forces_composed(), self.grad_ops)
    }

    /// Token embeddings `[B, T, hidden]` for ids `[B, T]`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let x = self
            .embed
            .rows(&ids.flatten_all()?)?
            .reshape((b, t, self.config.hidden_size))?;
        match self.config.embed_scale {
            Some(s) => Ok((x * s)?),
            None => Ok(x),
        }
    }

    /// Logits from final-norm hidden states `[..., hidden]`: f32 (f64 for an f64 model).
    pub fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        let out = if self.dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let exec = match hidden.track_op() {
            true => Exec::choose(self.dtype, true, false, self.grad_ops),
            false => Exec::Fast,
        };
        // The reference head is candle's linear layer, as the fast one is without gradient.
        let exec = if exec == Exec::Reference {
            Exec::Fast
        } else {
            exec
        };
        let logits = {
            let _s = profile::span(hidden.device(), "head: lm head matmul");
            exec.run_unprofiled(&self.packs, |ops| ops.linear(&self.lm_head, hidden))?
        };
        let _s = profile::span(hidden.device(), "head: logits to f32");
        let logits = logits.to_dtype(out)?;
        match self.config.final_logit_softcapping {
            // Gemma's soft-cap: c * tanh(logits / c).
            Some(c) => Ok(((logits / c)?.tanh()? * c)?),
            None => Ok(logits),
        }
    }

    /// `log softmax(lm_head(hidden))[i, targets[i]]` `[N]` for final-norm hidden states `[N,
    /// hidden]` and `targets` `[N]` (u32): f32 (f64 for an f64 model), differentiable. Except
    /// with [`GradOps::Composed`] (or f64), the head and the log-softmax are one node
    /// ([`super::fast::grad::head_logprobs`]).
    pub fn target_logprobs(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if self.grad_ops == GradOps::Composed
            || self.dtype == DType::F64
            || self.lm_head.bias.is_some()
            || self.config.final_logit_softcapping.is_some()
        {
            let logits = self.lm_head(hidden)?;
            let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
            return Ok(logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?);
        }
        let logits = {
            let _s = profile::span(hidden.device(), "fwd: lm head");
            Exec::Fast.run_unprofiled(&self.packs, |ops| {
                ops.linear(&self.lm_head, &hidden.detach())
            })?
        };
        Ok(match &self.lm_head.weight {
            Weight::Dense(w) => grad::head_logprobs_from(hidden, logits, w, targets)?,
            q => {
                let q = q.clone();
                grad::head_logprobs_with(hidden, logits, targets, move |d| {
                    q.backward_input(d)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))
                })?
            }
        })
    }

    /// Applies the final RMSNorm to a residual `[..., hidden]`.
    pub fn final_norm(&self, resid: &Tensor, hooks: &Hooks) -> Result<Tensor> {
        self.exec(hooks, Some(resid))
            .run(&self.packs, |ops| ops.rms_norm(&self.norm, resid))
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
        exec: Exec,
        mut cache: Option<&mut Vec<LayerCache>>,
    ) -> Result<Tensor> {
        let (b, t) = (pos.batch, pos.len);
        let cfg = &self.config;
        load::validate::context(pos.offset + t, cfg.max_position_embeddings)?;
        // With a sliding/global layer pattern (Gemma) the window applies to the sliding
        // layers only; without one (Mistral) to every layer.
        let patterned = !cfg.sliding_layers.is_empty();
        let global_window = if patterned { None } else { cfg.sliding_window };
        let mask = attention_mask(b, t, pos.offset, key_valid, global_window, &self.device)?;
        let (cos, sin) = rope_tables_scaled(
            &cfg.rope_inv_freq_for_len(pos.offset + t),
            cfg.rotary_dim / 2,
            cfg.rope_attention_factor(),
            pos.offset,
            t,
            self.dtype,
            &self.device,
        )?;
        let step = Step {
            cos: &cos,
            sin: &sin,
            mask: mask.as_ref(),
            pos,
        };
        let local = match patterned && range.clone().any(|l| cfg.layer_is_sliding(l)) {
            true => {
                let mask = attention_mask(
                    b,
                    t,
                    pos.offset,
                    key_valid,
                    cfg.sliding_window,
                    &self.device,
                )?;
                let freq = self.local_inv_freq.as_ref().unwrap_or(&self.inv_freq);
                let (cos, sin) = rope_tables(freq, pos.offset, t, self.dtype, &self.device)?;
                Some((cos, sin, mask))
            }
            false => None,
        };
        let local_step = local.as_ref().map(|(cos, sin, mask)| Step {
            cos,
            sin,
            mask: mask.as_ref(),
            pos,
        });
        exec.run(&self.packs, |ops| {
            for l in range {
                let layer_cache = cache.as_deref_mut().map(|c| &mut c[l]);
                let st = match &local_step {
                    Some(ls) if cfg.layer_is_sliding(l) => ls,
                    _ => &step,
                };
                x = self.blocks[l].forward(ops, l, x, st, hooks, layer_cache)?;
            }
            Ok(x)
        })
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
        let exec = self.exec(hooks, None);
        let kv = batch.key_valid();
        let x = self.run_blocks(
            0..self.n_layers(),
            x,
            &batch.pos_ctx(),
            kv.as_deref(),
            hooks,
            exec,
            None,
        )?;
        exec.run(&self.packs, |ops| ops.rms_norm(&self.norm, &x))
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
        let exec = self.exec(hooks, None);
        let kv = batch.key_valid();
        self.run_blocks(
            0..layer,
            x,
            &batch.pos_ctx(),
            kv.as_deref(),
            hooks,
            exec,
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
        let exec = self.exec(hooks, Some(resid_pre));
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
            exec,
            None,
        )?;
        exec.run(&self.packs, |ops| ops.rms_norm(&self.norm, &x))
    }

    /// Checks `hooks` against this model: layers, vector widths (the residual width; at a
    /// router hook, the block's number of experts).
    pub(crate) fn check_hooks(&self, hooks: &Hooks) -> Result<()> {
        hooks.validate_with_router(self.n_layers(), self.hidden_size(), &|l| {
            self.blocks.get(l).and_then(|b| b.router_width())
        })
    }

    fn prepare(&self, batch: &Batch, hooks: &mut Hooks) -> Result<()> {
        self.check_ids(batch.max_id)?;
        self.check_hooks(hooks)?;
        hooks.clear_captured();
        Ok(())
    }
}
