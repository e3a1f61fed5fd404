//! [`FeaturesState`]: what the Features panel has made — feature-discovery runs (their results
//! and output folders), the live training metrics of the running job, and the selected feature —
//! plus the actions that start a run, open or export a run folder and turn a feature into a
//! steering vector. Every computation is a call into `crate::sae`; no algorithm here.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::jobs::{Metric, Progress};
use crate::sae::link::{self, SaeFolder, VectorScale};
use crate::sae::pipeline::FeatureReport;
use crate::sae::{
    self, Atlas, AtlasConfig, MiniLmEmbedder, PairSet, RunOptions, RunResult, SaeConfig,
};

use crate::app::artifacts::ArtifactKind;
use crate::app::dialogs::DialogRequest;
use crate::app::job_list::JobId;
use crate::app::live::{LiveRecord, Recorder};
use crate::app::picker::FileFilter;
use crate::app::state::AppState;

/// Which embedder a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderChoice {
    /// The MiniLM sentence encoder (default folder in the cache).
    MiniLm,
    /// The loaded model's mean-pooled residual after a block.
    Llm,
}

/// The settings of the next run (the SAE's defaults are the paper's).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSettings {
    /// Embedder.
    pub embedder: EmbedderChoice,
    /// Block whose output the LLM embedder pools (0-based).
    pub layer: usize,
    /// The MiniLM folder.
    pub minilm_dir: PathBuf,
    /// SAE hyper-parameters.
    pub sae: SaeConfig,
    /// Embed prompt + response.
    pub include_prompt: bool,
    /// Describe features with the loaded LLM and measure fidelity.
    pub describe: bool,
    /// Held-out pairs judged per feature for fidelity.
    pub fidelity_pairs: usize,
    /// Folder that receives each run's output folder.
    pub runs_dir: PathBuf,
}

impl Default for FeatureSettings {
    fn default() -> Self {
        Self {
            embedder: EmbedderChoice::MiniLm,
            layer: 0,
            minilm_dir: crate::paths::default_embedder_dir(),
            sae: SaeConfig::default(),
            include_prompt: false,
            describe: false,
            fidelity_pairs: RunOptions::default().fidelity_pairs,
            runs_dir: crate::paths::steerlab_home().join("runs"),
        }
    }
}

/// Training metrics streamed by the running job, for the live plots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveMetrics {
    /// Per step: `[step, loss, fve, l0, dead fraction]`.
    pub steps: Vec<[f64; 5]>,
    /// Per epoch: `[step, validation loss]`.
    pub val_loss: Vec<[f64; 2]>,
    /// The latest stage text.
    pub stage: String,
}

impl LiveMetrics {
    /// One metric as plot points: column 1 = loss, 2 = FVE, 3 = L0, 4 = dead fraction.
    pub fn series(&self, col: usize) -> Vec<[f64; 2]> {
        self.steps.iter().map(|s| [s[0], s[col]]).collect()
    }
}

impl LiveRecord for LiveMetrics {
    /// A row per SAE step (loss, FVE, L0, dead fraction), the validation loss per epoch, and
    /// the stage text.
    fn record(&mut self, p: &Progress) {
        let get = |m| p.value(m);
        if let (Some(loss), Some(fve), Some(l0), Some(dead)) = (
            get(Metric::Loss),
            get(Metric::Fve),
            get(Metric::L0),
            get(Metric::Dead),
        ) {
            self.steps.push([p.step as f64, loss, fve, l0, dead]);
        }
        if let Some(v) = get(Metric::ValLoss) {
            self.val_loss.push([p.step as f64, v]);
        }
        self.stage = p.stage.clone();
    }
}

/// A finished (or opened) run.
pub struct FeatureRun {
    /// Shown in the run selector.
    pub name: String,
    /// The run (its `deltas` are dropped to save memory).
    pub result: RunResult,
    /// Its output folder, once written.
    pub out_dir: Option<PathBuf>,
}

impl FeatureRun {
    /// The residual site when the run used the LLM embedder.
    pub fn llm_site(&self) -> Option<link::LlmSite> {
        link::parse_llm_embedder(&self.result.report.embedder)
    }

    /// The run as an SAE folder (for the steering link), pointing at its output folder.
    pub fn as_folder(&self) -> SaeFolder {
        SaeFolder {
            dir: self.out_dir.clone().unwrap_or_default(),
            sae: self.result.sae.clone(),
            embedder: self.result.report.embedder.clone(),
            dataset: if self.result.report.dataset.is_empty() {
                "-".into()
            } else {
                self.result.report.dataset.clone()
            },
            report: Some(self.result.report.clone()),
        }
    }
}

/// How the feature table is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Latent index.
    Index,
    /// |effect on preference|.
    Effect,
    /// Fraction of pairs where the feature fires.
    Prevalence,
    /// Fidelity r of the description.
    Fidelity,
}

/// What the lower part of the Features panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureView {
    /// The sortable feature table.
    #[default]
    Table,
    /// The feature map (PCA), coloured by effect and sized by frequency.
    Map,
    /// The clusters: the map coloured by cluster and each cluster's members.
    Clusters,
}

impl std::str::FromStr for FeatureView {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(FeatureView::Table),
            "map" => Ok(FeatureView::Map),
            "clusters" => Ok(FeatureView::Clusters),
            other => Err(format!(
                "unknown features view `{other}` (table, map or clusters)"
            )),
        }
    }
}

/// The atlas of one run under one setting (kept until the run or the setting changes).
#[derive(Debug, Clone)]
pub struct AtlasCache {
    /// Index of the run.
    pub run: usize,
    /// The settings.
    pub config: AtlasConfig,
    /// The atlas, or why it could not be built.
    pub atlas: Result<Atlas, String>,
}

/// Everything the Features panel has made and shows.
pub struct FeaturesState {
    /// Settings of the next run.
    pub settings: FeatureSettings,
    /// Runs, oldest first.
    pub runs: Vec<FeatureRun>,
    /// The run shown.
    pub active: Option<usize>,
    /// The feature shown in the feature view.
    pub selected: Option<usize>,
    /// Table order.
    pub sort: SortKey,
    /// Largest first.
    pub descending: bool,
    /// Metrics of the running (or last) job.
    pub live: Arc<Mutex<LiveMetrics>>,
    /// The running job.
    pub job: Option<JobId>,
    /// Why the last run, export or vector failed.
    pub error: Option<String>,
    /// The last steering vector written from a feature.
    pub last_vector: Option<PathBuf>,
    /// Start one run with this embedder as soon as its inputs are loaded (start-up option
    /// `STEERLAB_FEATURES_TRAIN`; driven while the Features panel is shown).
    pub pending_train: Option<EmbedderChoice>,
    /// Apply the shown run to the active dataset as soon as both are there (start-up option
    /// `STEERLAB_FEATURES_APPLY`; driven while the Features panel is shown).
    pub pending_apply: bool,
    /// A SAELens SAE imported against the loaded model (see `imported.rs`).
    pub imported: Option<super::imported::ImportedSae>,
    /// The last run applied to a dataset.
    pub applied: Option<super::imported::Applied>,
    /// Table, map or clusters.
    pub view: FeatureView,
    /// Settings of the map and clusters.
    pub atlas_config: AtlasConfig,
    /// The atlas shown (see [`FeaturesState::atlas`]).
    pub atlas: Option<AtlasCache>,
}

impl Default for FeaturesState {
    fn default() -> Self {
        Self {
            settings: FeatureSettings::default(),
            runs: Vec::new(),
            active: None,
            selected: None,
            sort: SortKey::Effect,
            descending: true,
            live: Arc::default(),
            job: None,
            error: None,
            last_vector: None,
            pending_train: None,
            pending_apply: false,
            imported: None,
            applied: None,
            view: FeatureView::default(),
            atlas_config: AtlasConfig::default(),
            atlas: None,
        }
    }
}

impl FeaturesState {
    /// The run shown, if any.
    pub fn active_run(&self) -> Option<&FeatureRun> {
        self.active.and_then(|i| self.runs.get(i))
    }

    /// Feature indices of the shown run in the table's current order.
    pub fn table_order(&self) -> Vec<usize> {
        self.active_run()
            .map(|r| sorted_features(&r.result.report.features, self.sort, self.descending))
            .unwrap_or_default()
    }

    /// The atlas of the shown run under `atlas_config`: the run's own (report.json) when its
    /// settings match, else built now (`crate::sae::build_atlas`) and kept until the run or the
    /// settings change.
    pub fn atlas(&mut self) -> Option<&Result<Atlas, String>> {
        let i = self.active?;
        let run = self.runs.get(i)?;
        let cfg = self.atlas_config;
        let fresh = matches!(&self.atlas, Some(c) if c.run == i && c.config == cfg);
        if !fresh {
            let r = &run.result;
            let atlas = match r.report.atlas.as_ref().filter(|a| a.config == cfg) {
                Some(a) => Ok(a.clone()),
                None => sae::build_atlas(&r.sae, &r.report, Some(r.activations.as_slice()), &cfg)
                    .map_err(|e| e.to_string()),
            };
            self.atlas = Some(AtlasCache {
                run: i,
                config: cfg,
                atlas,
            });
        }
        self.atlas.as_ref().map(|c| &c.atlas)
    }

    /// Adds a run and shows it.
    pub fn push_run(&mut self, run: FeatureRun) {
        if let Some(a) = &run.result.report.atlas {
            self.atlas_config = a.config;
        }
        self.runs.push(run);
        self.active = Some(self.runs.len() - 1);
        self.selected = None;
    }
}

/// Feature indices of `features` in table order.
pub fn sorted_features(features: &[FeatureReport], key: SortKey, descending: bool) -> Vec<usize> {
    let value = |f: &FeatureReport| -> f64 {
        match key {
            SortKey::Index => f.index as f64,
            SortKey::Effect => f
                .effect
                .as_ref()
                .map_or(f64::NEG_INFINITY, |e| e.coef.abs()),
            SortKey::Prevalence => f.prevalence,
            SortKey::Fidelity => f.fidelity.as_ref().map_or(f64::NEG_INFINITY, |x| x.r),
        }
    };
    let mut idx: Vec<usize> = (0..features.len()).collect();
    idx.sort_by(|&a, &b| {
        let o = value(&features[a]).total_cmp(&value(&features[b]));
        let o = if descending { o.reverse() } else { o };
        o.then(features[a].index.cmp(&features[b].index))
    });
    idx.into_iter().map(|i| features[i].index).collect()
}

/// A fresh output folder for a run on `dataset` under `runs_dir`: `features-<stem>-<n>`.
pub fn next_run_dir(runs_dir: &Path, dataset: &Path) -> PathBuf {
    let stem = dataset
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    (1..)
        .map(|n| runs_dir.join(format!("features-{stem}-{n}")))
        .find(|p| !p.exists())
        .expect("an unused folder name")
}

/// Why a run cannot start now (no data, no model for the LLM embedder, a job running).
pub fn run_blocker(state: &AppState) -> Option<String> {
    let f = &state.features;
    if f.job.is_some_and(|id| state.jobs.is_running(id)) {
        return Some("a run is in progress".into());
    }
    let Some(d) = state.active_dataset.and_then(|i| state.datasets.get(i)) else {
        return Some("open a dataset in the Data panel first".into());
    };
    if d.records.is_empty() {
        return Some(format!("{} has no valid records", d.path.display()));
    }
    let needs_model = f.settings.embedder == EmbedderChoice::Llm || f.settings.describe;
    if needs_model && state.model.is_none() {
        return Some("load a model in the Model panel first (LLM embedder / descriptions)".into());
    }
    if state.model_job.is_some_and(|id| state.jobs.is_running(id)) && needs_model {
        return Some("the model is still loading".into());
    }
    None
}

/// Starts a run on the active dataset with the current settings (a background job); its
/// output folder is written under `settings.runs_dir` when it finishes.
pub fn start_run(state: &mut AppState) {
    if let Some(why) = run_blocker(state) {
        state.features.error = Some(why);
        return;
    }
    let d = &state.datasets[state.active_dataset.expect("checked by run_blocker")];
    let data_path = d.path.clone();
    let records = d.records.clone();
    let s = state.features.settings.clone();
    let model = match s.embedder == EmbedderChoice::Llm || s.describe {
        true => state.model.as_ref().map(|m| m.model.clone()),
        false => None,
    };
    let out_dir = next_run_dir(&s.runs_dir, &data_path);
    let live = state.features.live.clone();
    *live.lock().expect("live metrics") = LiveMetrics::default();
    state.features.error = None;
    let id = state.spawn_job(
        "Feature discovery",
        move |ctx| {
            let sink = Recorder::new(ctx, live);
            let pairs = PairSet::from_records(&records);
            if pairs.is_empty() {
                anyhow::bail!(
                    "{}: no preference pairs, judgements or A/B items to analyse",
                    data_path.display()
                );
            }
            let hash = std::fs::read(&data_path)
                .ok()
                .map(|b| sae::embed::fnv1a(&b));
            let opts = RunOptions {
                sae: s.sae.clone(),
                include_prompt: s.include_prompt,
                data_hash: hash,
                fidelity_pairs: s.fidelity_pairs,
                ..RunOptions::default()
            };
            let tok = model.as_ref().map(|m| {
                m.tokenizer()
                    .cloned()
                    .context("the loaded model has no tokenizer")
            });
            let tok = tok.transpose()?;
            let gen = match (&model, &tok, s.describe) {
                (Some(m), Some(t), true) => Some(sae::llm::LlmGenerator::new(m, t)),
                _ => None,
            };
            let gen_ref = gen
                .as_ref()
                .map(|g| g as &dyn sae::interpret::TextGenerator);
            let mut result = match s.embedder {
                EmbedderChoice::MiniLm => {
                    let dir = crate::paths::require_default(s.minilm_dir.clone(), "embedder")?;
                    let e = MiniLmEmbedder::load(&dir)?;
                    sae::run(&pairs, &e, gen_ref, &opts, &sink)?
                }
                EmbedderChoice::Llm => {
                    let (m, t) = (
                        model.as_ref().context("no model loaded")?,
                        tok.as_ref().context("no tokenizer")?,
                    );
                    let e = sae::llm::LlmEmbedder::new(m, t, s.layer)?;
                    sae::run(&pairs, &e, gen_ref, &opts, &sink)?
                }
            };
            result.deltas = Vec::new();
            result.report.dataset = data_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            sae::write_outputs(&out_dir, &result)?;
            Ok((result, out_dir))
        },
        |res, state: &mut AppState| match res {
            Ok((result, dir)) => {
                let r = &result.report;
                state.info(format!(
                    "Features: {} pairs, M = {}, val FVE {:.3}; wrote {}",
                    r.n_pairs,
                    r.options.sae.latents,
                    r.val_fve,
                    dir.display()
                ));
                let name = format!(
                    "{} · M={} K={} · {}",
                    r.dataset,
                    r.options.sae.latents,
                    r.options.sae.k,
                    short_embedder(&r.embedder)
                );
                state.artifacts.add(ArtifactKind::Sae, name.clone(), &dir);
                state.features.push_run(FeatureRun {
                    name,
                    result,
                    out_dir: Some(dir),
                });
            }
            Err(e) => state.features.error = state.job_failed("Feature discovery", e),
        },
    );
    state.features.job = Some(id);
}

/// Applies start-up choices (`FeaturesStart`): opens the run folder `run` (its top feature by
/// effect selected), arms the automatic run with `train`, shows `error`.
pub fn apply_start(
    state: &mut AppState,
    run: Option<&Path>,
    train: Option<EmbedderChoice>,
    error: Option<String>,
) {
    if let Some(dir) = run {
        open_run(state, dir);
        if let Some(r) = state.features.active_run() {
            let order = sorted_features(&r.result.report.features, SortKey::Effect, true);
            state.features.selected = order.first().copied();
        }
    }
    state.features.pending_train = train;
    if error.is_some() {
        state.features.error = error;
    }
}

/// A short embedder label: `minilm` or `llm:<layer>`.
pub fn short_embedder(id: &str) -> String {
    match link::parse_llm_embedder(id) {
        Some(s) => format!("llm:{}", s.layer),
        None => id.split(':').next().unwrap_or(id).to_string(),
    }
}

/// Opens a run folder written by `steerlab sae run` or this panel.
pub fn open_run(state: &mut AppState, dir: &Path) {
    match sae::read_outputs(dir) {
        Ok(result) => {
            let name = format!(
                "{} · M={} · {}",
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                result.sae.d_sae,
                short_embedder(&result.report.embedder)
            );
            state.info(format!("Opened feature run {}", dir.display()));
            state.artifacts.add(ArtifactKind::Sae, name.clone(), dir);
            state.features.push_run(FeatureRun {
                name,
                result,
                out_dir: Some(dir.to_path_buf()),
            });
            state.features.error = None;
        }
        Err(e) => {
            state.error(format!("Could not open {}: {e}", dir.display()));
            state.features.error = Some(e.to_string());
        }
    }
}

/// Asks for a folder and writes the shown run's whole output folder there.
pub fn export_active(state: &mut AppState) {
    let Some(i) = state.features.active else {
        return;
    };
    let Some(run) = state.features.runs.get(i) else {
        return;
    };
    let (name, result) = (run.name.clone(), run.result.clone());
    state.ask(
        DialogRequest::folder("Export feature run to folder"),
        move |state, dir| match sae::write_outputs(&dir, &result) {
            Ok(()) => {
                state
                    .artifacts
                    .add(ArtifactKind::Sae, format!("{name} (export)"), &dir);
                state.info(format!("Exported the feature run to {}", dir.display()))
            }
            Err(e) => {
                state.error(format!("Export failed: {e}"));
                state.features.error = Some(e.to_string());
            }
        },
    );
}

/// Writes feature `feature` of the shown run as a native steering vector (scaled to its mean
/// |activation|) where the user chooses (default name in the run's folder).
pub fn feature_to_vector(state: &mut AppState, feature: usize) {
    let Some(run) = state.features.active_run() else {
        return;
    };
    let folder = run.as_folder();
    let site = match folder.llm_site() {
        Ok(s) => s,
        Err(e) => {
            state.features.error = Some(e.to_string());
            return;
        }
    };
    let name = format!("feature{feature}_layer{}.safetensors", site.layer);
    let filters = [FileFilter::new("Steering vector", &["safetensors"])];
    let request = DialogRequest::save("Save steering vector", &name, &filters);
    state.ask(request, move |state, path| {
        write_feature_vector(state, &folder, feature, site.layer, path)
    });
}

/// Writes the feature vector chosen in [`feature_to_vector`] to `path` and adds it to the
/// Steer panel's list.
fn write_feature_vector(
    state: &mut AppState,
    folder: &SaeFolder,
    feature: usize,
    layer: usize,
    path: PathBuf,
) {
    let res = link::feature_vector(folder, feature, VectorScale::MeanActive)
        .map_err(|e| e.to_string())
        .and_then(|v| v.save(&path).map_err(|e| e.to_string()).map(|_| v));
    match res {
        Ok(v) => {
            let norm = v.norms().values().next().copied().unwrap_or(0.0);
            state.info(format!(
                "Wrote feature {feature} as a steering vector at layer {} (norm {norm:.3}) to {}; \
                 added to the Steer panel's vectors",
                layer,
                path.display()
            ));
            state.artifacts.add(
                ArtifactKind::Vector,
                format!("feature {feature} · layer {}", layer),
                &path,
            );
            // Cross-link: the vector is also put in the Steer panel's list, ready to slide.
            state
                .steer
                .add_vector(format!("feature {feature} L{}", layer), v);
            if let Some(e) = state.steer.vectors.last_mut() {
                e.path = Some(path.clone());
            }
            state.features.last_vector = Some(path);
            state.features.error = None;
        }
        Err(e) => {
            state.error(format!("Steering vector not written: {e}"));
            state.features.error = Some(e);
        }
    }
}
