//! The Model feature's state: the app's thin layer over `crate::model` (load a model on a
//! background job, summarise it for display). Only calls the engine; no model code here.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::jobs::{Progress, ProgressSink};
use crate::model::{LoadOptions, Model};

use crate::app::state::{AppState, Recent};

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
    /// Attention pattern (global, sliding, or the sliding/global split).
    pub attention: String,
    /// Mixture of experts (`4 experts, top 2`); `None` for dense models.
    pub experts: Option<String>,
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
        attention: info.attention.clone(),
        experts: info.experts.clone(),
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
                    // A default model is remembered by its short name (`gemma3-270m`).
                    let entry = crate::paths::short_name_of(&m.path)
                        .map_or_else(|| m.path.clone(), PathBuf::from);
                    Recent::remember(&mut state.recent.models, &entry);
                    state.artifacts.add(
                        crate::app::artifacts::ArtifactKind::Model,
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

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}
