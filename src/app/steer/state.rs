//! What the Steer panel has made and is doing ([`SteerState`], a field of `AppState`): the
//! training settings and sources, the live metrics of the running training, the list of
//! vectors to combine, the strength slider with its debounced re-scoring, the behaviour sweep,
//! and the last steered/unsteered generations. The jobs that change it are in `super::actions`.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::data::Record;
use crate::jobs::{Metric, Progress};
pub use crate::steer::Method;
use crate::steer::{gguf, BipoConfig, Objective, SteeringVector, SweepPoint};

use crate::app::data::DataView;
use crate::app::job_list::JobId;
use crate::app::live::LiveRecord;
use crate::app::start::SteerStart;
use crate::app::state::AppState;

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

impl LiveRecord for TrainLive {
    /// A point per optimiser step (loss and margin accuracy), and per epoch the held-out
    /// scores at ×±1.
    fn record(&mut self, p: &Progress) {
        if let (Some(loss), Some(acc)) = (p.value(Metric::Loss), p.value(Metric::MarginAccuracy)) {
            self.steps.push(StepPoint {
                step: p.step,
                loss,
                margin_accuracy: acc,
                norm: p.value(Metric::Norm).unwrap_or(f64::NAN),
            });
        }
        if let (Some(plus), Some(minus)) = (
            p.value(Metric::BehaviourPlus),
            p.value(Metric::BehaviourMinus),
        ) {
            let epoch = self.epochs.len() + 1;
            self.epochs.push(EpochPoint { epoch, plus, minus });
        }
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
    /// The file it was loaded from or last exported to (`None`: made this session, not saved).
    pub path: Option<PathBuf>,
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

/// Stages of an automatic start-up run (train → sweep → score at the chosen strength).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AutoStage {
    /// Waiting for the model and data.
    WaitInputs,
    /// Training runs.
    Training,
    /// The sweep runs.
    Sweeping,
    /// Finished.
    Done,
}

/// Everything the Steer panel has made and is doing.
pub struct SteerState {
    /// Dataset (path in `AppState::datasets`) to train on; `None`: the active one.
    pub train_source: Option<PathBuf>,
    /// Where held-out A/B items come from.
    pub eval_source: Option<EvalSource>,
    /// True once the user (or a start-up option) chose the evaluation set, "none" included;
    /// until then it follows the training data: the held-out side of its split, or none.
    pub eval_chosen: bool,
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
    /// The layer × strength sweep and its Pareto front.
    pub landscape: super::landscape::Landscape,
    pub(super) unsteered_cache: Option<(String, usize, String)>,
    pub(super) auto: Option<(SteerStart, AutoStage)>,
    /// The OpenAI-compatible server (Serve switch), while it runs.
    pub server: Option<crate::serve::Server>,
    /// Port the Serve switch binds on loopback (0: a free one).
    pub serve_port: u16,
    /// Why the server could not start.
    pub serve_error: Option<String>,
}

impl Default for SteerState {
    fn default() -> Self {
        Self {
            train_source: None,
            eval_source: None,
            eval_chosen: false,
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
            landscape: Default::default(),
            unsteered_cache: None,
            auto: None,
            server: None,
            serve_port: 8000,
            serve_error: None,
        }
    }
}

/// True while `job` is set and still running.
pub(super) fn running(state: &AppState, job: Option<JobId>) -> bool {
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

/// A dataset that loaded and has records (failed files are not offered for training or
/// evaluation).
pub fn usable(d: &DataView) -> bool {
    d.error.is_none() && !d.records.is_empty()
}

/// A file stem made from a list name (`#2 bipo L24` -> `2_bipo_L24`).
pub(super) fn file_stem(name: &str) -> String {
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

pub(super) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

impl SteerState {
    /// Starts the OpenAI-compatible server on loopback with the loaded model and every listed
    /// vector (named after the list, made servable; duplicates get `_2`, `_3`, ...). Failures
    /// go to `serve_error`.
    pub fn start_server(state: &mut AppState) {
        state.steer.serve_error = None;
        state.steer.server = None;
        let Some(m) = &state.model else {
            state.steer.serve_error = Some("Load a model first.".into());
            return;
        };
        let mut named: Vec<(String, SteeringVector)> = Vec::new();
        for e in &state.steer.vectors {
            let base = crate::serve::vectors::servable_name(&e.name);
            let mut name = base.clone();
            let mut k = 2;
            while named.iter().any(|(n, _)| *n == name) {
                name = format!("{base}_{k}");
                k += 1;
            }
            named.push((name, e.vector.clone()));
        }
        let id = m
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(crate::serve::vectors::servable_name)
            .unwrap_or_else(|| "model".into());
        let started = crate::serve::VectorStore::from_vectors(named, &m.model).and_then(|store| {
            crate::serve::Server::start(
                m.model.clone(),
                store,
                crate::serve::ServeConfig {
                    aliases: crate::paths::short_name_of(&m.path)
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    ..crate::serve::ServeConfig::local(id, state.steer.serve_port)
                },
            )
        });
        match started {
            Ok(s) => state.steer.server = Some(s),
            Err(e) => state.steer.serve_error = Some(e.to_string()),
        }
    }

    /// Stops the server (open requests finish on its thread; the window does not wait).
    pub fn stop_server(state: &mut AppState) {
        state.steer.server = None;
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

    /// The training records: the chosen dataset (else the active one, else the first usable
    /// one, never the evaluation set's file), its split's train side if split.
    pub fn train_records(state: &AppState) -> Option<(PathBuf, Vec<Record>)> {
        let d = match &state.steer.train_source {
            Some(p) => state.datasets.iter().find(|d| &d.path == p && usable(d))?,
            None => {
                let eval = state
                    .steer
                    .eval_source
                    .as_ref()
                    .map(|e| e.path().to_path_buf());
                let ok = |d: &&DataView| usable(d) && Some(&d.path) != eval.as_ref();
                let active = state.active_dataset.and_then(|i| state.datasets.get(i));
                active
                    .filter(ok)
                    .or_else(|| state.datasets.iter().find(ok))?
            }
        };
        let recs = match d.split_records() {
            Some((train, _)) => train,
            None => d.records.clone(),
        };
        Some((d.path.clone(), recs))
    }

    /// Seconds a BiPO run with `settings` on `records` took on the reference 2-core CPU
    /// (token counts × measured per-token costs, [`crate::steer::BipoWork`]); `None` when the
    /// records cannot be tokenized for BiPO or the settings do not parse.
    pub fn bipo_estimate(
        model: &crate::model::Model,
        records: &[Record],
        settings: &TrainSettings,
    ) -> Option<f64> {
        let tok = model.tokenizer()?;
        let layers = settings.parse_layers().ok()?;
        let objective = settings.parse_objective().ok()?;
        let data = match crate::steer::train::prepare(tok, records, Method::Bipo, objective) {
            Ok(crate::steer::Prepared::Bipo(d)) => d,
            _ => return None,
        };
        let cfg = BipoConfig {
            layers: layers.clone(),
            objective,
            ..settings.bipo.clone()
        };
        let work = crate::steer::BipoWork::of(&data, &cfg);
        let first = layers.into_iter().min()?;
        Some(work.reference_seconds(model.hidden_size(), model.n_layers(), first))
    }

    /// The evaluation set used when none was chosen: the held-out (test) side of the training
    /// data's split, else none, so the default never overlaps training.
    pub fn default_eval(state: &AppState) -> Option<EvalSource> {
        let path = match &state.steer.train_source {
            Some(p) => p.clone(),
            None => Self::train_records(state)?.0,
        };
        let d = state
            .datasets
            .iter()
            .find(|d| d.path == path && usable(d))?;
        d.split.is_some().then_some(EvalSource::SplitTest(path))
    }

    /// Follows the training data with the evaluation default until the user chooses.
    pub fn follow_default_eval(state: &mut AppState) {
        if state.steer.eval_chosen {
            return;
        }
        let want = Self::default_eval(state);
        if state.steer.eval_source != want {
            state.steer.eval_source = want;
            state.steer.mark_dirty();
        }
    }

    /// True when `src` holds records the training uses (the whole file that is trained on,
    /// or its split's train side).
    pub fn overlaps_training(state: &AppState, src: &EvalSource) -> bool {
        match (src, Self::train_records(state)) {
            (EvalSource::Dataset(p), Some((train, _))) => *p == train,
            _ => false,
        }
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
            path: None,
        });
        self.mark_dirty();
    }

    /// Checks the `i`-th vector alone (the others unchecked), as the sidebar does when one is
    /// clicked, and schedules a re-score.
    pub fn select_only(&mut self, i: usize) {
        for (k, e) in self.vectors.iter_mut().enumerate() {
            e.enabled = k == i;
        }
        self.mark_dirty();
    }
}
