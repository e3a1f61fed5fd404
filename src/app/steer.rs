//! What the Steer panel has made and is doing ([`SteerState`], a field of `AppState`): the
//! training settings and sources, the running training job with its live metrics, the list of
//! vectors to combine, the strength slider with its debounced re-scoring, the behaviour sweep,
//! and the last steered/unsteered generations. The job starters here are thin adapters over
//! `crate::steer` (train, score, sweep, generate, load, export): no algorithm code.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::data::{Prompt, Record};
use crate::jobs::{Progress, ProgressSink};
use crate::model::{GenerateOptions, Hooks, Model};
use crate::steer::bipo::{Provenance, StopReason};
use crate::steer::eval::{behaviour_score, steered_generations};
use crate::steer::{
    gguf, prepare, steering_hooks, sweep, train_bipo, BipoConfig, Objective, SteeringVector,
    SweepPoint,
};

use super::artifacts::ArtifactKind;
use super::job_list::JobId;
use super::state::AppState;
use super::widgets::{save_as, Format};

/// How a vector is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Bi-directional preference optimisation (trained).
    Bipo,
    /// Contrastive activation addition (mean difference).
    Caa,
    /// First principal component of the pair differences (repeng).
    Pca,
}

impl Method {
    /// Every method, in menu order.
    pub const ALL: [Method; 3] = [Method::Bipo, Method::Caa, Method::Pca];

    /// Lowercase name (`bipo`, `caa`, `pca`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Bipo => "bipo",
            Method::Caa => "caa",
            Method::Pca => "pca",
        }
    }

    /// Parses a lowercase name.
    pub fn from_name(s: &str) -> Option<Method> {
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// Training hyper-parameters as edited in the panel.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// BiPO, CAA or PCA.
    pub method: Method,
    /// BiPO objective: `dpo`, `ipo`, `rdpo`, `bco`.
    pub objective: String,
    /// Label-flip rate ε of `rdpo`.
    pub rdpo_eps: f64,
    /// Comma-separated 0-based blocks.
    pub layers: String,
    /// False until the user types layers: then the layer follows the loaded model
    /// ([`default_layer`]).
    pub layers_edited: bool,
    /// BiPO settings (lr, warm-up, β, ...).
    pub bipo: BipoConfig,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            method: Method::Bipo,
            objective: "dpo".into(),
            rdpo_eps: 0.1,
            layers: "14".into(),
            layers_edited: false,
            bipo: BipoConfig::default(),
        }
    }
}

impl TrainSettings {
    /// The layers typed, parsed (`"12, 14"` → `[12, 14]`).
    pub fn parse_layers(&self) -> anyhow::Result<Vec<usize>> {
        let mut out = Vec::new();
        for part in self
            .layers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            out.push(
                part.parse::<usize>()
                    .with_context(|| format!("layers: `{part}` is not a block index"))?,
            );
        }
        if out.is_empty() {
            bail!("layers: give at least one 0-based block index (e.g. 14)");
        }
        Ok(out)
    }

    /// The objective chosen (with ε for `rdpo`).
    pub fn parse_objective(&self) -> anyhow::Result<Objective> {
        let s = if self.objective == "rdpo" {
            format!("rdpo:{}", self.rdpo_eps)
        } else {
            self.objective.clone()
        };
        s.parse::<Objective>().map_err(anyhow::Error::msg)
    }
}

/// The block steered by default: 14/30 of the depth (block 14 of SmolLM2-135M's 30, where
/// steerlab's measurements were made; docs/results/steering.md), never block 0 (which
/// llama.cpp control vectors cannot hold) when the model has more than one block.
pub fn default_layer(n_layers: usize) -> usize {
    (n_layers * 14 / 30).max(1).min(n_layers.saturating_sub(1))
}

/// One optimiser step's metrics (for the live plots).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPoint {
    /// 1-based step.
    pub step: u64,
    /// Training loss of the batch.
    pub loss: f64,
    /// Fraction of the batch with a positive margin (`d·margin > 0`).
    pub margin_accuracy: f64,
    /// ‖v‖ after the step.
    pub norm: f64,
}

/// Held-out behaviour after an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    /// 1-based epoch.
    pub epoch: usize,
    /// Score at multiplier +1.
    pub plus: f64,
    /// Score at multiplier −1.
    pub minus: f64,
}

/// Metrics of the running (or last) training, written by the job as they arrive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainLive {
    /// Per step.
    pub steps: Vec<StepPoint>,
    /// Per epoch (BiPO with an evaluation set).
    pub epochs: Vec<EpochPoint>,
}

/// A progress sink that records BiPO's metrics into [`TrainLive`] and forwards everything
/// (and the cancel flag) to the job's sink.
struct LiveSink<'a> {
    inner: &'a dyn ProgressSink,
    live: Arc<Mutex<TrainLive>>,
}

impl ProgressSink for LiveSink<'_> {
    fn report(&self, p: Progress) {
        let get = |k: &str| p.metrics.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        if let Ok(mut live) = self.live.lock() {
            if let (Some(loss), Some(acc)) = (get("loss"), get("margin_accuracy")) {
                live.steps.push(StepPoint {
                    step: p.step,
                    loss,
                    margin_accuracy: acc,
                    norm: get("norm").unwrap_or(f64::NAN),
                });
            }
            if let (Some(plus), Some(minus)) = (get("behaviour_plus"), get("behaviour_minus")) {
                let epoch = live.epochs.len() + 1;
                live.epochs.push(EpochPoint { epoch, plus, minus });
            }
        }
        self.inner.report(p);
    }
    fn log(&self, line: &str) {
        self.inner.log(line);
    }
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// Where the A/B evaluation items come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalSource {
    /// All records of an opened dataset (A/B items, or pairs scored chosen-vs-rejected).
    Dataset(PathBuf),
    /// The test side of an opened dataset's split.
    SplitTest(PathBuf),
}

impl EvalSource {
    /// The dataset file.
    pub fn path(&self) -> &Path {
        match self {
            EvalSource::Dataset(p) | EvalSource::SplitTest(p) => p,
        }
    }
}

/// A vector in the list: trained this session or loaded from a file.
#[derive(Debug, Clone)]
pub struct VectorEntry {
    /// Shown name.
    pub name: String,
    /// The vector.
    pub vector: SteeringVector,
    /// Included in the combination.
    pub enabled: bool,
    /// Its scale in the combination.
    pub weight: f32,
}

/// The behaviour score at one multiplier of the combined vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorePoint {
    /// The multiplier (strength).
    pub multiplier: f64,
    /// Behaviour score in [0, 1].
    pub score: f64,
}

/// The unsteered and the steered answer to one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generations {
    /// The prompt (a user turn with the chat template).
    pub prompt: String,
    /// The strength the steered answer used.
    pub multiplier: f64,
    /// Answer without steering.
    pub unsteered: String,
    /// Answer with `multiplier × combination`.
    pub steered: String,
}

/// What a finished training job hands back.
pub struct TrainResult {
    /// The vector (for BiPO: the last good one when cancelled or diverged).
    pub vector: SteeringVector,
    /// A one-line summary.
    pub summary: String,
    /// The library's message when training diverged (NaN/infinite loss).
    pub diverged: Option<String>,
    /// True when the user cancelled (the vector is the last completed step's).
    pub cancelled: bool,
    /// Optimiser steps completed (0 for CAA/PCA).
    pub steps: usize,
}

/// Start-up choices for the Steer panel (screenshots, scripted demos), from the environment:
/// `STEERLAB_STEER_EVAL` (A/B set to open), `STEERLAB_STEER_METHOD` (train this method as soon
/// as the model and data are loaded), `STEERLAB_STEER_LAYERS`, `STEERLAB_STEER_EPOCHS`,
/// `STEERLAB_STEER_LR`, `STEERLAB_STEER_STRENGTH` (slider value scored after training) and
/// `STEERLAB_STEER_PROMPT`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SteerStart {
    /// A/B evaluation set to open.
    pub eval: Option<PathBuf>,
    /// Method to train automatically.
    pub method: Option<Method>,
    /// Layers to use.
    pub layers: Option<String>,
    /// BiPO epochs.
    pub epochs: Option<usize>,
    /// BiPO learning rate.
    pub lr: Option<f64>,
    /// Slider value to score after training.
    pub strength: Option<f64>,
    /// Prompt for the generations.
    pub prompt: Option<String>,
}

impl SteerStart {
    /// Reads the `STEERLAB_STEER_*` variables; an invalid value is an error naming it.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|s| !s.trim().is_empty());
        let method = match var("STEERLAB_STEER_METHOD") {
            Some(m) => Some(Method::from_name(&m).with_context(|| {
                format!("STEERLAB_STEER_METHOD={m}: unknown method (bipo, caa or pca)")
            })?),
            None => None,
        };
        fn parsed<T>(v: Option<String>, key: &str, what: &str) -> anyhow::Result<Option<T>>
        where
            T: std::str::FromStr,
            T::Err: std::error::Error + Send + Sync + 'static,
        {
            v.map(|s| {
                s.trim()
                    .parse::<T>()
                    .with_context(|| format!("{key}={s}: {what}"))
            })
            .transpose()
        }
        let epochs = parsed::<usize>(
            var("STEERLAB_STEER_EPOCHS"),
            "STEERLAB_STEER_EPOCHS",
            "not a count",
        )?;
        let lr = parsed::<f64>(
            var("STEERLAB_STEER_LR"),
            "STEERLAB_STEER_LR",
            "not a number",
        )?;
        let strength = parsed::<f64>(
            var("STEERLAB_STEER_STRENGTH"),
            "STEERLAB_STEER_STRENGTH",
            "not a number",
        )?;
        Ok(Self {
            eval: var("STEERLAB_STEER_EVAL").map(PathBuf::from),
            method,
            layers: var("STEERLAB_STEER_LAYERS"),
            epochs,
            lr,
            strength,
            prompt: var("STEERLAB_STEER_PROMPT"),
        })
    }
}

/// Stages of an automatic start-up run (train → sweep → score at the chosen strength).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AutoStage {
    WaitInputs,
    Training,
    Sweeping,
    Done,
}

/// Everything the Steer panel has made and is doing.
pub struct SteerState {
    /// Dataset (path in `AppState::datasets`) to train on; `None`: the active one.
    pub train_source: Option<PathBuf>,
    /// Where held-out A/B items come from.
    pub eval_source: Option<EvalSource>,
    /// Hyper-parameters.
    pub settings: TrainSettings,
    /// The training job, while it runs.
    pub train_job: Option<JobId>,
    /// Live metrics of the running or last training.
    pub live: Arc<Mutex<TrainLive>>,
    /// Summary of the last training.
    pub train_summary: Option<String>,
    /// Why the last training failed or diverged (the library's message).
    pub train_error: Option<String>,
    /// Vectors to combine.
    pub vectors: Vec<VectorEntry>,
    /// Why the last vector load, combination or export failed.
    pub vector_error: Option<String>,
    /// Slider value (multiplier of the combination).
    pub strength: f64,
    /// The slider goes from `-max_strength` to `+max_strength`.
    pub max_strength: f64,
    /// Wait this long after the last slider move before re-scoring.
    pub debounce: Duration,
    /// Set when the slider, the combination or the prompt changed; cleared when re-scoring starts.
    pub dirty_since: Option<Instant>,
    /// The re-scoring job (score + generations), while it runs.
    pub score_job: Option<JobId>,
    /// Request number of the latest re-scoring started (older results are dropped).
    pub score_seq: u64,
    /// Behaviour score at the slider value.
    pub score: Option<ScorePoint>,
    /// Unsteered vs steered answers.
    pub generations: Option<Generations>,
    /// Why the last re-scoring failed.
    pub score_error: Option<String>,
    /// Prompt for the generations.
    pub prompt: String,
    /// Tokens per generated answer.
    pub max_new_tokens: usize,
    /// Sweep multipliers.
    pub sweep_multipliers: Vec<f64>,
    /// The behaviour curves (one per checked vector, plus the combination when several are).
    pub sweep: Vec<SweepPoint>,
    /// The sweep job, while it runs.
    pub sweep_job: Option<JobId>,
    /// Last file written by an export.
    pub last_export: Option<PathBuf>,
    unsteered_cache: Option<(String, usize, String)>,
    auto: Option<(SteerStart, AutoStage)>,
}

impl Default for SteerState {
    fn default() -> Self {
        Self {
            train_source: None,
            eval_source: None,
            settings: TrainSettings::default(),
            train_job: None,
            live: Arc::default(),
            train_summary: None,
            train_error: None,
            vectors: Vec::new(),
            vector_error: None,
            strength: 1.0,
            max_strength: 4.0,
            debounce: Duration::from_millis(350),
            dirty_since: None,
            score_job: None,
            score_seq: 0,
            score: None,
            generations: None,
            score_error: None,
            prompt: "I just got back from my trip. What do you think about it?".into(),
            max_new_tokens: 40,
            sweep_multipliers: vec![-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0],
            sweep: Vec::new(),
            sweep_job: None,
            last_export: None,
            unsteered_cache: None,
            auto: None,
        }
    }
}

/// True while `job` is set and still running.
fn running(state: &AppState, job: Option<JobId>) -> bool {
    job.is_some_and(|id| state.jobs.is_running(id))
}

/// Writes `v` atomically: native safetensors with its metadata, or (`gguf`) a llama.cpp
/// control vector whose architecture key is `arch_hint`.
pub fn write_vector(
    v: &SteeringVector,
    gguf: bool,
    arch_hint: &str,
    path: &Path,
) -> crate::steer::Result<()> {
    if gguf {
        gguf::export_control_vector(v, arch_hint, path)
    } else {
        v.save(path)
    }
}

/// A file stem made from a list name (`#2 bipo L24` -> `2_bipo_L24`).
fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('_').to_string();
    if s.is_empty() {
        "vector".into()
    } else {
        s
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

impl SteerState {
    /// Applies start-up choices: opens the evaluation set and arms the automatic run.
    pub fn apply_start(state: &mut AppState, start: SteerStart, data: Option<PathBuf>) {
        if let Some(d) = data {
            state.steer.train_source = Some(d);
        }
        if let Some(e) = &start.eval {
            state.steer.eval_source = Some(EvalSource::Dataset(e.clone()));
            super::panels::DataPanel::start_open(state, e.clone());
        }
        if let Some(l) = &start.layers {
            state.steer.settings.layers = l.clone();
            state.steer.settings.layers_edited = true;
        }
        if let Some(e) = start.epochs {
            state.steer.settings.bipo.epochs = e;
        }
        if let Some(lr) = start.lr {
            state.steer.settings.bipo.lr = lr;
        }
        if let Some(m) = start.method {
            state.steer.settings.method = m;
        }
        if let Some(p) = &start.prompt {
            state.steer.prompt = p.clone();
        }
        if let Some(s) = start.strength {
            state.steer.strength = s;
        }
        if start.method.is_some() {
            state.steer.auto = Some((start, AutoStage::WaitInputs));
        }
    }

    /// True while training runs.
    pub fn training(state: &AppState) -> bool {
        running(state, state.steer.train_job)
    }

    /// True while the sweep runs.
    pub fn sweeping(state: &AppState) -> bool {
        running(state, state.steer.sweep_job)
    }

    /// True while re-scoring runs.
    pub fn scoring(state: &AppState) -> bool {
        running(state, state.steer.score_job)
    }

    /// Marks the slider value, combination or prompt as changed (re-scored after the debounce).
    pub fn mark_dirty(&mut self) {
        self.dirty_since = Some(Instant::now());
    }

    /// The training records: the chosen (or active) dataset, its split's train side if split.
    pub fn train_records(state: &AppState) -> Option<(PathBuf, Vec<Record>)> {
        let d = match &state.steer.train_source {
            Some(p) => state.datasets.iter().find(|d| &d.path == p)?,
            None => state.datasets.get(state.active_dataset?)?,
        };
        let recs = match d.split_records() {
            Some((train, _)) => train,
            None => d.records.clone(),
        };
        Some((d.path.clone(), recs))
    }

    /// The evaluation records, if an evaluation set is chosen and opened.
    pub fn eval_records(state: &AppState) -> Option<Vec<Record>> {
        let src = state.steer.eval_source.as_ref()?;
        let d = state.datasets.iter().find(|d| d.path == src.path())?;
        match src {
            EvalSource::Dataset(_) => Some(d.records.clone()),
            EvalSource::SplitTest(_) => d.split_records().map(|(_, test)| test),
        }
    }

    /// `Σ weightᵢ·vᵢ` over the checked vectors (`None` when none is checked). A single
    /// checked vector at weight 1 is returned as is (its metadata kept).
    pub fn combined(&self) -> crate::steer::Result<Option<SteeringVector>> {
        let parts: Vec<(&SteeringVector, f32)> = self
            .vectors
            .iter()
            .filter(|e| e.enabled)
            .map(|e| (&e.vector, e.weight))
            .collect();
        match parts.as_slice() {
            [] => Ok(None),
            [(v, w)] if *w == 1.0 => Ok(Some((*v).clone())),
            _ => SteeringVector::compose(&parts).map(Some),
        }
    }

    /// Adds a vector to the list (checked, weight 1) and schedules a re-score.
    pub fn add_vector(&mut self, name: String, vector: SteeringVector) {
        for e in &mut self.vectors {
            e.enabled = false;
        }
        self.vectors.push(VectorEntry {
            name,
            vector,
            enabled: true,
            weight: 1.0,
        });
        self.mark_dirty();
    }

    /// Starts training with the current settings on a background job.
    pub fn start_training(state: &mut AppState) {
        state.steer.train_error = None;
        let Some(m) = &state.model else {
            state.steer.train_error = Some("Load a model first (Model panel).".into());
            return;
        };
        let model = m.model.clone();
        let model_name = m.summary.name.clone();
        let Some((data_path, records)) = Self::train_records(state) else {
            state.steer.train_error =
                Some("Open a training dataset first (Open… above, or the Data panel).".into());
            return;
        };
        let eval = Self::eval_records(state);
        let s = state.steer.settings.clone();
        let layers = match s.parse_layers() {
            Ok(l) => l,
            Err(e) => {
                state.steer.train_error = Some(format!("{e:#}"));
                return;
            }
        };
        let objective = match s.parse_objective() {
            Ok(o) => o,
            Err(e) => {
                state.steer.train_error = Some(format!("objective: {e:#}"));
                return;
            }
        };
        let live = Arc::new(Mutex::new(TrainLive::default()));
        state.steer.live = live.clone();
        let dataset = file_name(&data_path);
        let name = format!("Train {} on {dataset}", s.method.name().to_uppercase());
        let id = state.spawn_job(
            &name,
            move |ctx| {
                let sink = LiveSink { inner: ctx, live };
                train(
                    &model,
                    &records,
                    eval.as_deref(),
                    &s,
                    layers,
                    objective,
                    &Provenance {
                        model: model_name,
                        dataset,
                    },
                    &sink,
                )
            },
            move |res: Result<TrainResult, String>, state: &mut AppState| {
                state.steer.train_job = None;
                match res {
                    Ok(r) => {
                        let n = state.steer.vectors.len() + 1;
                        let mut label = format!(
                            "#{n} {} L{}",
                            r.vector.meta.method,
                            r.vector
                                .meta
                                .layers
                                .iter()
                                .map(|l| l.to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        );
                        if r.cancelled {
                            label.push_str(&format!(" (cancelled at step {})", r.steps));
                        }
                        state.info(format!("Trained {label}: {}", r.summary));
                        state.steer.train_summary = Some(r.summary.clone());
                        if let Some(msg) = &r.diverged {
                            state.error(msg.clone());
                            state.steer.train_error = Some(msg.clone());
                        }
                        let keep = r.diverged.is_none() || r.steps > 0;
                        if keep {
                            state.steer.add_vector(label, r.vector);
                        }
                    }
                    Err(e) => {
                        state.error(format!("Training failed: {e}"));
                        state.steer.train_error = Some(e);
                    }
                }
            },
        );
        state.steer.train_job = Some(id);
    }

    /// Loads a vector file (native .safetensors or GGUF control vector) into the list, checking
    /// its width and layers against the loaded model.
    pub fn load_vector(state: &mut AppState, path: &Path) {
        let res = SteeringVector::load_any(path).and_then(|v| {
            if let Some(m) = &state.model {
                v.check_model(m.model.hidden_size(), m.model.n_layers())?;
            }
            Ok(v)
        });
        match res {
            Ok(v) => {
                state.info(format!("Loaded vector {}", path.display()));
                state.steer.vector_error = None;
                state.steer.add_vector(file_name(path), v);
            }
            Err(e) => {
                state.error(e.to_string());
                state.steer.vector_error = Some(e.to_string());
            }
        }
    }

    /// Exports the combination of the checked vectors through the picker ("Save as"):
    /// native safetensors (with its provenance metadata) or a llama.cpp GGUF control vector.
    pub fn export_combination(state: &mut AppState, format: Format) {
        match state.steer.combined() {
            Ok(Some(v)) => Self::export_vector(state, &v, "combination", format),
            Ok(None) => {
                state.steer.vector_error = Some("Check at least one vector to export.".into())
            }
            Err(e) => {
                let msg = format!("Export failed: {e}");
                state.error(msg.clone());
                state.steer.vector_error = Some(msg);
            }
        }
    }

    /// Exports the `i`-th vector of the list on its own (unscaled, its metadata kept).
    pub fn export_entry(state: &mut AppState, i: usize, format: Format) {
        let Some(e) = state.steer.vectors.get(i) else {
            return;
        };
        let (v, stem) = (e.vector.clone(), file_stem(&e.name));
        Self::export_vector(state, &v, &stem, format);
    }

    /// "Save as" for one vector: asks the picker for a path (suggesting `stem`), writes it
    /// atomically with [`write_vector`] and registers it in the sidebar.
    fn export_vector(state: &mut AppState, v: &SteeringVector, stem: &str, format: Format) {
        let hint = state
            .model
            .as_ref()
            .map(|m| m.summary.architecture.clone())
            .unwrap_or_else(|| "llama".into());
        let mut failed = None;
        let title = if format == Format::GGUF {
            "Export control vector"
        } else {
            "Export vector"
        };
        let saved = save_as(
            state,
            title,
            stem,
            format,
            Some(ArtifactKind::Vector),
            |p| {
                write_vector(v, format == Format::GGUF, &hint, p).inspect_err(|e| {
                    failed = Some(format!("Export to {} failed: {e}", p.display()))
                })
            },
        );
        state.steer.vector_error = failed;
        if saved.is_some() {
            state.steer.last_export = saved;
        }
    }

    /// Starts the behaviour sweep: each checked vector (× its weight) at every multiplier,
    /// plus the combination when several are checked.
    pub fn start_sweep(state: &mut AppState) {
        let Some(m) = &state.model else { return };
        let model = m.model.clone();
        let Some(records) = Self::eval_records(state) else {
            state.steer.score_error = Some("Choose an A/B evaluation set first.".into());
            return;
        };
        let mut vectors: Vec<(String, SteeringVector)> = state
            .steer
            .vectors
            .iter()
            .filter(|e| e.enabled)
            .map(|e| {
                let name = if e.weight == 1.0 {
                    e.name.clone()
                } else {
                    format!("{}×{}", e.name, e.weight)
                };
                (name, e.vector.scaled(e.weight))
            })
            .collect();
        if vectors.len() > 1 {
            match state.steer.combined() {
                Ok(Some(c)) => vectors.push(("combination".into(), c)),
                Ok(None) => {}
                Err(e) => {
                    state.steer.vector_error = Some(e.to_string());
                    return;
                }
            }
        }
        if vectors.is_empty() {
            state.steer.score_error = Some("Check at least one vector to sweep.".into());
            return;
        }
        let mults = state.steer.sweep_multipliers.clone();
        let id = state.spawn_job(
            "Behaviour sweep",
            move |ctx| {
                let tok = model.tokenizer().context("the model has no tokenizer")?;
                let items = prepare::eval_items(tok, &records)?;
                Ok(sweep(&model, &items, &vectors, &mults, 8, ctx)?)
            },
            |res: Result<Vec<SweepPoint>, String>, state: &mut AppState| {
                state.steer.sweep_job = None;
                match res {
                    Ok(p) => {
                        state.steer.score_error = None;
                        state.steer.sweep = p;
                    }
                    Err(e) => {
                        state.error(format!("Sweep failed: {e}"));
                        state.steer.score_error = Some(e);
                    }
                }
            },
        );
        state.steer.sweep_job = Some(id);
    }

    /// Re-scores at the slider value: the behaviour score (when an evaluation set is chosen)
    /// and the unsteered and steered answers to the prompt. Stale results are dropped.
    pub fn start_score(state: &mut AppState) {
        state.steer.dirty_since = None;
        let Some(m) = &state.model else { return };
        let model = m.model.clone();
        let v = match state.steer.combined() {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                state.steer.vector_error = Some(e.to_string());
                return;
            }
        };
        state.steer.vector_error = None;
        let records = Self::eval_records(state);
        let mult = state.steer.strength;
        let prompt = state.steer.prompt.clone();
        let max_new = state.steer.max_new_tokens;
        let cached = state
            .steer
            .unsteered_cache
            .as_ref()
            .filter(|(p, n, _)| *p == prompt && *n == max_new)
            .map(|c| c.2.clone());
        state.steer.score_seq += 1;
        let seq = state.steer.score_seq;
        let id = state.spawn_job(
            &format!("Steer × {mult:+.2}"),
            move |ctx| score_and_generate(&model, &v, records, mult, &prompt, max_new, cached, ctx),
            move |res: Result<ScoreResult, String>, state: &mut AppState| {
                if state.steer.score_seq == seq {
                    state.steer.score_job = None;
                }
                match res {
                    Ok(r) if state.steer.score_seq == seq => {
                        state.steer.score_error = None;
                        state.steer.score = r.score.map(|score| ScorePoint {
                            multiplier: mult,
                            score,
                        });
                        state.steer.unsteered_cache =
                            Some((r.gen.prompt.clone(), max_new, r.gen.unsteered.clone()));
                        state.steer.generations = Some(r.gen);
                    }
                    Ok(_) => {}
                    Err(_) if state.steer.score_seq != seq => {}
                    Err(e) => {
                        state.error(format!("Steering failed: {e}"));
                        state.steer.score_error = Some(e);
                    }
                }
            },
        );
        state.steer.score_job = Some(id);
    }

    /// Called every frame by the panel: starts a debounced re-score (the latest value wins:
    /// an outdated running job is cancelled first) and drives the automatic start-up run.
    /// Returns how long to wait before the next frame is needed, while a re-score is pending.
    pub fn tick(state: &mut AppState) -> Option<Duration> {
        let mut wait = None;
        if let Some(t) = state.steer.dirty_since {
            let idle = !Self::training(state) && !Self::sweeping(state);
            if Self::scoring(state) {
                if let Some(id) = state.steer.score_job {
                    state.jobs.cancel(id);
                }
            } else if idle && state.model.is_some() && t.elapsed() >= state.steer.debounce {
                Self::start_score(state);
            } else {
                wait = Some(
                    state
                        .steer
                        .debounce
                        .saturating_sub(t.elapsed())
                        .max(Duration::from_millis(20)),
                );
            }
        }
        Self::drive_auto(state);
        wait
    }

    fn drive_auto(state: &mut AppState) {
        let Some((_, stage)) = &state.steer.auto else {
            return;
        };
        let busy = state.model_job.is_some_and(|id| state.jobs.is_running(id))
            || state.data_job.is_some_and(|id| state.jobs.is_running(id));
        let next = match stage {
            AutoStage::WaitInputs => {
                let eval_ready = match &state.steer.eval_source {
                    Some(_) => Self::eval_records(state).is_some(),
                    None => true,
                };
                if !busy
                    && state.model.is_some()
                    && Self::train_records(state).is_some()
                    && eval_ready
                {
                    Self::start_training(state);
                    Some(AutoStage::Training)
                } else if !busy && (state.model.is_none() || state.model_error.is_some()) {
                    // Nothing to wait for: the model did not load.
                    Some(AutoStage::Done)
                } else {
                    None
                }
            }
            AutoStage::Training if !Self::training(state) => {
                if state.steer.vectors.is_empty() {
                    Some(AutoStage::Done)
                } else if Self::eval_records(state).is_some() {
                    Self::start_sweep(state);
                    Some(AutoStage::Sweeping)
                } else {
                    Self::start_score(state);
                    Some(AutoStage::Done)
                }
            }
            AutoStage::Sweeping if !Self::sweeping(state) => {
                Self::start_score(state);
                Some(AutoStage::Done)
            }
            _ => None,
        };
        if let Some(n) = next {
            if n == AutoStage::Done {
                state.steer.auto = None;
            } else if let Some(a) = &mut state.steer.auto {
                a.1 = n;
            }
        }
    }
}

/// What one re-scoring computes.
pub struct ScoreResult {
    /// Behaviour score at the multiplier (when an evaluation set was given).
    pub score: Option<f64>,
    /// The two answers.
    pub gen: Generations,
}

/// Trains a vector with `s` (blocking; the panel runs it on a job).
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Model,
    records: &[Record],
    eval: Option<&[Record]>,
    s: &TrainSettings,
    layers: Vec<usize>,
    objective: Objective,
    prov: &Provenance,
    sink: &dyn ProgressSink,
) -> anyhow::Result<TrainResult> {
    let tok = model.tokenizer().context("the model has no tokenizer")?;
    match s.method {
        Method::Caa | Method::Pca => {
            let caa = s.method == Method::Caa;
            let contrasts = prepare::contrasts(tok, records, caa)?;
            let bs = s.bipo.eval_batch_size.max(1);
            let v = if caa {
                crate::steer::caa::train_caa(
                    model,
                    &contrasts,
                    &layers,
                    bs,
                    &prov.model,
                    &prov.dataset,
                    sink,
                )?
            } else {
                crate::steer::pca::train_pca(
                    model,
                    &contrasts,
                    &layers,
                    bs,
                    &prov.model,
                    &prov.dataset,
                    sink,
                )?
                .0
            };
            let norms: Vec<String> = v
                .norms()
                .iter()
                .map(|(l, n)| format!("|v{l}| = {n:.3}"))
                .collect();
            Ok(TrainResult {
                summary: format!("{} pairs, {}", contrasts.len(), norms.join(", ")),
                vector: v,
                diverged: None,
                cancelled: false,
                steps: 0,
            })
        }
        Method::Bipo => {
            let data = prepare::train_data(tok, records, objective)?;
            let heldout = match eval {
                Some(r) => Some(prepare::eval_items(tok, r)?),
                None => None,
            };
            let cfg = BipoConfig {
                layers,
                objective,
                ..s.bipo.clone()
            };
            let out = train_bipo(model, &data, heldout.as_deref(), &cfg, prov, sink)?;
            let last = out.epochs.last();
            let mut summary = format!(
                "{} steps ({} items, objective {objective})",
                out.steps,
                data.len()
            );
            if let Some(e) = last {
                summary.push_str(&format!(
                    ", last epoch loss {:.4}, margin accuracy {:.2}, |v| {:.3}",
                    e.loss, e.margin_accuracy, e.norm
                ));
                if let Some((p, m)) = e.behaviour {
                    summary.push_str(&format!(", held-out score ×+1 {p:.3} / ×-1 {m:.3}"));
                }
            }
            let (diverged, cancelled) = match &out.stop {
                StopReason::Finished => (None, false),
                StopReason::Cancelled => (None, true),
                StopReason::Diverged(msg) => (Some(msg.clone()), false),
            };
            Ok(TrainResult {
                vector: out.vector,
                summary,
                diverged,
                cancelled,
                steps: out.steps,
            })
        }
    }
}

/// Behaviour score of `v × mult` on `records` (if any) and the unsteered (unless `cached`) and
/// steered greedy answers to `prompt` (blocking; run on a job).
#[allow(clippy::too_many_arguments)]
pub fn score_and_generate(
    model: &Model,
    v: &SteeringVector,
    records: Option<Vec<Record>>,
    mult: f64,
    prompt: &str,
    max_new_tokens: usize,
    cached_unsteered: Option<String>,
    sink: &dyn ProgressSink,
) -> anyhow::Result<ScoreResult> {
    let tok = model.tokenizer().context("the model has no tokenizer")?;
    v.check_model(model.hidden_size(), model.n_layers())?;
    let score = match records {
        Some(r) => {
            let items = prepare::eval_items(tok, &r)?;
            let hooks = if mult == 0.0 {
                Hooks::new()
            } else {
                steering_hooks(model, v, mult)?
            };
            Some(behaviour_score(model, &items, &hooks, 8, sink)?)
        }
        None => None,
    };
    let ids = prepare::prompt_ids(tok, &Prompt::Text(prompt.to_string()))?;
    let opts = GenerateOptions {
        max_new_tokens,
        ..Default::default()
    };
    let mults: Vec<f64> = match &cached_unsteered {
        Some(_) => vec![mult],
        None => vec![0.0, mult],
    };
    let gens = steered_generations(model, &[ids], &[(v, 1.0)], &mults, &opts, sink)?;
    let text = |m: f64| -> anyhow::Result<Option<String>> {
        match gens.iter().find(|g| g.multiplier == m) {
            Some(g) => Ok(Some(tok.decode(&g.ids, true)?)),
            None => Ok(None),
        }
    };
    let steered = text(mult)?.unwrap_or_default();
    let unsteered = match cached_unsteered {
        Some(u) => u,
        None => text(0.0)?.unwrap_or_default(),
    };
    Ok(ScoreResult {
        score,
        gen: Generations {
            prompt: prompt.to_string(),
            multiplier: mult,
            unsteered,
            steered,
        },
    })
}
