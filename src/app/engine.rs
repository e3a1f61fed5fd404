//! The app's thin layer over `crate::model`: load a model on a background job, summarise it
//! for display, and stream a generation. Only calls the engine; no model code here.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::data::Message;
use crate::jobs::{Progress, ProgressSink};
use crate::model::{GenerateOptions, Hooks, LoadOptions, Model};

use super::state::{AppState, Recent};

/// Device and dtype chosen in the Model panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChoice {
    /// `cpu`, `cuda`, `cuda:1`.
    pub device: String,
    /// `f32`, `bf16`, `f16`.
    pub dtype: String,
}

impl Default for DeviceChoice {
    fn default() -> Self {
        Self {
            device: "cpu".into(),
            dtype: "f32".into(),
        }
    }
}

/// What the Model panel shows about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Model name (from the config or GGUF metadata).
    pub name: String,
    /// Architecture (`llama`, `qwen2`, ...).
    pub architecture: String,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Vocabulary size of the embedding table.
    pub vocab_size: usize,
    /// Parameter count.
    pub n_params: u64,
    /// Device the weights live on.
    pub device: String,
    /// Weight dtype.
    pub dtype: String,
}

/// A model in memory, shared with generation jobs.
pub struct LoadedModel {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The engine's model.
    pub model: Arc<Model>,
    /// Its description.
    pub summary: ModelSummary,
    /// How long loading took.
    pub load_time: Duration,
}

/// Loads the model at `path` with `choice` (blocking; run it on a job).
pub fn load_model(
    path: PathBuf,
    choice: &DeviceChoice,
    sink: &dyn ProgressSink,
) -> anyhow::Result<LoadedModel> {
    let opts = LoadOptions::parse(&choice.device, &choice.dtype)?;
    sink.report(Progress::new(
        format!("reading {}", file_name(&path)),
        0,
        None,
    ));
    let t0 = Instant::now();
    let model = Model::load(&path, &opts)?;
    let info = model.info();
    let summary = ModelSummary {
        name: info.name.clone(),
        architecture: info.architecture.clone(),
        n_layers: info.n_layers,
        hidden_size: info.hidden_size,
        vocab_size: info.vocab_size,
        n_params: info.n_params as u64,
        device: info.device.clone(),
        dtype: info.dtype.clone(),
    };
    Ok(LoadedModel {
        path,
        model: Arc::new(model),
        summary,
        load_time: t0.elapsed(),
    })
}

/// Starts loading `path` in the background; the result replaces `state.model`.
pub fn start_model_load(state: &mut AppState, path: PathBuf, choice: DeviceChoice) {
    let shown = file_name(&path);
    let p = path.clone();
    let id = state.spawn_job(
        &format!("Load model {shown}"),
        move |ctx| load_model(p, &choice, ctx),
        move |res, state: &mut AppState| {
            state.model_job = None;
            match res {
                Ok(m) => {
                    Recent::remember(&mut state.recent.models, &m.path);
                    state.artifacts.add(
                        crate::app::ArtifactKind::Model,
                        m.summary.name.clone(),
                        &m.path,
                    );
                    state.info(format!(
                        "Loaded {} ({}, {} layers) in {:.1}s",
                        m.summary.name,
                        m.summary.architecture,
                        m.summary.n_layers,
                        m.load_time.as_secs_f64()
                    ));
                    state.model = Some(m);
                    state.model_error = None;
                }
                Err(e) => {
                    let msg = format!("Could not load {}: {e}", path.display());
                    state.model_error = Some(msg.clone());
                    state.error(msg);
                }
            }
        },
    );
    state.model_job = Some(id);
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSettings {
    /// The prompt text.
    pub prompt: String,
    /// Wrap the prompt as a user turn with the model's chat template.
    pub chat: bool,
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
    /// Sampling seed.
    pub seed: u64,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        Self {
            prompt: "What is the capital of France?".into(),
            chat: true,
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 0.9,
            seed: 0,
        }
    }
}

/// Generates from `model`, handing each decoded piece to `on_text` as it arrives; stops early
/// when the sink is cancelled. Returns the number of generated tokens.
pub fn generate(
    model: &Model,
    s: &GenerateSettings,
    sink: &dyn ProgressSink,
    on_text: &mut dyn FnMut(&str),
) -> anyhow::Result<usize> {
    let tok = model.tokenizer().context("this model has no tokenizer")?;
    let ids = if s.chat {
        let text = tok.apply_chat_template(&[Message::new("user", s.prompt.clone())], true)?;
        tok.encode(&text, false)?
    } else {
        tok.encode(&s.prompt, true)?
    };
    let opts = GenerateOptions {
        max_new_tokens: s.max_new_tokens,
        temperature: s.temperature,
        top_p: s.top_p,
        seed: s.seed,
        stop_at_eos: true,
    };
    let total = s.max_new_tokens as u64;
    let mut n = 0u64;
    let hooks = Hooks::new();
    let out = model.generate(&ids, &opts, &hooks, &mut |_id, piece| {
        n += 1;
        on_text(piece);
        sink.report(Progress::new("generating", n, Some(total)));
        !sink.is_cancelled()
    })?;
    Ok(out.len())
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}
